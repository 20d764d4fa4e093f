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
from shrink.export.config import EXTERNAL_DATA_THRESHOLD_BYTES


def external_data_name(dest: str | os.PathLike) -> str:
    return Path(dest).name + ".data"


def check_not_input(dest: Path, inputs: tuple[str | os.PathLike, ...]) -> None:
    for src in inputs:
        src_path = Path(src)
        same = src_path.resolve() == dest.resolve() or (
            src_path.exists() and dest.exists() and os.path.samefile(src_path, dest)
        )
        if same:
            raise ShrinkError(f"output path {dest} is the input file; choose another output path")


@contextlib.contextmanager
def staged_output(dest: str | os.PathLike, *, forbid: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Yield `STAGING/<dest name>`; on success move it (and its external data) onto `dest`."""
    dest = Path(dest)
    check_not_input(dest, forbid)
    if dest.is_dir():
        raise ShrinkError(f"output path {dest} is a directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".staging", dir=dest.parent))
    try:
        staged = stage / dest.name
        yield staged
        if not staged.is_file():
            raise ShrinkError(f"internal error: nothing was written for {dest}")
        data = stage / external_data_name(dest)
        if data.is_file():
            os.replace(data, dest.parent / data.name)
        else:  # a stale data file from an earlier, larger export would now be orphaned
            (dest.parent / data.name).unlink(missing_ok=True)
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
