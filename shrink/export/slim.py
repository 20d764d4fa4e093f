"""Optional onnxslim pass (constant folding, dead-node removal, pattern fusion).

The slimmed graph is a different graph: the export stage runs every check on it again."""

from __future__ import annotations

import contextlib
import io

import onnx

from shrink.errors import ShrinkError


def slim(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        import onnxslim
    except ImportError as exc:
        raise ShrinkError("--slim needs onnxslim: pip install 'torch-shrink[slim]'") from exc
    metadata = [(p.key, p.value) for p in proto.metadata_props]
    with contextlib.redirect_stdout(io.StringIO()):  # onnxslim prints a summary table
        slimmed = onnxslim.slim(proto)
    if not isinstance(slimmed, onnx.ModelProto):
        raise ShrinkError("onnxslim returned no model")
    # onnxslim drops metadata_props; they are part of what we ship.
    del slimmed.metadata_props[:]
    for key, value in metadata:
        slimmed.metadata_props.add(key=key, value=value)
    return slimmed
