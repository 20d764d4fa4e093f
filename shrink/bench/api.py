"""The bench stage: `run_bench(candidates, config) -> BenchResult`.

Order of work, chosen so that nothing disturbs the timing:
1. validate every candidate (fail in a second, not after minutes of timing);
2. measure memory, one fresh child process per candidate;
3. load every candidate, then time them interleaved in one process;
4. profile (optional), in a separate pass;
5. statistics, speedups against the first candidate, notes.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Sequence

from shrink.bench.config import BenchConfig, Candidate, OnnxCandidate, unique_labels
from shrink.bench.engines import Engine, EngineInfo, check_input_memory, check_onnx_file, check_runtime, create_engine
from shrink.bench.machine import MachineInfo, capture_machine, physical_cores
from shrink.bench.memory import MemoryUsage, measure_memory
from shrink.bench.profile import ProfileReport, profile_candidate, profile_diff, profile_notes
from shrink.bench.results import SCHEMA, SYNTHETIC_INPUTS, BenchResult, CandidateResult
from shrink.bench.runner import Progress, TimingRun, TimingSettings, measure_interleaved
from shrink.bench.stats import NOISY_CV_THRESHOLD, speedup, summarize
from shrink.errors import ShrinkError, ShrinkValueError
from shrink.sysinfo import available_mb


def _say(progress: Progress | None, line: str) -> None:
    if progress:
        progress(line)


def _timing_settings(config: BenchConfig) -> TimingSettings:
    return TimingSettings(
        warmup_runs=config.warmup_runs,
        warmup_seconds=config.warmup_seconds,
        min_runs=config.min_runs,
        min_seconds=config.min_seconds,
        block_runs=config.block_runs,
        max_seconds=config.max_seconds,
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


# The helpers below share one signature: what to run, under which config, and where to report.
Candidates = Sequence[Candidate]
Labels = Sequence[str]


def _memory(
    candidates: Candidates, labels: Labels, config: BenchConfig, threads: int, progress: Progress | None
) -> list[MemoryUsage | None]:
    if not config.measure_memory:
        return [None] * len(candidates)
    usages = []
    for candidate, label in zip(candidates, labels):
        _say(progress, f"measuring memory of {label} in a fresh process")
        usages.append(measure_memory(candidate, config, threads))
    return usages


def _time(
    candidates: Candidates, labels: Labels, config: BenchConfig, threads: int, progress: Progress | None
) -> tuple[list[EngineInfo], TimingRun]:
    engines: list[Engine] = []
    try:
        for candidate, label in zip(candidates, labels):
            engines.append(create_engine(candidate, config, threads))
            _first_run(engines[-1], label)
            info = engines[-1].info
            _say(progress, f"loaded {label}: {info.engine} on {', '.join(info.providers)}")
        timing = measure_interleaved(
            [engine.run_once for engine in engines], _timing_settings(config), labels=labels, progress=progress
        )
        return [engine.info for engine in engines], timing
    finally:
        for engine in engines:
            engine.close()


def _profile(
    candidates: Candidates,
    labels: Labels,
    config: BenchConfig,
    threads: int,
    simd_block: int,
    progress: Progress | None,
) -> ProfileReport:
    profiles, notes = [], list(profile_notes(config))
    for candidate, label in zip(candidates, labels):
        if not isinstance(candidate, OnnxCandidate):
            notes.append(f"{label}: not profiled (the profile covers onnxruntime candidates only)")
            continue
        _say(progress, f"profiling {label}")
        profiles.append(profile_candidate(candidate, label, config, threads, simd_block))
    return ProfileReport(tuple(p.label for p in profiles), tuple(profiles), profile_diff(profiles), tuple(notes))


def _file_bytes(candidate: Candidate) -> int | None:
    """Size of the file that would be shipped: the ONNX file, or a PyTorch model's weights file."""
    if isinstance(candidate, OnnxCandidate):
        return Path(candidate.path).stat().st_size
    for name in (candidate.weights, candidate.spec):
        if name and Path(name).is_file():
            return Path(name).stat().st_size
    return None


