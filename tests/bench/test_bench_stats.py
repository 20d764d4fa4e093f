"""Statistics on synthetic timing series with known answers."""

import numpy as np
import pytest

from shrink.bench.stats import (
    NOISY_CV_THRESHOLD,
    coefficient_of_variation,
    median_ci,
    speedup,
    summarize,
)
from shrink.errors import ShrinkValueError


def test_constant_series_has_no_spread():
    stats = summarize([0.005] * 100)
    assert stats.runs == 100
    for value in (stats.mean_ms, stats.p50_ms, stats.p90_ms, stats.p99_ms, stats.min_ms, stats.max_ms):
        assert value == pytest.approx(5.0)
    assert stats.std_ms == pytest.approx(0.0)
    assert stats.cv == pytest.approx(0.0)
    assert (stats.median_ci_low_ms, stats.median_ci_high_ms) == pytest.approx((5.0, 5.0))
    assert not stats.noisy


def test_percentiles_of_1_to_100_ms():
    stats = summarize(np.arange(1, 101) / 1000.0)  # 1 ms ... 100 ms
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.max_ms == pytest.approx(100.0)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert stats.total_s == pytest.approx(5.05)


def test_throughput_counts_items_per_second():
    stats = summarize([0.01] * 50, batch=8)  # 8 items every 10 ms
    assert stats.throughput_per_s == pytest.approx(800.0)


def test_median_ci_contains_true_median():
    rng = np.random.default_rng(123)
    samples = rng.lognormal(mean=0.0, sigma=0.3, size=400)  # true median: exp(0) = 1
    low, high = median_ci(samples)
    assert low < 1.0 < high
    assert low <= np.median(samples) <= high


def test_median_ci_coverage_is_near_95_percent():
    rng = np.random.default_rng(7)
    hits = 0
    trials = 100
    for _ in range(trials):
        samples = rng.exponential(scale=1.0, size=101)  # true median: ln 2
        low, high = median_ci(samples, resamples=500)
        hits += low <= np.log(2) <= high
    assert hits >= 85  # nominal 95; a percentile bootstrap of the median runs a little under


def test_bootstrap_is_reproducible_with_fixed_seed():
    samples = np.random.default_rng(1).normal(10, 1, 200)
    assert median_ci(samples) == median_ci(samples)
    assert median_ci(samples, seed=1) != median_ci(samples, seed=2)


def test_speedup_of_two_known_series():
    baseline = [0.004] * 50
    candidate = [0.002] * 50
    result = speedup(baseline, candidate, "dense")
    assert result.baseline == "dense"
    assert result.ratio == pytest.approx(2.0)
    assert (result.ci_low, result.ci_high) == pytest.approx((2.0, 2.0))


def test_speedup_interval_brackets_the_true_ratio():
    rng = np.random.default_rng(5)
    base = 3.0 * rng.lognormal(0, 0.1, 300)  # medians 3 and 1: true ratio 3
    cand = 1.0 * rng.lognormal(0, 0.1, 300)
    result = speedup(base, cand)
    assert result.ci_low < 3.0 < result.ci_high
    assert result.ci_low <= result.ratio <= result.ci_high


def test_noise_flag_uses_the_named_threshold():
    quiet = [1.0, 1.01, 0.99, 1.0, 1.0]
    noisy = [1.0, 1.0, 1.0, 1.0, 3.0]
    assert coefficient_of_variation(quiet) < NOISY_CV_THRESHOLD
    assert not summarize(quiet).noisy
    assert coefficient_of_variation(noisy) > NOISY_CV_THRESHOLD
    assert summarize(noisy).noisy


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [float("nan")], [[1.0, 2.0]]])
def test_bad_samples_are_refused(bad):
    with pytest.raises(ShrinkValueError, match="samples"):
        summarize(bad)


def test_the_bootstrap_of_a_huge_series_uses_an_even_thinning():
    from shrink.bench.stats import MAX_BOOTSTRAP_SAMPLES, bootstrap_medians, thin

    series = np.arange(200_000, dtype=np.float64)
    thinned = thin(series, MAX_BOOTSTRAP_SAMPLES)
    assert thinned.size == MAX_BOOTSTRAP_SAMPLES and thinned[0] == 0 and thinned[-1] == 199_999
    assert np.all(np.diff(thinned) > 0)  # in order, no repeats
    medians = bootstrap_medians(series, resamples=200)
    assert abs(np.median(medians) - np.median(series)) < 0.02 * series.max()
    assert thin(series[:10], MAX_BOOTSTRAP_SAMPLES).size == 10
