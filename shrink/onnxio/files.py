"""The files an ONNX model is read from: the .onnx file and every external-data file it names.

No output may overwrite one of them, so every command that reads an ONNX file asks here what it
really reads."""

from __future__ import annotations

import os
from pathlib import Path


def onnx_files(path: str | os.PathLike) -> tuple[Path, ...]:
    """The ONNX file and every external-data file its tensors name (beside it)."""
    import onnx

    path = Path(path)
    files = [path]
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable: the caller's own checks say so, with their own line
        return tuple(files)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location" and (path.parent / entry.value) not in files:
                files.append(path.parent / entry.value)
    return tuple(files)
