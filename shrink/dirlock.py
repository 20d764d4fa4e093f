"""One writer per output directory: a lock file held with flock(2) while a command writes there.

The kernel drops an flock when its process dies, however it dies, so a lock can never outlive its
holder. A lock file that is there but not held is the leftover of a killed run: it is taken over
(and said so). A second command that finds the lock held is refused with the holder's PID.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from shrink.errors import ShrinkError

LOCK_FILE = ".shrink.lock"


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    command: str
    since_utc: str


def _read_holder(fd: int) -> LockHolder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", errors="replace")
    try:
        return LockHolder(**json.loads(text))
    except (ValueError, TypeError):  # empty (just created) or not ours
        return None


def _write_holder(fd: int, holder: LockHolder) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(asdict(holder)).encode("utf-8"))
    os.fsync(fd)


def _acquire(path: Path) -> tuple[int, LockHolder | None]:
    """(fd holding the lock, the stale holder it took over or None); raises when the lock is held."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = (f"PID {holder.pid} on {holder.host}, `shrink {holder.command}` since {holder.since_utc}"
                   if holder else "another process")
            raise ShrinkError(f"{path.parent} is in use by {who}; wait for it to finish, or choose another "
                              "output directory") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder unlinked while we were opening it
            return fd, _read_holder(fd)
        os.close(fd)


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike, command: str,
                   on_stale=None) -> Iterator[LockHolder | None]:
    """Hold `directory`'s lock for the block (creating the directory if needed); yields the stale
    holder taken over, if any, and tells `on_stale(line)` about it. A directory this call created
    and the block left empty is removed again, so a refused run leaves nothing behind."""
    directory = Path(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShrinkError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    path = directory / LOCK_FILE
    try:
        fd, stale = _acquire(path)
    except OSError as exc:
        raise ShrinkError(f"cannot lock {directory}: {exc.strerror or exc}") from exc
    if stale is not None and on_stale is not None:
        on_stale(f"taking over the lock of PID {stale.pid} (`shrink {stale.command}` since {stale.since_utc}), "
                 "which is no longer running")
    since = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    _write_holder(fd, LockHolder(os.getpid(), socket.gethostname(), command, since))
    try:
        yield stale
    finally:
        path.unlink(missing_ok=True)  # while still held: nobody can take a lock on the old file
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only succeeds when empty
