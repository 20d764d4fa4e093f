"""Typed benchmark results. `to_dict()` turns them into the JSON records on disk."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.bench.config import BenchConfig
from shrink.bench.load import LoadReport
from shrink.bench.machine import MachineInfo
from shrink.bench.memory import MemoryUsage
from shrink.bench.process_stats import ProcessSpread
from shrink.bench.profile import ProfileReport
from shrink.bench.stats import LatencyStats, Speedup
from shrink.errors import ShrinkError
from shrink.fileio import insert_after, read_json

SCHEMA = "torch-shrink/bench/v1"
SYNTHETIC_INPUTS = (
    "synthetic inputs (seeded standard normal, shape from the graph): they measure latency only, "
    "not accuracy"
)


@dataclass(frozen=True)
class CandidateResult:
    label: str
    kind: str  # onnx | torch
    source: str  # file path or model spec
    file_bytes: int | None
    engine: str
    providers: tuple[str, ...]
    input_shapes: dict[str, tuple[int, ...]]
    input_dtypes: dict[str, str]
    warmup_runs: int
    warmup_s: float
    latency: LatencyStats
    speedup: Speedup | None  # against the first candidate; None for the first itself
    memory: MemoryUsage | None
    samples_ms: tuple[float, ...]  # every measured run, in order, for re-analysis and plots
    spread: ProcessSpread | None = None  # within and between the worker processes
    process_runs: tuple[int, ...] = ()  # runs measured in each process round (samples_ms in that order)


@dataclass(frozen=True)
class SelfCheck:
    """The null test: the first candidate against itself, in workers of their own, same settings.
    An apparent speedup beyond `tolerance`, or an interval without 1.0, is what this machine adds
    to any comparison by itself."""

    label: str
    ratio: float
    ci_low: float
    ci_high: float
    tolerance: float
    passed: bool


def timing_threads(config: BenchConfig, machine: MachineInfo) -> int:
    """The intra-op threads a bench runs with: the configured number, else one per physical core."""
    return config.threads or machine.physical_cores


@dataclass(frozen=True)
class BenchResult:
    schema: str
    created_utc: str
    config: BenchConfig
    machine: MachineInfo
    inputs: str
    load_average_1m: tuple[float | None, float | None]  # before and after the timing
    rounds: int
    schedule: tuple[int, ...]  # candidate index of each measured block, in order
    candidates: tuple[CandidateResult, ...]
    profile: ProfileReport | None
    notes: tuple[str, ...]
    block_runs: tuple[int, ...] = ()  # runs per block, per candidate (blocks last about as long)
    capped: bool = False  # the max_seconds cap stopped the timing early
    method: str = "interleaved"  # processes | interleaved: how it was timed (config.method may ask otherwise)
    processes: int = 1  # rounds of fresh worker processes
    settled_share: float | None = None  # blocks whose worker was seen quiet before the next began
    load: LoadReport | None = None  # steal and other processes' CPU use during the timing
    self_check: SelfCheck | None = None
    caveats: tuple[str, ...] = ()  # what every headline from this result must say beside it

    @property
    def threads(self) -> int:
        return timing_threads(self.config, self.machine)

    @property
    def batch(self) -> int:
        return self.config.batch

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["config"] = self.config.to_dict()
        # Readers of saved results (bench-compare, reports) find threads and batch at the top level.
        return insert_after(record, "config", {"threads": self.threads, "batch": self.batch})


# What bench-compare and the renderers read from a saved result.
REQUIRED_KEYS = {"machine": dict, "config": dict, "candidates": list, "threads": int, "batch": int}
REQUIRED_CANDIDATE_KEYS = {"label": str, "samples_ms": list, "latency": dict}


def load_result(path: str | Path) -> dict[str, Any]:
    """A saved bench JSON file as a dict, after checking that it is one."""
    data = read_json(path, "bench result")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ShrinkError(f"{path} is not a shrink bench result (expected schema {SCHEMA!r})")
    missing = [key for key, kind in REQUIRED_KEYS.items() if not isinstance(data.get(key), kind)]
    for i, cand in enumerate(data.get("candidates") or []):
        if not isinstance(cand, dict):
            missing.append(f"candidates[{i}]")
            continue
        missing += [f"candidates[{i}].{key}" for key, kind in REQUIRED_CANDIDATE_KEYS.items()
                    if not isinstance(cand.get(key), kind)]
        if isinstance(cand.get("latency"), dict) and not isinstance(cand["latency"].get("p50_ms"), (int, float)):
            missing.append(f"candidates[{i}].latency.p50_ms")
    if missing:
        raise ShrinkError(f"{path} is an incomplete bench result (edited or truncated?): missing or malformed "
                          f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    return data