def _load_average() -> float | None:
    """1-minute load average: other processes competing for the CPU show up here."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not available on this OS
        return None


def _notes(
    config: BenchConfig,
    threads: int,
    machine: MachineInfo,
    results: list[CandidateResult],
    load: tuple[float | None, float | None],
    timing: TimingRun,
) -> list[str]:
    notes = []
    if timing.capped:
        notes.append(
            f"timing was stopped by the {config.max_seconds:g} s cap (max_seconds) after {timing.rounds} rounds, "
            f"before every candidate had {config.min_runs} runs and {config.min_seconds:g} s measured"
        )
    busiest = max((x for x in load if x is not None), default=None)
    if busiest is not None and busiest > machine.logical_cpus:
        notes.append(
            f"the machine was busy: 1-minute load average up to {busiest:.1f} on {machine.logical_cpus} "
            "logical CPUs, so other processes competed with the timing"
        )
    if config.below_recommended_warmup():
        notes.append(
            f"warmup of {config.warmup_runs} runs / {config.warmup_seconds:g} s is below the recommended "
            "10 runs and 1 s"
        )
    if config.provider == "cpu" and threads > machine.physical_cores:
        notes.append(f"{threads} threads on {machine.physical_cores} physical cores: threads share cores")
    if len({str(sorted(r.input_shapes.values())) for r in results}) > 1:
        notes.append("candidates have different input shapes; their latencies are not like for like")
    for r in results:
        if r.latency.noisy:
            notes.append(
                f"{r.label} is noisy: coefficient of variation {r.latency.cv:.1%} > {NOISY_CV_THRESHOLD:.0%}; "
                "rerun on an idle machine before trusting it"
            )
        if r.speedup and r.speedup.ci_low <= 1.0 <= r.speedup.ci_high:
            notes.append(f"{r.label}: the 95% interval of its speedup includes 1.0 (no measurable difference)")
    return notes


def run_bench(
    candidates: Sequence[Candidate], config: BenchConfig = BenchConfig(), *, progress: Progress | None = None
) -> BenchResult:
    """Time `candidates` under `config`; speedups are against the first candidate."""
    candidates = tuple(candidates)
    if not candidates:
        raise ShrinkValueError("bench needs at least one candidate")
    available = available_mb()
    for candidate in candidates:
        if isinstance(candidate, OnnxCandidate):
            check_onnx_file(candidate.path)
            check_input_memory(candidate.path, config.batch, available)
    check_runtime(candidates, config)
    labels = unique_labels(candidates)
    threads = config.threads or physical_cores()
    machine = capture_machine()
    memory = _memory(candidates, labels, config, threads, progress)
    load_before = _load_average()
    infos, timing = _time(candidates, labels, config, threads, progress)
    load = (load_before, _load_average())
    profile = _profile(candidates, labels, config, threads, machine.simd_block, progress) if config.profile else None

    results = []
    for i, (candidate, label, info) in enumerate(zip(candidates, labels, infos)):
        samples = timing.samples_s[i]
        results.append(
            CandidateResult(
                label=label,
                kind="onnx" if isinstance(candidate, OnnxCandidate) else "torch",
                source=candidate.source,
                file_bytes=_file_bytes(candidate),
                engine=info.engine,
                providers=info.providers,
                input_shapes=dict(info.input_shapes),
                input_dtypes=dict(info.input_dtypes),
                warmup_runs=timing.warmup_runs[i],
                warmup_s=timing.warmup_s[i],
                latency=summarize(samples, config.batch, seed=config.seed),
                speedup=speedup(timing.samples_s[0], samples, labels[0], seed=config.seed) if i else None,
                memory=memory[i],
                samples_ms=tuple(s * 1e3 for s in samples),
            )
        )
    return BenchResult(
        schema=SCHEMA,
        created_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        config=config.to_dict(),
        threads=threads,
        batch=config.batch,
        machine=machine,
        inputs=SYNTHETIC_INPUTS,
        load_average_1m=load,
        rounds=timing.rounds,
        schedule=timing.schedule,
        block_runs=timing.block_runs,
        capped=timing.capped,
        candidates=tuple(results),
        profile=profile,
        notes=tuple(_notes(config, threads, machine, results, load, timing)),
    )
