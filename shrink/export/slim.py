"""Optional onnxslim pass (constant folding, dead-node removal, pattern fusion).

The slimmed graph is a different graph: the export stage runs every check on it again."""

from __future__ import annotations

import contextlib
import io

import onnx

from shrink.errors import ShrinkError
from shrink.onnxio.metadata import read_metadata, set_metadata


def slim(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        import onnxslim
    except ImportError as exc:
        raise ShrinkError("--slim needs onnxslim: pip install 'torch-shrink[slim]'") from exc
    metadata = read_metadata(proto)
    with contextlib.redirect_stdout(io.StringIO()):  # onnxslim prints a summary table
        slimmed = onnxslim.slim(proto)
    if not isinstance(slimmed, onnx.ModelProto):
        raise ShrinkError("onnxslim returned no model")
    # onnxslim drops metadata_props; they are part of what we ship.
    del slimmed.metadata_props[:]
    set_metadata(slimmed, metadata)
    return slimmed
