"""Atomic writes, JSON records and hashing.

Every artifact is written to a temporary file in the destination directory and renamed into place,
so an interrupted run never leaves a half-written file, and an input is never overwritten. Outputs
are checked before any work starts (check_not_inputs, check_writable); temporary files live next to
the outputs and are swept when the process that made them is gone (sweep_stale_temporaries).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from shrink.errors import ShrinkError


# Every temporary name this project makes ends in .<pid>.<random>.<kind>, so a later run can tell
# the leftovers of a killed process (kill -9 leaves them) from the files of a live one.
TEMP_KINDS = ("tmp", "staging", "scratch")
_TEMP_NAME = re.compile(r"^\..*\.(\d+)\.[A-Za-z0-9_]+\.(tmp|staging|scratch)$")


def temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def is_temporary_name(name: str) -> bool:
    """Whether `name` is one of this project's temporary files or folders."""
    return _TEMP_NAME.match(name) is not None


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (also through links and `..`)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_not_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse, before any work, an output path that is one of the files this command reads."""
    inputs = [Path(i) for i in inputs if i]
    for out in outputs:
        for src in inputs:
            if same_path(out, src):
                raise ShrinkError(f"output {out} is an input of this command ({src}): it would be overwritten; "
                                  "choose another output path")


def check_writable(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Refuse, before any work, an output that cannot be written: a file where a directory must go
    (or the reverse), or a parent on a read-only or full file system, or without permission. The
    test is real: a probe file is made in the nearest existing directory and removed."""
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise ShrinkError(f"output path {path} is a file, not a directory; choose another output")
    if not directory and path.is_dir():
        raise ShrinkError(f"output path {path} is a directory; give a file name")
    where = path if directory else path.parent
    existing = next((p for p in (where, *where.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise ShrinkError(f"cannot create {where}: {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=temp_prefix("write-probe"), suffix=".tmp", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ShrinkError(f"cannot write to {existing}: {exc.strerror or exc}") from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders that killed processes left in `directory` (ours only:
    the name pattern above, and a process ID that no longer runs). Returns what was removed."""
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def scratch_dir(parent: str | os.PathLike, what: str) -> Iterator[Path]:
    """A temporary folder inside `parent` (next to the outputs, not in /tmp), removed on the way
    out, also on an error or SIGTERM (the CLI turns it into an exception); after kill -9, the next
    sweep_stale_temporaries of `parent` removes it."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(parent)
    path = Path(tempfile.mkdtemp(prefix=temp_prefix(what), suffix=".scratch", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, forbid: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path next to `dest`; rename it onto `dest` only if the block succeeds.

    `forbid` lists input paths that must never be overwritten (output == input is an error).
    """
    dest = Path(dest)
    check_not_inputs([dest], forbid)
    if dest.is_dir():
        raise ShrinkError(f"output path {dest} is a directory")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest.name), suffix=".tmp", dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        raise ShrinkError(f"could not write {dest}: {exc.strerror or exc}") from exc
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


def json_safe(value: Any) -> Any:
    """asdict() output with tuples as lists and non-finite floats as strings (JSON has no inf)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def insert_after(record: dict[str, Any], anchor: str, values: dict[str, Any]) -> dict[str, Any]:
    """`record` with `values` placed right after the key `anchor`: a record written from a dataclass
    whose derived values are properties keeps the key order its files have always had."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        out[key] = value
        if key == anchor:
            out.update(values)
    return out


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise ShrinkError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ShrinkError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShrinkError(f"{what} {path} is not valid JSON: {exc}") from exc


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
