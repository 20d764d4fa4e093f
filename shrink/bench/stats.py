"""Statistics over latency samples: summary, bootstrap intervals, speedup and a noise flag.

Everything here is a pure function of the samples (and a fixed seed), so a saved result can be
re-analysed and the tests can check known answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from shrink.errors import ShrinkValueError

# A run whose coefficient of variation (std / mean) is above this is flagged as noisy. On an idle
# machine ORT latency usually stays under 5%; 10% means something else is competing for the CPU/GPU.
NOISY_CV_THRESHOLD = 0.10
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
# Resamples drawn per numpy call; bounds memory at CHUNK x len(samples) floats.
_BOOTSTRAP_CHUNK = 250
# A model that runs in microseconds collects 100,000s of samples; resampling them all 2000 times took
# minutes. The bootstrap then uses this many, evenly spaced in measuring order (so drift is kept):
# the interval is a little wider (more conservative), the point estimates still use every sample.
MAX_BOOTSTRAP_SAMPLES = 5000


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one candidate's per-run latencies, in milliseconds."""

    runs: int
    total_s: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    median_ci_low_ms: float
    median_ci_high_ms: float
    cv: float
    noisy: bool
    throughput_per_s: float  # items (batch x runs) per second of measured time


@dataclass(frozen=True)
class Speedup:
    """How many times faster `candidate` is than `baseline`, as a ratio of medians."""

    baseline: str
    ratio: float
    ci_low: float
    ci_high: float


def _as_array(samples: Sequence[float], what: str = "samples") -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ShrinkValueError(f"{what} must be a non-empty 1-D sequence of timings")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ShrinkValueError(f"{what} must be finite and non-negative")
    return arr


def thin(arr: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` values of `arr`, evenly spaced over it, in order."""
    if arr.size <= limit:
        return arr
    return arr[np.linspace(0, arr.size - 1, limit).round().astype(np.int64)]


def bootstrap_medians(
    samples: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """Medians of `resamples` resamples-with-replacement of `samples` (fixed seed: reproducible)."""
    arr = thin(_as_array(samples), MAX_BOOTSTRAP_SAMPLES)
    rng = np.random.default_rng(seed)
    medians = []
    for start in range(0, resamples, _BOOTSTRAP_CHUNK):
        count = min(_BOOTSTRAP_CHUNK, resamples - start)
        idx = rng.integers(0, arr.size, size=(count, arr.size))
        medians.append(np.median(arr[idx], axis=1))
    return np.concatenate(medians)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def median_ci(
    samples: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median."""
    return _interval(bootstrap_medians(samples, resamples, seed), confidence)


def coefficient_of_variation(samples: Sequence[float]) -> float:
    arr = _as_array(samples)
    mean = float(arr.mean())
    return float(arr.std(ddof=1) / mean) if arr.size > 1 and mean > 0 else 0.0


def is_noisy(cv: float, threshold: float = NOISY_CV_THRESHOLD) -> bool:
    return cv > threshold


def summarize(samples_s: Sequence[float], batch: int = 1, seed: int = BOOTSTRAP_SEED) -> LatencyStats:
    """Summary statistics of per-run latencies given in seconds."""
    arr = _as_array(samples_s)
    ms = arr * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    ci_low, ci_high = median_ci(ms, seed=seed)
    cv = coefficient_of_variation(ms)
    total_s = float(arr.sum())
    return LatencyStats(
        runs=int(arr.size),
        total_s=total_s,
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std(ddof=1)) if arr.size > 1 else 0.0,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        median_ci_low_ms=ci_low,
        median_ci_high_ms=ci_high,
        cv=cv,
        noisy=is_noisy(cv),
        throughput_per_s=float(batch * arr.size / total_s) if total_s > 0 else float("inf"),
    )


def speedup(
    baseline: Sequence[float],
    candidate: Sequence[float],
    baseline_name: str = "baseline",
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Speedup:
    """median(baseline) / median(candidate), with a bootstrap interval.

    The two series are resampled independently (they are different runs), each with its own fixed
    seed, and the interval is taken over the ratios of the resampled medians.
    """
    base = _as_array(baseline, "baseline samples")
    cand = _as_array(candidate, "candidate samples")
    if np.median(cand) == 0:
        raise ShrinkValueError("candidate median latency is zero; cannot compute a speedup")
    base_medians = bootstrap_medians(base, resamples, seed)
    cand_medians = bootstrap_medians(cand, resamples, seed + 1)
    cand_medians = np.where(cand_medians > 0, cand_medians, np.nan)
    ratios = base_medians / cand_medians
    low, high = _interval(ratios[np.isfinite(ratios)], confidence)
    return Speedup(
        baseline=baseline_name,
        ratio=float(np.median(base) / np.median(cand)),
        ci_low=low,
        ci_high=high,
    )
