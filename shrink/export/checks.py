"""The input/output signature of an exported file that the rest of the toolchain relies on (the
structural checks every ONNX file gets are shrink.onnxio.checks)."""

from __future__ import annotations

import onnx

from shrink.errors import ShrinkError
from shrink.export.config import BATCH_DIM


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims]


def check_signature(proto: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...],
                    output_names: tuple[str, ...], num_outputs: int | None, dynamic_batch: bool) -> list[int | str]:
    """One image input named `input_name` of shape (batch, *input_shape), the outputs named
    `output_names` in that order; the batch axis symbolic when `dynamic_batch`. Returns the input dims."""
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if [i.name for i in inputs] != [input_name]:
        raise ShrinkError(f"exported graph inputs are {[i.name for i in inputs]}, expected [{input_name!r}]")
    if [o.name for o in proto.graph.output] != list(output_names):
        raise ShrinkError(f"exported graph outputs are {[o.name for o in proto.graph.output]}, expected {list(output_names)}")
    dims = _dims(inputs[0])
    if len(dims) != 1 + len(input_shape) or tuple(dims[1:]) != tuple(input_shape):
        raise ShrinkError(f"exported input shape is {dims}, expected [batch, {', '.join(map(str, input_shape))}]")
    if dynamic_batch and not isinstance(dims[0], str):
        raise ShrinkError(f"the batch axis was specialized to {dims[0]}; expected a dynamic {BATCH_DIM!r} axis")
    out_dims = _dims(proto.graph.output[0])
    if num_outputs is not None and out_dims and out_dims[-1] != num_outputs:
        raise ShrinkError(f"exported output shape is {out_dims}, expected [batch, {num_outputs}]")
    return dims
