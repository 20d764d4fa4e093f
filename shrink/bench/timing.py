"""Time the candidates by the configured method, and say which method really ran.

- `processes` (the default): every candidate in a worker process of its own (shrink.bench.worker),
  as it would run alone in a deployment, with the thread settings it would ship with; the
  candidates take turns and each one's threads are quiet before the next one's block starts;
  repeated over `processes` rounds of fresh workers.
- `interleaved`: every candidate in this process. Their thread pools share the
  process and spin after each run, so on a small machine one disturbs the next; it is kept to
  compare against, and it is what in-memory PyTorch modules get (they cannot go to another
  process), with a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from shrink.bench.config import BenchConfig, Candidate, TorchCandidate
from shrink.bench.engines import Engine, EngineInfo, create_engine
from shrink.bench.runner import InProcessRunner, Progress, TimingRun, TimingSettings, measure_in_processes, measure_interleaved
from shrink.bench.worker import WorkerProcess
from shrink.errors import ShrinkError


@dataclass(frozen=True)
class Timed:
    run: TimingRun
    infos: tuple[EngineInfo, ...]
    method: str  # the method that ran
    note: str | None  # why it is not the configured one


# Workers settle between blocks (10-30 ms on the dev VM); blocks this long keep that a small share.
MIN_BLOCK_SECONDS = 0.1


def timing_settings(config: BenchConfig, min_block_seconds: float = 0.0) -> TimingSettings:
    return TimingSettings(
        warmup_runs=config.warmup_runs,
        warmup_seconds=config.warmup_seconds,
        min_runs=config.min_runs,
        min_seconds=config.min_seconds,
        block_runs=config.block_runs,
        max_seconds=config.max_seconds,
        min_block_seconds=min_block_seconds,
    )


def _first_run(engine: Engine, label: str) -> None:
    """Run once before timing, so a runtime failure (CUDA graph capture, a missing kernel) is one
    line naming the candidate, not a traceback minutes later."""
    try:
        engine.run_once()
    except ShrinkError:
        raise
    except Exception as exc:  # onnxruntime and torch raise their own types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ShrinkError(f"{label} failed on its first run: {first}") from exc


def _in_process(candidates: Sequence[Candidate], labels: Sequence[str], config: BenchConfig, threads: int,
                progress: Progress | None) -> tuple[TimingRun, tuple[EngineInfo, ...]]:
    engines: list[Engine] = []
    try:
        for candidate, label in zip(candidates, labels):
            engines.append(create_engine(candidate, config, threads))
            _first_run(engines[-1], label)
            info = engines[-1].info
            if progress:
                progress(f"loaded {label}: {info.engine} on {', '.join(info.providers)}")
        run = measure_interleaved([InProcessRunner(engine.run_once) for engine in engines], timing_settings(config),
                                  labels=labels, progress=progress)
        return run, tuple(engine.info for engine in engines)
    finally:
        for engine in engines:
            engine.close()


def _in_workers(candidates: Sequence[Candidate], labels: Sequence[str], config: BenchConfig, threads: int,
                progress: Progress | None) -> tuple[TimingRun, tuple[EngineInfo, ...]]:
    infos: dict[int, EngineInfo] = {}

    def spawn(index: int) -> WorkerProcess:
        worker = WorkerProcess(candidates[index], config, threads, labels[index])
        reply = worker.info
        infos.setdefault(index, EngineInfo(reply["engine"], tuple(reply["providers"]),
                                           {k: tuple(v) for k, v in reply["input_shapes"].items()},
                                           dict(reply["input_dtypes"])))
        if progress:
            progress(f"loaded {labels[index]} in worker PID {worker.process.pid}: {reply['engine']} on "
                     f"{', '.join(reply['providers'])}")
        return worker

    run = measure_in_processes(spawn, len(candidates), timing_settings(config, MIN_BLOCK_SECONDS), config.processes,
                               labels=labels, progress=progress)
    return run, tuple(infos[i] for i in range(len(candidates)))


def time_candidates(candidates: Sequence[Candidate], labels: Sequence[str], config: BenchConfig, threads: int,
                    progress: Progress | None = None) -> Timed:
    in_memory = [label for c, label in zip(candidates, labels) if isinstance(c, TorchCandidate) and not c.portable]
    if config.method == "processes" and not in_memory:
        run, infos = _in_workers(candidates, labels, config, threads, progress)
        return Timed(run, infos, "processes", None)
    note = None
    if config.method == "processes":
        note = (f"timed interleaved in one process, not in worker processes: {', '.join(in_memory)} "
                "is an in-memory module, which cannot be sent to another process (give a model spec)")
    run, infos = _in_process(candidates, labels, config, threads, progress)
    return Timed(run, infos, "interleaved", note)
