"""One candidate alone in its own process: the worker's command loop, and the parent's handle on it.

The parent sends one JSON line per command on the worker's stdin and reads one JSON line back:
`load` (create the engine and run it once), `warmup`, `block` (time N runs and return their
seconds), `quit`. Between commands a worker blocks on its stdin, so its threads sleep; the parent
only starts the next candidate's block once the last one has stopped using the CPU (`settle`):
onnxruntime's intra-op threads spin for tens of milliseconds after a run, and on a 2-core machine
one candidate's spinning threads would otherwise steal cycles from the next.

The worker's stdout carries only protocol lines: whatever a library prints goes to its stderr,
which the parent keeps in an anonymous temporary file for the error message of a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shrink.bench.config import BenchConfig, Candidate, candidate_from_dict, candidate_to_dict
from shrink.errors import ShrinkError, first_line

# settle(): a worker counts as quiet when its threads used less than this much CPU over one poll.
# The kernel brings a running thread's CPU time up to date at each scheduler tick (every 4 ms on
# the dev VM), so a poll must span several ticks: a spinning thread shows 8-10 ms in 10 ms.
QUIET_CPU_NS = 1_000_000
SETTLE_POLL_S = 0.010
SETTLE_MAX_S = 0.25  # onnxruntime's pools spin ~25 ms here; a worker busier than this is reported
FALLBACK_PAUSE_S = 0.05  # without /proc the CPU use cannot be read: a pause longer than the spin
LOAD_TIMEOUT_S = 900  # a TensorRT engine build can take minutes
COMMAND_TIMEOUT_S = 600


# ----------------------------------------------------------------------------- worker side


def _reply(out, **message: Any) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def serve(commands, out) -> None:
    """The worker's loop: one reply per command, until `quit` or the end of its input."""
    from shrink.bench.engines import create_engine
    from shrink.bench.runner import time_block, warm_up

    engine = None
    for line in commands:
        request = json.loads(line)
        try:
            if request["cmd"] == "load":
                config = BenchConfig.from_dict(request["config"])
                engine = create_engine(candidate_from_dict(request["candidate"]), config, int(request["threads"]))
                engine.run_once()  # a runtime failure is one line now, not minutes later
                info = engine.info
                _reply(out, engine=info.engine, providers=list(info.providers),
                       input_shapes={k: list(v) for k, v in info.input_shapes.items()},
                       input_dtypes=dict(info.input_dtypes))
            elif request["cmd"] == "warmup":
                runs, seconds = warm_up(engine.run_once, int(request["runs"]), float(request["seconds"]),
                                        time.perf_counter)
                _reply(out, runs=runs, seconds=seconds)
            elif request["cmd"] == "block":
                _reply(out, samples=time_block(engine.run_once, int(request["runs"]), time.perf_counter))
            elif request["cmd"] == "quit":
                _reply(out, bye=True)
                return
            else:
                _reply(out, error=f"unknown command {request['cmd']!r}")
        except Exception as exc:  # onnxruntime and torch raise their own types; the parent names the candidate
            _reply(out, error=first_line(exc))


def _main() -> int:
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # a library's print() must not corrupt the protocol
    serve(sys.stdin, protocol)
    return 0


# ----------------------------------------------------------------------------- parent side


def thread_cpu_ns(pid: int) -> int | None:
    """CPU time used so far by every thread of `pid`, in ns (/proc/PID/task/*/schedstat), or None."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        return total
    except (OSError, ValueError, IndexError):
        return None


class WorkerProcess:
    """A candidate loaded in a fresh `python -m shrink.bench.worker`; the runner's `Runner` protocol."""

    def __init__(self, candidate: Candidate, config: BenchConfig, threads: int, label: str) -> None:
        spec = candidate_to_dict(candidate)
        if spec is None:
            raise ShrinkError(f"{label} is an in-memory module: it cannot run in a worker process "
                              "(give a model spec, or use method interleaved)")
        self.label = label
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # anonymous: nothing left behind
        # The worker must import this same shrink package even where it is not pip-installed.
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen([sys.executable, "-m", "shrink.bench.worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        try:
            self.info = self._request(LOAD_TIMEOUT_S, cmd="load", candidate=spec, config=config.to_dict(),
                                      threads=threads)
        except BaseException:  # a worker that failed to load must not outlive the error
            self.close()
            raise

    def _request(self, timeout_s: float, **message: Any) -> dict[str, Any]:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.process.wait(timeout=timeout_s)
            self._stderr.seek(0)
            last = (self._stderr.read().strip().splitlines() or [f"exit code {self.process.returncode}"])[-1]
            raise ShrinkError(f"{self.label}: its worker process died: {last}")
        reply = json.loads(line)
        if "error" in reply:
            raise ShrinkError(f"{self.label} failed in its worker process: {reply['error']}")
        return reply

    def warm_up(self, runs: int, seconds: float) -> tuple[int, float]:
        reply = self._request(COMMAND_TIMEOUT_S, cmd="warmup", runs=runs, seconds=seconds)
        return int(reply["runs"]), float(reply["seconds"])

    def run_block(self, runs: int) -> list[float]:
        return [float(s) for s in self._request(COMMAND_TIMEOUT_S, cmd="block", runs=runs)["samples"]]

    def cpu_ns(self) -> int | None:
        return thread_cpu_ns(self.process.pid)

    def settle(self) -> bool | None:
        """Wait until the worker's threads have stopped using the CPU: True when seen quiet, False
        when still busy after SETTLE_MAX_S, None when it cannot be seen (no /proc: a fixed pause)."""
        previous = self.cpu_ns()
        if previous is None:
            time.sleep(FALLBACK_PAUSE_S)
            return None
        deadline = time.perf_counter() + SETTLE_MAX_S
        while time.perf_counter() < deadline:
            time.sleep(SETTLE_POLL_S)
            now = self.cpu_ns()
            if now is None or now - previous < QUIET_CPU_NS:
                return True
            previous = now
        return False

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._request(10, cmd="quit")
                self.process.wait(timeout=10)
            except (ShrinkError, subprocess.TimeoutExpired, ValueError):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass


if __name__ == "__main__":
    raise SystemExit(_main())
