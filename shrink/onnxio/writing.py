"""Write an ONNX model so that only a verified, complete file ever appears at the destination.

A model is saved into a staging directory next to the destination, under its final name (an ONNX
file refers to its external-data file by name, so both must be staged together), checked there,
and only then moved into place: external data first, the .onnx last, so a reader never finds an
.onnx without its weights. An exception anywhere leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import onnx

from shrink.errors import ShrinkError
from shrink.fileio import check_not_inputs, check_writable, temp_prefix

# protobuf cannot serialize a message of 2 GiB or more: above this, weights go to external data.
EXTERNAL_DATA_THRESHOLD_BYTES = 2 * 1024**3 - 64 * 1024**2  # leave room for the graph itself


def external_data_name(dest: str | os.PathLike) -> str:
    return Path(dest).name + ".data"


def _uses_data_file(dest: Path) -> bool:
    """Whether the ONNX file at `dest` keeps its tensors in `<dest name>.data` (an earlier export)."""
    if not dest.is_file():
        return False
    try:
        proto = onnx.load(str(dest), load_external_data=False)
    except Exception:  # not a readable ONNX file: it does not own the data file
        return False
    name = external_data_name(dest)
    return any(entry.key == "location" and entry.value == name
               for tensor in proto.graph.initializer for entry in tensor.external_data)


def check_onnx_destination(dest: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> None:
    """Refuse, before any work, an ONNX output that would overwrite an input (the file or its
    external data), cannot be written, or would replace a `<name>.data` file that no earlier
    export at `dest` wrote (it is the user's, not ours to replace or delete)."""
    dest = Path(dest)
    data = dest.parent / external_data_name(dest)
    check_not_inputs([dest, data], inputs)
    check_writable(dest)
    if data.exists() and not _uses_data_file(dest):
        raise ShrinkError(f"{data} exists, but no ONNX file at {dest} uses it: it is not ours to replace or "
                          "delete; move it, or choose another output path")


@contextlib.contextmanager
def staged_output(dest: str | os.PathLike, *, forbid: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Yield `STAGING/<dest name>`; on success move it (and its external data) onto `dest`."""
    dest = Path(dest)
    check_onnx_destination(dest, forbid)
    old_data = dest.parent / external_data_name(dest)  # checked above: it belongs to the file at dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=temp_prefix(dest.name), suffix=".staging", dir=dest.parent))
    except OSError as exc:
        raise ShrinkError(f"could not write {dest}: {exc.strerror or exc}") from exc
    try:
        staged = stage / dest.name
        yield staged
        if not staged.is_file():
            raise ShrinkError(f"internal error: nothing was written for {dest}")
        data = stage / external_data_name(dest)
        if data.is_file():
            os.replace(data, old_data)
        else:  # the old file's data would now be orphaned
            old_data.unlink(missing_ok=True)
        os.replace(staged, dest)
    except OSError as exc:
        raise ShrinkError(f"could not write {dest}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def save_model(proto: onnx.ModelProto, path: Path, *, threshold: int = EXTERNAL_DATA_THRESHOLD_BYTES) -> bool:
    """Save `proto` to `path`: one file below `threshold` bytes, else weights in `<name>.data` beside
    it. Returns True when external data was used."""
    external = proto.ByteSize() >= threshold
    if external:
        onnx.save_model(
            proto,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=external_data_name(path),
            size_threshold=1024,
        )
    else:
        onnx.save_model(proto, str(path))
    return external
