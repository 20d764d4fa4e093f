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
    logs = np.log([2.0, 2.0, 10 / 7, 10 / 7])  # the per-process ratios
    assert result.ratio == pytest.approx(np.exp(logs.mean()))  # their geometric mean
    # The bootstrap over processes reaches [10/7, 2] (four draws of one kind: 1/16 > 2.5% each way);
    # four processes are few, so Student's t over them (3.182 for 3 degrees of freedom) is wider.
    half = 3.182 * logs.std(ddof=1) / 2
    assert (result.ci_low, result.ci_high) == pytest.approx((np.exp(logs.mean() - half), np.exp(logs.mean() + half)))
    assert result.ci_low < 10 / 7 and result.ci_high > 2.0
    low, high = hierarchical_median_ci(cand)
    medians = np.log([0.005, 0.005, 0.007, 0.007])
    half = 3.182 * medians.std(ddof=1) / 2
    assert (low, high) == pytest.approx((np.exp(medians.mean() - half), np.exp(medians.mean() + half)))


def test_agreeing_processes_keep_the_bootstrap_width():
    rng = np.random.default_rng(11)
    base = [list(0.004 * rng.lognormal(0, 0.05, 300)) for _ in range(4)]
    cand = [list(0.002 * rng.lognormal(0, 0.05, 300)) for _ in range(4)]
    result = hierarchical_speedup(base, cand)
    assert result.ci_low < 2.0 < result.ci_high and result.ci_high - result.ci_low < 0.1


def test_t_quantiles():
    from shrink.bench.process_stats import t_quantile_975

    assert t_quantile_975(1) == 12.706 and t_quantile_975(3) == 3.182
    assert t_quantile_975(100) == pytest.approx(1.984, abs=0.005)


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
