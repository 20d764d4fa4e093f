"""Intervals across worker processes, on synthetic per-process series with known answers."""

import numpy as np
import pytest

from shrink.bench.process_stats import (
    bimodal_groups,
    hierarchical_median_ci,
    hierarchical_speedup,
    process_spread,
)
from shrink.bench.stats import median_ci
from shrink.errors import ShrinkValueError


def test_constant_processes_give_an_exact_ratio():
    base = [[0.004] * 50, [0.004] * 50]
    cand = [[0.002] * 50, [0.002] * 50]
    result = hierarchical_speedup(base, cand, "dense")
    assert result.ratio == pytest.approx(2.0)
    assert (result.ci_low, result.ci_high) == pytest.approx((2.0, 2.0))


def test_the_interval_comes_from_the_spread_between_processes():
    # Every run inside a process is the same, so a within-process bootstrap would say "exactly 10/6";
    # the processes themselves differ (5 ms in two, 7 ms in two), and the interval must show it.
    base = [[0.010] * 40] * 4
    cand = [[0.005] * 40, [0.005] * 40, [0.007] * 40, [0.007] * 40]
    result = hierarchical_speedup(base, cand)
    assert result.ratio == pytest.approx(10 / 6)  # pooled medians
    # Drawing four times the same kind of process has probability 1/16 > 2.5% each way, so the
    # interval reaches both extremes exactly.
    assert (result.ci_low, result.ci_high) == pytest.approx((10 / 7, 2.0))
    low, high = hierarchical_median_ci(cand)
    assert (low, high) == pytest.approx((0.005, 0.007))


def test_one_process_is_the_plain_bootstrap_of_the_median():
    rng = np.random.default_rng(3)
    samples = rng.lognormal(0.0, 0.3, 400)
    low, high = hierarchical_median_ci([samples])
    plain = median_ci(samples)
    assert low < np.median(samples) < high
    assert low == pytest.approx(plain[0], rel=0.02) and high == pytest.approx(plain[1], rel=0.02)


def test_spread_within_and_between_and_the_bimodal_flag():
    rng = np.random.default_rng(0)
    fast = [5.3e-3 * rng.lognormal(0, 0.02, 200) for _ in range(2)]
    slow = [8.6e-3 * rng.lognormal(0, 0.02, 200) for _ in range(2)]
    spread = process_spread(fast + slow)
    assert spread.processes == 4 and spread.bimodal
    assert [len(g) for g in spread.groups_ms] == [2, 2]
    assert spread.within_cv == pytest.approx(0.02, abs=0.005)
    assert spread.between_cv > 0.2
    steady = process_spread(fast + [5.3e-3 * rng.lognormal(0, 0.02, 200)])
    assert not steady.bimodal and steady.groups_ms == () and steady.between_cv < 0.02


def test_bimodal_groups_split_at_the_largest_gap():
    assert bimodal_groups([5.3, 8.6, 5.4, 8.5]) == ((5.3, 5.4), (8.5, 8.6))
    assert bimodal_groups([5.3, 5.5, 5.6]) == ()
    assert bimodal_groups([5.0]) == ()


def test_unpaired_or_empty_series_are_refused():
    with pytest.raises(ShrinkValueError, match="not paired"):
        hierarchical_speedup([[1.0]], [[1.0], [1.0]])
    with pytest.raises(ShrinkValueError, match="non-empty"):
        process_spread([[]])
