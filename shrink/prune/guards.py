"""Time and memory guards that turn a runaway into a ShrinkError instead of a hang or an OOM kill.

torch-pruning's graph building can loop forever (issue #532) or grow without bound (swin_t grew to
24 GB on a 24 GB machine). A watchdog thread checks the elapsed time and the process's resident
memory while the guarded block runs; past a limit it raises GuardTripped in the guarded thread,
again at every poll until the block gives up (torch-pruning has a bare `except:` that could
swallow one), and the block exits with a one-line ShrinkError naming the stage that ran away.

The exception is delivered between Python bytecodes, so a single long native call (one huge
convolution) finishes before the guard can stop it; graph traversal is Python and stops promptly.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass

from shrink.errors import ShrinkError, ShrinkValueError
from shrink.sysinfo import available_mb, resident_mb

DEFAULT_SECONDS = 600.0
AVAILABLE_MEMORY_SHARE = 0.5  # default memory limit: this share of what was available at the start


class GuardTripped(BaseException):
    """Raised inside the guarded thread; BaseException so that `except Exception` lets it pass."""


@dataclass(frozen=True)
class GuardLimits:
    seconds: float = DEFAULT_SECONDS
    memory_mb: float | None = None  # growth over the memory in use at the start; None: half of what is available
    poll_seconds: float = 0.05

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ShrinkValueError(f"time limit must be positive, got {self.seconds}")
        if self.memory_mb is not None and not self.memory_mb > 0:
            raise ShrinkValueError(f"memory limit must be positive, got {self.memory_mb}")


REINJECT_SECONDS = 1.0  # if the guarded code swallowed GuardTripped, raise it again after this long


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None)


class ResourceGuard:
    """`with ResourceGuard(limits) as guard: guard.stage("building the graph"); ...`"""

    def __init__(self, limits: GuardLimits = GuardLimits(), what: str = "pruning") -> None:
        self.limits = limits
        self.what = what
        self._stage = "starting"
        self._watch_memory = True
        self._tripped: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def stage(self, label: str, *, watch_memory: bool = True) -> None:
        """Name what runs now (for the error). Stages that copy the model on purpose (checking a
        plan on copies of a big model) pass watch_memory=False: only the time limit applies."""
        self._stage = label
        self._watch_memory = watch_memory

    def __enter__(self) -> "ResourceGuard":
        self._thread_id = threading.get_ident()
        self._start = time.monotonic()
        self._baseline = resident_mb()
        available = available_mb()
        self._memory_limit = self.limits.memory_mb
        if self._memory_limit is None and available is not None:
            self._memory_limit = available * AVAILABLE_MEMORY_SHARE
        self._watchdog = threading.Thread(target=self._watch, name="shrink-prune-guard", daemon=True)
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        last_raised = None
        while not self._stop.wait(self.limits.poll_seconds):
            with self._lock:
                if self._stop.is_set():
                    return
                if self._tripped is None:
                    self._tripped = self._exceeded()
                now = time.monotonic()
                if self._tripped is not None and (last_raised is None or now - last_raised > REINJECT_SECONDS):
                    _raise_in_thread(self._thread_id, GuardTripped)
                    last_raised = now

    def _exceeded(self) -> str | None:
        elapsed = time.monotonic() - self._start
        if elapsed > self.limits.seconds:
            return f"took longer than the time limit of {self.limits.seconds:g} s"
        now = resident_mb() if self._watch_memory else None
        if None not in (now, self._baseline, self._memory_limit) and now - self._baseline > self._memory_limit:
            return (
                f"grew memory by {(now - self._baseline) / 1024:.1f} GB after {elapsed:.0f} s, over the "
                f"limit of {self._memory_limit / 1024:.1f} GB"
            )
        return None

    def _shut_down(self) -> None:
        with self._lock:
            self._stop.set()
            if self._tripped is not None:
                _raise_in_thread(self._thread_id, None)  # drop a pending GuardTripped not yet delivered
        self._watchdog.join()

    def __exit__(self, exc_type, exc, tb) -> bool:
        for _ in range(3):  # a GuardTripped can land while shutting down: then shut down again
            try:
                self._shut_down()
                break
            except GuardTripped:
                continue
        tripped = self._tripped
        if tripped is not None:
            raise ShrinkError(
                f"{self.what} {tripped} while {self._stage}; raise the limit (--time-limit / --memory-limit) "
                "or leave the offending layers out (--ignore)"
            ) from None
        return False
