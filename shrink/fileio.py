"""Atomic writes and hashing.

Every artifact is written to a temporary file in the destination directory and renamed into place,
so an interrupted run never leaves a half-written file, and an input is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from shrink.errors import ShrinkError


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, forbid: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path next to `dest`; rename it onto `dest` only if the block succeeds.

    `forbid` lists input paths that must never be overwritten (output == input is an error).
    """
    dest = Path(dest)
    for src in forbid:
        if Path(src).exists() and dest.exists() and os.path.samefile(src, dest):
            raise ShrinkError(f"output path {dest} is the input file; choose another output path")
        if Path(src).resolve() == dest.resolve():
            raise ShrinkError(f"output path {dest} is the input file; choose another output path")
    if dest.is_dir():
        raise ShrinkError(f"output path {dest} is a directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared
        os.replace(tmp_path, dest)
    except OSError as exc:
        raise ShrinkError(f"could not write {dest}: {exc.strerror or exc}") from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text_atomic(dest: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise ShrinkError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShrinkError(f"{what} {path} is not valid JSON: {exc}") from exc


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
