"""Statistics across worker processes: the spread within and between processes, a bimodal flag,
and intervals that include the spread between processes.

A fresh process can land in a slow thread placement and stay there (dense mobilenet_v2 ran at
5.3 ms in some processes and 8.6 ms in others on the dev VM), so samples from one process are not
independent of that process. The intervals here come from a hierarchical bootstrap (each resample
draws the processes with replacement, then runs within each drawn process, pools them and takes
the median), widened to Student's t-interval over the per-process values when there are several
processes: a bootstrap over four processes cannot see how far a fifth may land (on the dev VM its
intervals covered an independent fresh-process reference on 5 of 10 pairs;
docs/measured/local-bench-method.md). With one process it is the plain bootstrap of the median. A
candidate and its baseline draw the same processes: they were timed side by side in them, and that
pairing cancels what a process round shares (the machine's state at the time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from shrink.bench.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, MAX_BOOTSTRAP_SAMPLES, Speedup, thin
from shrink.errors import ShrinkValueError

# Per-process medians that split into two groups at least this far apart (the larger over the
# smaller) flag a candidate as bimodal: which group a process lands in is decided when it starts.
BIMODAL_GAP = 1.15
ROBUST_CV_SCALE = 1.4826  # MAD x this estimates the standard deviation of a normal distribution
_CHUNK = 100  # resamples drawn per numpy call
# Student's t, 97.5th percentile, for 1..30 degrees of freedom.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

Rounds = Sequence[Sequence[float]]  # one candidate's samples, per process


@dataclass(frozen=True)
class ProcessSpread:
    """How one candidate's latency varied inside its processes and between them."""

    processes: int
    medians_ms: tuple[float, ...]  # the median of each process
    within_cv: float  # robust CV of single runs inside one process (1.4826 MAD / median; median over processes)
    between_cv: float  # CV of the per-process medians (0 with one process)
    bimodal: bool  # the per-process medians split into two groups >= BIMODAL_GAP apart
    groups_ms: tuple[tuple[float, ...], ...] = ()  # when bimodal: the two groups of medians


def _rounds(rounds: Rounds, what: str) -> list[np.ndarray]:
    arrays = [np.asarray(r, dtype=np.float64) for r in rounds]
    if not arrays or any(a.ndim != 1 or a.size == 0 for a in arrays):
        raise ShrinkValueError(f"{what} must be one or more non-empty series of timings")
    if any(not np.all(np.isfinite(a)) or np.any(a < 0) for a in arrays):
        raise ShrinkValueError(f"{what} must be finite and non-negative")
    return arrays


def robust_cv(samples: np.ndarray) -> float:
    median = float(np.median(samples))
    return float(ROBUST_CV_SCALE * np.median(np.abs(samples - median)) / median) if median > 0 else 0.0


def bimodal_groups(medians: Sequence[float], gap: float = BIMODAL_GAP) -> tuple[tuple[float, ...], ...]:
    """The two groups the sorted medians split into at their largest relative gap, when that gap is
    at least `gap`; () otherwise (or with fewer than two processes)."""
    ordered = sorted(medians)
    if len(ordered) < 2 or ordered[0] <= 0:
        return ()
    ratios = [b / a for a, b in zip(ordered, ordered[1:])]
    split = int(np.argmax(ratios))
    if ratios[split] < gap:
        return ()
    return tuple(ordered[: split + 1]), tuple(ordered[split + 1:])


def process_spread(rounds: Rounds) -> ProcessSpread:
    arrays = _rounds(rounds, "per-process samples")
    medians = [float(np.median(a)) for a in arrays]
    between = float(np.std(medians, ddof=1) / np.mean(medians)) if len(medians) > 1 and np.mean(medians) > 0 else 0.0
    groups = bimodal_groups(medians)
    return ProcessSpread(
        processes=len(arrays),
        medians_ms=tuple(m * 1e3 for m in medians),
        within_cv=float(np.median([robust_cv(a) for a in arrays])),
        between_cv=between,
        bimodal=bool(groups),
        groups_ms=tuple(tuple(m * 1e3 for m in g) for g in groups),
    )


