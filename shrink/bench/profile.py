"""`--profile`: why isn't the pruned model faster?

For each ONNX candidate, after the timing:
- time per operator type from onnxruntime's profiler, and a diff table across candidates;
- convolutions whose channel counts are not multiples of the CPU's SIMD block (16 fp32 lanes on
  AVX-512, 8 on AVX2): ORT pads them to the block and inserts ReorderOutput/ReorderInput copies;
- layout transforms (Transpose, ReorderInput/ReorderOutput) and device copies (Memcpy*) that ran;
- QuantizeLinear/DequantizeLinear nodes that ran, i.e. were not fused into QLinear* kernels;
- on a GPU provider, nodes that ran on the CPU EP anyway.
Profiling is a separate pass: the profiler's own overhead would distort the timing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from shrink.bench.config import BenchConfig, OnnxCandidate
from shrink.bench.engines import create_engine

PROFILE_WARMUP_RUNS = 5  # first runs allocate and pick kernels; left out of the profile
LAYOUT_OPS = ("Transpose", "ReorderInput", "ReorderOutput")
DEVICE_COPY_OPS = ("MemcpyToHost", "MemcpyFromHost")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
CONV_OPS = ("Conv", "QLinearConv", "ConvInteger")


@dataclass(frozen=True)
class OpTypeTime:
    op_type: str
    nodes: int
    ms_per_run: float
    share: float  # of the candidate's total kernel time


@dataclass(frozen=True)
class ConvWidth:
    node: str
    in_channels: int
    out_channels: int
    group: int
    reads_graph_input: bool  # the first conv's input channels (e.g. RGB) cannot be changed


@dataclass(frozen=True)
class CandidateProfile:
    label: str
    provider: str
    runs: int
    kernel_ms_per_run: float  # sum of node kernel times
    op_types: tuple[OpTypeTime, ...]
    simd_block: int
    convs: int
    misaligned_convs: tuple[ConvWidth, ...]
    layout_transforms: tuple[OpTypeTime, ...]
    device_copies: tuple[OpTypeTime, ...]
    qdq_ops: tuple[OpTypeTime, ...]
    cpu_fallback_nodes: int  # on a GPU provider: nodes that ran on the CPU EP
    flags: tuple[str, ...]


@dataclass(frozen=True)
class ProfileDiffRow:
    op_type: str
    nodes: tuple[int, ...]
    ms_per_run: tuple[float, ...]
    delta_ms: tuple[float, ...]  # each candidate minus the first


@dataclass(frozen=True)
class ProfileReport:
    labels: tuple[str, ...]
    candidates: tuple[CandidateProfile, ...]
    diff: tuple[ProfileDiffRow, ...]
    notes: tuple[str, ...]


# ---------------------------------------------------------------- trace parsing (pure functions)


def _run_windows(events: Sequence[dict], skip_runs: int) -> list[tuple[float, float]]:
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    return runs[skip_runs:]


def node_events(events: Sequence[dict], skip_runs: int = 0) -> tuple[list[dict], int]:
    """Kernel events inside the runs kept (all but the first `skip_runs`), and how many runs."""
    windows = _run_windows(events, skip_runs)
    kernels = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
    kept = [e for e in kernels if any(start <= e["ts"] <= end for start, end in windows)]
    return kept, len(windows)


def op_type_times(kernels: Iterable[dict], runs: int) -> tuple[OpTypeTime, ...]:
    """Per operator type: distinct nodes, ms per run and share of the total, slowest first."""
    total_us: dict[str, float] = defaultdict(float)
    names: dict[str, set] = defaultdict(set)
    for event in kernels:
        op = event.get("args", {}).get("op_name", "?")
        total_us[op] += float(event["dur"])
        names[op].add(event["name"])
    grand = sum(total_us.values()) or 1.0
    rows = [
        OpTypeTime(op, len(names[op]), total_us[op] / 1000.0 / max(runs, 1), total_us[op] / grand)
        for op in total_us
    ]
    return tuple(sorted(rows, key=lambda r: (-r.ms_per_run, r.op_type)))


def cpu_fallback_nodes(kernels: Iterable[dict]) -> int:
    return len({e["name"] for e in kernels if e.get("args", {}).get("provider") == "CPUExecutionProvider"})


# ---------------------------------------------------------------- static checks on the ONNX file


def _producers(graph) -> dict[str, Any]:
    return {out: node for node in graph.node for out in node.output}


def _traces_to_graph_input(name: str, producers: dict, graph_inputs: set[str]) -> bool:
    """True if `name` is a graph input, possibly through Q/DQ/Cast nodes (a quantized first conv)."""
    for _ in range(8):
        if name in graph_inputs:
            return True
        node = producers.get(name)
        if node is None or node.op_type not in QDQ_OPS + ("Cast",):
            return False
        name = node.input[0]
    return False


def _weight_shape(name: str, initializers: dict, producers: dict) -> list[int] | None:
    if name in initializers:
        return list(initializers[name].dims)
    node = producers.get(name)  # QDQ models: weight = DequantizeLinear(int8 initializer)
    if node is not None and node.op_type == "DequantizeLinear" and node.input[0] in initializers:
        return list(initializers[node.input[0]].dims)
    return None


def conv_widths(model) -> list[ConvWidth]:
    """Channel counts of every convolution whose weight is a constant in the file."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers = _producers(graph)
    graph_inputs = {i.name for i in graph.input} - set(initializers)
    widths = []
    for node in graph.node:
        if node.op_type not in CONV_OPS:
            continue
        weight_index = 3 if node.op_type == "QLinearConv" else 1
        shape = _weight_shape(node.input[weight_index], initializers, producers)
        if not shape or len(shape) < 2:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1) or 1
        widths.append(
            ConvWidth(
                node=node.name or node.output[0],
                in_channels=int(shape[1]) * int(group),
                out_channels=int(shape[0]),
                group=int(group),
                reads_graph_input=_traces_to_graph_input(node.input[0], producers, graph_inputs),
            )
        )
    return widths


