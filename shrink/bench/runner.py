"""Interleaved timing: every candidate in one process, in round-robin blocks.

Timing A fully and then B lets drift (thermal throttling, a neighbour's job, CPU frequency) land on
one of them. Round-robin blocks (A×k, B×k, C×k, A×k, ...) spread it over all of them equally.
Each candidate first warms up for at least `warmup_runs` runs and `warmup_seconds`; measuring then
continues, in whole rounds, until every candidate has at least `min_runs` runs and `min_seconds` of
measured time, or until the wall-clock cap `max_seconds` (the result says when it stopped there).
Blocks last about as long as each other: a candidate 100x faster than the slowest runs up to 100x
more times per block, so it reaches its `min_seconds` at the slowest one's pace instead of
dragging it through thousands of rounds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

Clock = Callable[[], float]
Progress = Callable[[str], None]
# Progress lines on stderr at most this often, so long runs show life without flooding the log.
PROGRESS_INTERVAL_S = 5.0
# A block of a very fast candidate grows to at most this many runs.
MAX_BLOCK_RUNS = 10_000


@dataclass(frozen=True)
class TimingSettings:
    warmup_runs: int
    warmup_seconds: float
    min_runs: int
    min_seconds: float
    block_runs: int  # runs per block of the slowest candidate
    max_seconds: float | None = None  # wall-clock cap on the measured rounds; None: no cap


@dataclass(frozen=True)
class TimingRun:
    samples_s: tuple[tuple[float, ...], ...]  # per candidate, in measuring order
    schedule: tuple[int, ...]  # candidate index of each measured block, in order
    warmup_runs: tuple[int, ...]
    warmup_s: tuple[float, ...]
    rounds: int
    block_runs: tuple[int, ...] = ()  # runs per block, per candidate
    capped: bool = False  # stopped by max_seconds before min_runs / min_seconds were reached


def round_robin_schedule(candidates: int, rounds: int) -> list[int]:
    """Candidate index of each block: 0, 1, ..., n-1, 0, 1, ... for `rounds` rounds."""
    return [index for _ in range(rounds) for index in range(candidates)]


def balanced_block_runs(seconds_per_run: Sequence[float], block_runs: int) -> list[int]:
    """Runs per block so that every block takes about as long as the slowest candidate's
    `block_runs` runs (never fewer than `block_runs`, never more than MAX_BLOCK_RUNS)."""
    slowest = max(seconds_per_run)
    runs = []
    for t in seconds_per_run:
        ratio = slowest / t if t > 0 else float(MAX_BLOCK_RUNS)
        runs.append(max(block_runs, min(MAX_BLOCK_RUNS, math.floor(block_runs * ratio))))
    return runs


def warm_up(run_once: Callable[[], None], runs: int, seconds: float, clock: Clock) -> tuple[int, float]:
    """Run until both `runs` runs and `seconds` have passed; returns (runs done, seconds spent)."""
    start = clock()
    done = 0
    while done < runs or clock() - start < seconds:
        run_once()
        done += 1
    return done, clock() - start


def time_block(run_once: Callable[[], None], runs: int, clock: Clock) -> list[float]:
    """Seconds taken by each of `runs` runs (run_once must block until its work is finished)."""
    samples = []
    for _ in range(runs):
        start = clock()
        run_once()
        samples.append(clock() - start)
    return samples


def _done(samples: list[list[float]], settings: TimingSettings) -> bool:
    return all(len(s) >= settings.min_runs and sum(s) >= settings.min_seconds for s in samples)


def measure_interleaved(
    runners: Sequence[Callable[[], None]],
    settings: TimingSettings,
    *,
    labels: Sequence[str] | None = None,
    clock: Clock = time.perf_counter,
    progress: Progress | None = None,
) -> TimingRun:
    """Warm up each runner, then time them in round-robin blocks until all have enough samples
    (or the cap is reached)."""
    labels = list(labels or [f"#{i}" for i in range(len(runners))])
    warmups = []
    for label, run_once in zip(labels, runners):
        warmups.append(warm_up(run_once, settings.warmup_runs, settings.warmup_seconds, clock))
        if progress:
            progress(f"warmed up {label}: {warmups[-1][0]} runs in {warmups[-1][1]:.1f} s")
    blocks = balanced_block_runs([seconds / max(runs, 1) for runs, seconds in warmups], settings.block_runs)
    samples: list[list[float]] = [[] for _ in runners]
    schedule: list[int] = []
    rounds = 0
    capped = False
    start = last_report = clock()
    while not _done(samples, settings):
        if settings.max_seconds is not None and rounds and clock() - start >= settings.max_seconds:
            capped = True
            break
        for index in round_robin_schedule(len(runners), 1):
            samples[index].extend(time_block(runners[index], blocks[index], clock))
            schedule.append(index)
        rounds += 1
        if progress and clock() - last_report >= PROGRESS_INTERVAL_S:
            last_report = clock()
            progress(_progress_line(rounds, labels, samples, settings))
    if progress:
        progress(_progress_line(rounds, labels, samples, settings)
                 + (f"; stopped by the {settings.max_seconds:g} s cap" if capped else ""))
    return TimingRun(
        samples_s=tuple(tuple(s) for s in samples),
        schedule=tuple(schedule),
        warmup_runs=tuple(w[0] for w in warmups),
        warmup_s=tuple(w[1] for w in warmups),
        rounds=rounds,
        block_runs=tuple(blocks),
        capped=capped,
    )


def _progress_line(rounds: int, labels: list[str], samples: list[list[float]], settings: TimingSettings) -> str:
    parts = [f"{label} {len(s)}/{settings.min_runs} runs {sum(s):.1f}/{settings.min_seconds:g} s" for label, s in zip(labels, samples)]
    return f"round {rounds}: " + ", ".join(parts)
