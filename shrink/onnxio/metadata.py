"""An ONNX file's metadata_props as a plain dict of strings: read them, and write them in place.

onnx is imported inside the functions: a bench worker reads a file's metadata and must start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def set_metadata(proto: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Write `meta` into proto.metadata_props, replacing keys already there."""
    existing = {p.key: p.value for p in proto.metadata_props}
    existing.update({k: str(v) for k, v in meta.items()})
    del proto.metadata_props[:]
    for key, value in existing.items():
        proto.metadata_props.add(key=key, value=value)


def read_metadata(proto_or_path: onnx.ModelProto | str | Path) -> dict[str, str]:
    """The metadata of a loaded model, or of the file at a path (its weights are not read)."""
    import onnx

    proto = proto_or_path
    if not isinstance(proto, onnx.ModelProto):
        proto = onnx.load(str(proto_or_path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
