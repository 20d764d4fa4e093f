"""Check what the quantize stage is given before any work starts, with one clear line per problem:
a file that is not ONNX or is truncated, operators nothing can run, a model that is not an fp32
image classifier, calibration data of the wrong shape or dtype."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from shrink.errors import ShrinkError, first_line
from shrink.onnxio.metadata import read_metadata
from shrink.ort_session import create_session
from shrink.tasks import Task

# Operator types that mean the file is already quantized.
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                 "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "QLinearAdd"}
# Domains onnxruntime's CPU build implements besides the standard one (checked by loading a session).
ORT_DOMAINS = {"com.microsoft", "com.microsoft.nchwc", "ai.onnx.ml"}


@dataclass(frozen=True)
class OnnxInput:
    """A checked fp32 image-model ONNX file (a classifier, or a segmenter or detector that says so)."""

    path: Path
    input_name: str
    input_shape: tuple[int | str, ...]  # (batch, C, H, W); batch may be symbolic
    op_types: dict[str, int]  # op type -> count, for choosing static or dynamic recipes
    metadata: dict[str, str]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input_shape[1:])

    @property
    def task(self) -> Task:
        """What the file predicts, from its metadata (a file without a task is a classifier)."""
        return Task.parse(self.metadata.get("task", Task.CLASSIFICATION.value))


def unsupported_ops(proto: onnx.ModelProto) -> list[str]:
    """'domain::Op' for every node no ONNX schema and no onnxruntime CPU domain covers."""
    opsets = {o.domain or "": o.version for o in proto.opset_import}
    bad = set()
    for node in proto.graph.node:
        domain = node.domain or ""
        if domain in ("", "ai.onnx"):
            if not onnx.defs.has(node.op_type, opsets.get(domain, opsets.get("", 1)), ""):
                bad.add(f"ai.onnx::{node.op_type}")
        elif domain not in ORT_DOMAINS:
            bad.add(f"{domain}::{node.op_type}")
    return sorted(bad)


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    return tuple(d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
                 for d in value_info.type.tensor_type.shape.dim)


def load_onnx_input(path: str | Path) -> OnnxInput:
    """Read and check the fp32 model to quantize; raises ShrinkError with one line on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ShrinkError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # google.protobuf DecodeError and friends
        raise ShrinkError(f"{path} cannot be read as ONNX: not an ONNX file, or truncated/corrupt "
                          f"({first_line(exc)})") from exc
    if proto.ir_version < 3 or not proto.graph.node or not proto.opset_import:
        raise ShrinkError(f"{path} is not an ONNX model (no IR version, opset or graph); not an ONNX file, or truncated")
    bad = unsupported_ops(proto)
    if bad:
        raise ShrinkError(f"{path} uses operators that ONNX and onnxruntime do not implement: {', '.join(bad)}")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ShrinkError(f"{path} is not a valid ONNX model (truncated or corrupt?): {first_line(exc)}") from exc
    create_session(path, "cpu")  # operators the CPU EP cannot run fail here, as one line
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    already = sorted(QUANTIZED_OPS & set(ops))
    if already:
        raise ShrinkError(f"{path} is already quantized (it has {', '.join(already)}); give the fp32 model")
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ShrinkError(f"{path} has {len(inputs)} inputs; quantize handles image models with one NCHW input")
    elem = inputs[0].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise ShrinkError(f"{path} input {inputs[0].name!r} is {onnx.TensorProto.DataType.Name(elem)}; "
                          "quantize needs an fp32 model (export without --fp16)")
    shape = _dims(inputs[0])
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise ShrinkError(f"{path} input {inputs[0].name!r} has shape {list(shape)}; expected [batch, C, H, W]")
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer):
        raise ShrinkError(f"{path} has fp16 weights; quantize needs the fp32 model")
    return OnnxInput(path, inputs[0].name, shape, ops, read_metadata(proto))


def check_calibration(batches: list[np.ndarray], model: OnnxInput, what: str = "calibration data") -> None:
    """Every batch must be float32 of shape (N, C, H, W) matching the model input."""
    if not batches:
        raise ShrinkError(f"{what} is empty")
    for batch in batches:
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32:
            dtype = getattr(batch, "dtype", type(batch).__name__)
            raise ShrinkError(f"{what} is {dtype}; model input {model.input_name!r} takes float32")
        if batch.ndim != 4 or tuple(batch.shape[1:]) != model.image_shape:
            raise ShrinkError(f"{what} has images of shape {'x'.join(map(str, batch.shape[1:]))}; model input "
                              f"{model.input_name!r} takes {'x'.join(map(str, model.image_shape))}")
