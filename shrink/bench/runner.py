"""The timing schedule: candidates take turns in round-robin blocks, one at a time.

Timing A fully and then B lets drift (thermal throttling, a neighbour's job, CPU frequency) land on
one of them. Round-robin blocks (A×k, B×k, C×k, A×k, ...) spread it over all of them equally.
Each candidate first warms up for at least `warmup_runs` runs and `warmup_seconds`; measuring then
continues, in whole rounds, until every candidate has at least `min_runs` runs and `min_seconds` of
measured time, or until the wall-clock cap `max_seconds` (the result says when it stopped there).
Blocks last about as long as each other: a candidate 100x faster than the slowest runs up to 100x
more times per block, so it reaches its `min_seconds` at the slowest one's pace instead of
dragging it through thousands of rounds.

A candidate is a `Runner`. After each block the runner is told to `settle`: a worker process
(shrink.bench.worker) returns only once its threads have stopped spinning, so at most one
candidate's thread pool is alive while another is timed. `measure_in_processes` repeats the
schedule over several rounds of fresh runners (fresh processes), because a process's own thread
placement decides its speed, and samples from inside one process cannot show that.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

Clock = Callable[[], float]
Progress = Callable[[str], None]
# Progress lines on stderr at most this often, so long runs show life without flooding the log.
PROGRESS_INTERVAL_S = 5.0
# A block of a very fast candidate grows to at most this many runs.
MAX_BLOCK_RUNS = 10_000


class Runner(Protocol):
    """One candidate, ready to run (in this process or in a worker process of its own)."""

    def warm_up(self, runs: int, seconds: float) -> tuple[int, float]: ...

    def run_block(self, runs: int) -> list[float]: ...

    def settle(self) -> bool | None: ...

    def close(self) -> None: ...


class InProcessRunner:
    """A `run_once` callable in this process. Nothing to settle: a pool in this process cannot be
    waited out (the interleaved method, and in-memory PyTorch modules)."""

    def __init__(self, run_once: Callable[[], None], clock: Clock = time.perf_counter) -> None:
        self.run_once, self.clock = run_once, clock

    def warm_up(self, runs: int, seconds: float) -> tuple[int, float]:
        return warm_up(self.run_once, runs, seconds, self.clock)

    def run_block(self, runs: int) -> list[float]:
        return time_block(self.run_once, runs, self.clock)

    def settle(self) -> bool | None:
        return None

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class TimingSettings:
    warmup_runs: int
    warmup_seconds: float
    min_runs: int
    min_seconds: float
    block_runs: int  # runs per block of the slowest candidate
    max_seconds: float | None = None  # wall-clock cap on the measured rounds; None: no cap
    min_block_seconds: float = 0.0  # blocks last at least this long (settling between blocks has a cost)


@dataclass(frozen=True)
class TimingRun:
    samples_s: tuple[tuple[float, ...], ...]  # per candidate, in measuring order (all processes)
    schedule: tuple[int, ...]  # candidate index of each measured block, in order
    warmup_runs: tuple[int, ...]
    warmup_s: tuple[float, ...]
    rounds: int
    block_runs: tuple[int, ...] = ()  # runs per block, per candidate (of the last process round)
    capped: bool = False  # stopped by max_seconds before min_runs / min_seconds were reached
    settled: tuple[bool | None, ...] = ()  # per block: its runner was seen quiet before the next began
    per_process_s: tuple[tuple[tuple[float, ...], ...], ...] = ()  # per candidate, per process round


def round_robin_schedule(candidates: int, rounds: int) -> list[int]:
    """Candidate index of each block: 0, 1, ..., n-1, 0, 1, ... for `rounds` rounds."""
    return [index for _ in range(rounds) for index in range(candidates)]


def balanced_block_runs(seconds_per_run: Sequence[float], block_runs: int, min_block_seconds: float = 0.0) -> list[int]:
    """Runs per block so that every block takes about as long as the slowest candidate's
    `block_runs` runs, and at least `min_block_seconds` (never fewer than `block_runs`, never more
    than MAX_BLOCK_RUNS)."""
    block_s = max(block_runs * max(seconds_per_run), min_block_seconds)
    runs = []
    for t in seconds_per_run:
        wanted = math.floor(block_s / t) if t > 0 else MAX_BLOCK_RUNS
        runs.append(max(block_runs, min(MAX_BLOCK_RUNS, wanted)))
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
    runners: Sequence[Runner],
    settings: TimingSettings,
    *,
    labels: Sequence[str] | None = None,
    clock: Clock = time.perf_counter,
    progress: Progress | None = None,
) -> TimingRun:
    """Warm up each runner, then time them in round-robin blocks, each block settled before the
    next one starts, until all have enough samples (or the cap is reached)."""
    labels = list(labels or [f"#{i}" for i in range(len(runners))])
    warmups = []
    for label, runner in zip(labels, runners):
        warmups.append(runner.warm_up(settings.warmup_runs, settings.warmup_seconds))
        runner.settle()
        if progress:
            progress(f"warmed up {label}: {warmups[-1][0]} runs in {warmups[-1][1]:.1f} s")
    blocks = balanced_block_runs([seconds / max(runs, 1) for runs, seconds in warmups], settings.block_runs,
                                 settings.min_block_seconds)
    samples: list[list[float]] = [[] for _ in runners]
    schedule: list[int] = []
    settled: list[bool | None] = []
    rounds = 0
    capped = False
    start = last_report = clock()
    while not _done(samples, settings):
        if settings.max_seconds is not None and rounds and clock() - start >= settings.max_seconds:
            capped = True
            break
        for index in round_robin_schedule(len(runners), 1):
            samples[index].extend(runners[index].run_block(blocks[index]))
            settled.append(runners[index].settle())  # its threads are quiet before the next block starts
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
        settled=tuple(settled),
        per_process_s=tuple((tuple(s),) for s in samples),
    )


def process_round_settings(settings: TimingSettings, processes: int, spent_s: float, round_index: int) -> TimingSettings:
    """One process round's share: the runs and seconds split evenly, the cap what is left of it."""
    remaining = processes - round_index
    cap = None if settings.max_seconds is None else max(0.0, settings.max_seconds - spent_s) / remaining
    return TimingSettings(
        warmup_runs=settings.warmup_runs,
        warmup_seconds=settings.warmup_seconds,
        min_runs=max(1, math.ceil(settings.min_runs / processes)),
        min_seconds=settings.min_seconds / processes,
        block_runs=settings.block_runs,
        max_seconds=cap,
        min_block_seconds=settings.min_block_seconds,
    )


