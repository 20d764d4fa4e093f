"""The structural check every ONNX file a stage writes must pass: the full onnx checker, then
strict shape inference."""

from __future__ import annotations

from pathlib import Path

import onnx

from shrink.errors import ShrinkError, first_line


def check_onnx_file(path: str | Path) -> onnx.ModelProto:
    """Run onnx.checker (full_check, which includes strict shape inference) on the file itself (a
    path, so external data and files over 2 GB work), then infer shapes; return the inferred model
    without weights loaded."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, DecodeError
        raise ShrinkError(f"onnx.checker rejected {Path(path).name}: {first_line(exc)}") from exc
    proto = onnx.load(str(path), load_external_data=False)
    try:
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise ShrinkError(f"ONNX shape inference failed on {Path(path).name}: {first_line(exc)}") from exc