def _common(arrays: list[np.ndarray]) -> np.ndarray:
    """Every process thinned evenly to the same count (at most MAX_BOOTSTRAP_SAMPLES in all)."""
    count = min(min(a.size for a in arrays), max(1, MAX_BOOTSTRAP_SAMPLES // len(arrays)))
    return np.stack([thin(a, count) if a.size > count else a[:count] for a in arrays])


def pooled_medians(data: np.ndarray, picks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row of `picks` (process indices), runs resampled within each picked process,
    pooled, and their median. `data` is processes x runs."""
    processes, runs = data.shape
    medians = []
    for start in range(0, len(picks), _CHUNK):
        chosen = picks[start:start + _CHUNK]  # (chunk, processes)
        idx = rng.integers(0, runs, size=(len(chosen), processes, runs))
        values = data[chosen[:, :, None], idx].reshape(len(chosen), -1)
        medians.append(np.median(values, axis=1))
    return np.concatenate(medians)


def _picks(processes: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    if processes == 1:
        return np.zeros((resamples, 1), dtype=np.int64)
    return rng.integers(0, processes, size=(resamples, processes))


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def hierarchical_median_ci(rounds: Rounds, confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                           seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Interval of the pooled median: the hierarchical bootstrap (processes, then runs, resampled),
    widened to the t-interval of the per-process medians when there are several processes."""
    arrays = _rounds(rounds, "per-process samples")
    data = _common(arrays)
    rng = np.random.default_rng(seed)
    low, high = _interval(pooled_medians(data, _picks(len(data), resamples, rng), rng), confidence)
    if len(arrays) == 1 or any(np.median(a) <= 0 for a in arrays):
        return low, high
    t_low, t_high = t_interval(np.log([np.median(a) for a in arrays]))
    return min(low, t_low), max(high, t_high)


def t_quantile_975(df: int) -> float:
    """Student's t, 97.5th percentile, for `df` degrees of freedom (a table; no scipy here)."""
    if df < 1:
        raise ShrinkValueError(f"degrees of freedom must be >= 1, got {df}")
    return T_975[df - 1] if df <= len(T_975) else 1.96 + 2.4 / df


def t_interval(log_values: np.ndarray) -> tuple[float, float]:
    """exp(mean +- t * sd / sqrt(n)) of per-process log values: each process is one observation,
    and with a handful of them Student's t (not the normal) is the honest width."""
    n = len(log_values)
    half = t_quantile_975(n - 1) * float(np.std(log_values, ddof=1)) / np.sqrt(n)
    mean = float(np.mean(log_values))
    return float(np.exp(mean - half)), float(np.exp(mean + half))


def hierarchical_speedup(baseline: Rounds, candidate: Rounds, baseline_name: str = "baseline",
                         confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> Speedup:
    """How many times faster `candidate` is, from series timed side by side in the same processes.

    One process: the ratio of medians, with the bootstrap interval (runs resampled). Several: the
    geometric mean of the per-process ratios of medians, paired by process; the interval is the wider
    of the hierarchical bootstrap (the same processes resampled for both, then the runs within
    each) and the t-interval over the per-process ratios: a bootstrap over a handful of processes
    is too narrow (it cannot see how far the next process may land), and the t-interval alone would
    claim too much when every process happened to agree."""
    if confidence != CONFIDENCE:
        raise ShrinkValueError(f"intervals over processes are {CONFIDENCE:.0%} intervals, got {confidence}")
    base, cand = _rounds(baseline, "baseline samples"), _rounds(candidate, "candidate samples")
    if len(base) != len(cand):
        raise ShrinkValueError(f"baseline has {len(base)} processes, candidate {len(cand)}: not paired")
    if any(np.median(c) == 0 for c in cand):
        raise ShrinkValueError("candidate median latency is zero; cannot compute a speedup")
    rng = np.random.default_rng(seed)
    picks = _picks(len(base), resamples, rng)
    ratios = pooled_medians(_common(base), picks, rng) / pooled_medians(_common(cand), picks, rng)
    low, high = _interval(ratios[np.isfinite(ratios)], confidence)
    if len(base) == 1:
        return Speedup(baseline=baseline_name, ratio=float(np.median(base[0]) / np.median(cand[0])),
                       ci_low=low, ci_high=high)
    logs = np.log([np.median(b) / np.median(c) for b, c in zip(base, cand)])
    t_low, t_high = t_interval(logs)
    return Speedup(baseline=baseline_name, ratio=float(np.exp(np.mean(logs))),
                   ci_low=min(low, t_low), ci_high=max(high, t_high))
