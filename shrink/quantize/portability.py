"""Which runtimes can load a file: the operator domains it uses.

onnxruntime's QOperator format writes operators of its own domain (com.microsoft::QLinearAdd,
QGemm, QLinearGlobalAveragePool, ...) that other CPU runtimes refuse to load. A QDQ file is
standard ONNX (QuantizeLinear / DequantizeLinear around float operators), which every mainstream
runtime reads; onnxruntime fuses it into the same int8 kernels at load time. So what ships is
standard ONNX unless the recipe names onnxruntime as its only runtime.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

STANDARD_DOMAINS = ("", "ai.onnx")
ONNXRUNTIME = "onnxruntime"


def operator_domains(model) -> dict[str, list[str]]:
    """Operator types the graph uses, by domain ('ai.onnx' for the standard one), sorted. `model`
    is a path or an already loaded onnx.ModelProto."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    found: dict[str, set[str]] = defaultdict(set)
    for node in proto.graph.node:
        found[node.domain or "ai.onnx"].add(node.op_type)
    return {domain: sorted(ops) for domain, ops in sorted(found.items())}


def runtime_specific(domains: dict[str, list[str]]) -> list[str]:
    """'domain::Op' for every operator outside the standard ONNX domain."""
    return [f"{d}::{op}" for d, ops in domains.items() if d not in STANDARD_DOMAINS for op in ops]


def onnxruntime_only_allowed(runtimes: Sequence[str]) -> bool:
    """Runtime-specific operators may ship only when onnxruntime is the one and only target."""
    return tuple(runtimes) == (ONNXRUNTIME,)