def misaligned(widths: Iterable[ConvWidth], block: int) -> tuple[ConvWidth, ...]:
    """Convolutions with a channel count that is not a multiple of `block` (the RGB input of the
    first convolution is exempt: it is fixed by the data)."""
    return tuple(
        w
        for w in widths
        if w.out_channels % block or (w.in_channels % block and not w.reads_graph_input)
    )


# ---------------------------------------------------------------- one candidate, and the diff


def _pick(rows: Sequence[OpTypeTime], ops: Sequence[str]) -> tuple[OpTypeTime, ...]:
    return tuple(r for r in rows if r.op_type in ops)


def _flags(profile: dict[str, Any], graph_io: int) -> tuple[str, ...]:
    flags = []
    bad = profile["misaligned_convs"]
    if bad:
        flags.append(
            f"{len(bad)} of {profile['convs']} convolutions have channel counts that are not multiples of "
            f"{profile['simd_block']} (the SIMD block here)"
        )
    for row in profile["layout_transforms"]:
        flags.append(f"layout transform {row.op_type}: {row.nodes} nodes, {row.ms_per_run:.3f} ms/run")
    for row in profile["device_copies"]:
        flags.append(f"device copy {row.op_type}: {row.nodes} nodes, {row.ms_per_run:.3f} ms/run")
    qdq_nodes = sum(r.nodes for r in profile["qdq_ops"])
    # A fully fused int8 graph keeps about one Q per input and one DQ per output.
    if qdq_nodes > graph_io:
        flags.append(f"{qdq_nodes} QuantizeLinear/DequantizeLinear nodes ran unfused")
    if profile["cpu_fallback_nodes"]:
        flags.append(f"{profile['cpu_fallback_nodes']} nodes ran on the CPU EP despite the GPU provider")
    return tuple(flags)


def summarize_profile(
    label: str, events: Sequence[dict], model, provider: str, simd_block: int, skip_runs: int
) -> CandidateProfile:
    """Everything the profile reports for one candidate, from its trace and its ONNX graph."""
    kernels, runs = node_events(events, skip_runs)
    rows = op_type_times(kernels, runs)
    widths = conv_widths(model)
    parts = {
        "convs": len(widths),
        "simd_block": simd_block,
        "misaligned_convs": misaligned(widths, simd_block),
        "layout_transforms": _pick(rows, LAYOUT_OPS),
        "device_copies": _pick(rows, DEVICE_COPY_OPS),
        "qdq_ops": _pick(rows, QDQ_OPS),
        "cpu_fallback_nodes": cpu_fallback_nodes(kernels) if provider != "cpu" else 0,
    }
    graph_io = len(model.graph.input) + len(model.graph.output)
    return CandidateProfile(
        label=label,
        provider=provider,
        runs=runs,
        kernel_ms_per_run=sum(r.ms_per_run for r in rows),
        op_types=rows,
        flags=_flags(parts, graph_io),
        **parts,
    )


def profile_diff(profiles: Sequence[CandidateProfile]) -> tuple[ProfileDiffRow, ...]:
    """One row per operator type seen in any candidate, slowest (in the first candidate) first."""
    tables = [{r.op_type: r for r in p.op_types} for p in profiles]
    diff = []
    for op in {op for table in tables for op in table}:
        ms = tuple(t[op].ms_per_run if op in t else 0.0 for t in tables)
        nodes = tuple(t[op].nodes if op in t else 0 for t in tables)
        diff.append(ProfileDiffRow(op, nodes, ms, tuple(m - ms[0] for m in ms)))
    return tuple(sorted(diff, key=lambda row: (-row.ms_per_run[0], -max(row.ms_per_run), row.op_type)))


def profile_candidate(
    candidate: OnnxCandidate, label: str, config: BenchConfig, threads: int, simd_block: int
) -> CandidateProfile:
    """Run one ONNX candidate under onnxruntime's profiler and summarize the trace."""
    import onnx

    # CUDA graphs replay without per-node events, so the profile pass runs without them.
    config = dataclasses.replace(config, cuda_graphs=False)
    with tempfile.TemporaryDirectory(prefix="shrink-profile-") as tmp:
        engine = create_engine(candidate, config, threads, profile_prefix=os.path.join(tmp, "ort"))
        for _ in range(PROFILE_WARMUP_RUNS + config.profile_runs):
            engine.run_once()
        trace = Path(engine.session.end_profiling())
        events = json.loads(trace.read_text())
        engine.close()
    model = onnx.load(str(candidate.path), load_external_data=False)
    return summarize_profile(label, events, model, config.provider, simd_block, PROFILE_WARMUP_RUNS)


def profile_notes(config: BenchConfig) -> tuple[str, ...]:
    notes = [
        f"per-operator times: onnxruntime profiler, {config.profile_runs} runs after {PROFILE_WARMUP_RUNS} "
        "warmup runs, in a separate pass (profiling slows the runs down)",
    ]
    if config.provider != "cpu":
        notes.append(
            "on GPU providers, node times are host-side (kernel launch) times unless onnxruntime was "
            "built with CUDA profiling; the profile pass runs without CUDA graphs"
        )
    return tuple(notes)