def rotation(candidates: int, round_index: int) -> list[int]:
    """The order in which a process round starts and times the candidates: rotated each round, so
    no candidate always goes first."""
    return [(i + round_index) % candidates for i in range(candidates)]


def measure_in_processes(
    spawn: Callable[[int], Runner],
    candidates: int,
    settings: TimingSettings,
    processes: int,
    *,
    labels: Sequence[str] | None = None,
    clock: Clock = time.perf_counter,
    progress: Progress | None = None,
) -> TimingRun:
    """`processes` rounds; in each, `spawn(i)` makes a fresh runner (a worker process) for every
    candidate, they are timed by measure_interleaved, and closed. Runs and seconds are split over
    the rounds; the cap covers them all."""
    labels = list(labels or [f"#{i}" for i in range(candidates)])
    per_process: list[list[tuple[float, ...]]] = [[] for _ in range(candidates)]
    schedule: list[int] = []
    settled: list[bool | None] = []
    warmup_runs, warmup_s = [0] * candidates, [0.0] * candidates
    rounds, capped, blocks = 0, False, ()
    start = clock()
    for r in range(processes):
        order = rotation(candidates, r)
        runners: list[Runner] = []
        try:
            for index in order:
                runners.append(spawn(index))
            if progress:
                progress(f"process round {r + 1}/{processes}: fresh workers for {', '.join(labels[i] for i in order)}")
            run = measure_interleaved(runners, process_round_settings(settings, processes, clock() - start, r),
                                      labels=[labels[i] for i in order], clock=clock, progress=progress)
        finally:
            for runner in runners:
                runner.close()
        for position, index in enumerate(order):
            per_process[index].append(run.samples_s[position])
            warmup_runs[index] += run.warmup_runs[position]
            warmup_s[index] += run.warmup_s[position]
        schedule += [order[position] for position in run.schedule]
        settled += run.settled
        rounds += run.rounds
        blocks = tuple(run.block_runs[order.index(i)] for i in range(candidates))
        capped = capped or run.capped
    return TimingRun(
        samples_s=tuple(tuple(s for chunk in chunks for s in chunk) for chunks in per_process),
        schedule=tuple(schedule),
        warmup_runs=tuple(warmup_runs),
        warmup_s=tuple(warmup_s),
        rounds=rounds,
        block_runs=blocks,
        capped=capped,
        settled=tuple(settled),
        per_process_s=tuple(tuple(chunks) for chunks in per_process),
    )


def _progress_line(rounds: int, labels: list[str], samples: list[list[float]], settings: TimingSettings) -> str:
    parts = [f"{label} {len(s)}/{settings.min_runs} runs {sum(s):.1f}/{settings.min_seconds:g} s" for label, s in zip(labels, samples)]
    return f"round {rounds}: " + ", ".join(parts)
