"""The bench stage: `run_bench(candidates, config) -> BenchResult`.

Order of work, chosen so that nothing disturbs the timing:
1. validate every candidate (fail in a second, not after minutes of timing);
2. measure memory, one fresh child process per candidate;
3. time them (shrink.bench.timing): by default each in a worker process of its own, taking turns,
   over several rounds of fresh workers; with --self-check the first one against itself too;
4. profile (optional), in a separate pass;
5. statistics (intervals that include the spread between processes), speedups against the first
   candidate, the machine's load and steal, notes and the caveats every headline must carry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Sequence

from shrink.bench.caveats import machine_caveats
from shrink.bench.config import BenchConfig, Candidate, OnnxCandidate, unique_labels
from shrink.bench.engines import check_input_memory, check_onnx_file, check_runtime
from shrink.bench.load import load_average, load_report, read_cpu_times
from shrink.bench.machine import MachineInfo, capture_machine
from shrink.bench.memory import MemoryUsage, measure_memory
from shrink.bench.process_stats import hierarchical_median_ci, hierarchical_speedup, process_spread
from shrink.bench.profile import ProfileReport, profile_candidate, profile_diff, profile_notes
from shrink.bench.results import SCHEMA, SYNTHETIC_INPUTS, BenchResult, CandidateResult, SelfCheck, timing_threads
from shrink.bench.runner import Progress, TimingRun
from shrink.bench.stats import NOISY_CV_THRESHOLD, summarize
from shrink.bench.timing import time_candidates
from shrink.errors import ShrinkValueError
from shrink.sysinfo import available_mb


def _say(progress: Progress | None, line: str) -> None:
    if progress:
        progress(line)


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


NULL_TOLERANCE = 0.03  # the null test passes when A vs an identical A is within 1.00 +- this


def _null_candidate(candidate: Candidate) -> Candidate:
    """The same file (or spec) again, loaded by a worker of its own: the null test's twin."""
    return dataclasses.replace(candidate, name=None)


def _self_check(label: str, speed) -> SelfCheck:
    passed = abs(speed.ratio - 1.0) <= NULL_TOLERANCE and speed.ci_low <= 1.0 <= speed.ci_high
    return SelfCheck(label, speed.ratio, speed.ci_low, speed.ci_high, NULL_TOLERANCE, passed)


def _own_cpu_s() -> float:
    """CPU time of this process and of its children that have been waited for (the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _statistics(per_process: tuple, batch: int, seed: int):
    """Pooled summary, with the interval of the median over processes when there are several."""
    pooled = [s for chunk in per_process for s in chunk]
    latency = summarize(pooled, batch, seed=seed)
    if len(per_process) > 1:
        low, high = hierarchical_median_ci([[s * 1e3 for s in chunk] for chunk in per_process], seed=seed)
        latency = dataclasses.replace(latency, median_ci_low_ms=low, median_ci_high_ms=high)
    return latency, process_spread(per_process)


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
    machine = capture_machine()
    threads = timing_threads(config, machine)
    memory = _memory(candidates, labels, config, threads, progress)
    timed_candidates, timed_labels = list(candidates), list(labels)
    if config.self_check:
        timed_candidates.append(_null_candidate(candidates[0]))
        timed_labels.append(f"{labels[0]} (null copy)")
    load_before, cpu_before, own_before = load_average(), read_cpu_times(), _own_cpu_s()
    timed = time_candidates(timed_candidates, timed_labels, config, threads, progress)
    load = load_report(cpu_before, read_cpu_times(), _own_cpu_s() - own_before, (load_before, load_average()))
    timing = timed.run
    profile = _profile(candidates, labels, config, threads, machine.simd_block, progress) if config.profile else None

    per_process = timing.per_process_s
    results = []
    for i, (candidate, label, info) in enumerate(zip(candidates, labels, timed.infos)):
        latency, spread = _statistics(per_process[i], config.batch, config.seed)
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
                latency=latency,
                speedup=hierarchical_speedup(per_process[0], per_process[i], labels[0], seed=config.seed) if i else None,
                memory=memory[i],
                samples_ms=tuple(s * 1e3 for s in timing.samples_s[i]),
                spread=spread,
                process_runs=tuple(len(chunk) for chunk in per_process[i]),
            )
        )
    self_check = None
    if config.self_check:
        null = hierarchical_speedup(per_process[0], per_process[-1], labels[0], seed=config.seed)
        self_check = _self_check(labels[0], null)
    checked = [s for s in timing.settled if s is not None]
    settled_share = sum(checked) / len(checked) if checked else None
    notes = _notes(config, threads, machine, results, load.load_average_1m, timing)
    if timed.note:
        notes.insert(0, timed.note)
    return BenchResult(
        schema=SCHEMA,
        created_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        config=config,
        machine=machine,
        inputs=SYNTHETIC_INPUTS,
        load_average_1m=load.load_average_1m,
        rounds=timing.rounds,
        schedule=tuple(i for i in timing.schedule if i < len(candidates)),
        block_runs=timing.block_runs[: len(candidates)],
        capped=timing.capped,
        candidates=tuple(results),
        profile=profile,
        notes=tuple(notes + _process_notes(results, self_check, settled_share)),
        method=timed.method,
        processes=len(per_process[0]),
        settled_share=settled_share,
        load=load,
        self_check=self_check,
        caveats=tuple(machine_caveats(load, self_check, timing.capped)),
    )


def _process_notes(results: list[CandidateResult], self_check: SelfCheck | None,
                   settled_share: float | None) -> list[str]:
    notes = []
    for r in results:
        if r.spread is not None and r.spread.bimodal:
            low, high = r.spread.groups_ms
            notes.append(f"{r.label} is bimodal across processes: medians {', '.join(f'{m:.3g}' for m in low)} ms "
                         f"vs {', '.join(f'{m:.3g}' for m in high)} ms; which one a process gets is decided when it "
                         "starts, so a deployment may see either")
    if self_check is not None:
        verdict = "passed" if self_check.passed else "FAILED"
        notes.append(f"null test {verdict}: {self_check.label} against itself {self_check.ratio:.3f}x "
                     f"[{self_check.ci_low:.3f}, {self_check.ci_high:.3f}] (tolerance 1.00 +- {self_check.tolerance:.2f})")
    if settled_share is not None and settled_share < 1.0:
        notes.append(f"{1 - settled_share:.0%} of the blocks ended with their worker still using the CPU after "
                     "the settle wait; the next block may have shared the CPU with it")
    return notes
