"""The auto-mode decision on typed, hand-made measurements."""

from __future__ import annotations

import pytest

from shrink.quantize import Measured, QuantRecipe, decide
from shrink.quantize.decide import SQNR_MARGIN_DB, accuracy_order, confirm

FP32 = Measured("fp32", accuracy=94.0, latency_ms=10.0)


def cand(name, speedup, accuracy=None, ci=0.05, sqnr=None, error=None):
    return Measured(name, QuantRecipe(), f"/tmp/{name}.onnx", accuracy=accuracy, logits_sqnr_db=sqnr,
                    latency_ms=10.0 / speedup, speedup=speedup, speedup_ci_low=speedup - ci,
                    speedup_ci_high=speedup + ci, error=error)


def test_picks_the_fastest_within_budget():
    d = decide(FP32, [cand("a", 1.5, 93.9), cand("b", 2.2, 93.0), cand("c", 1.9, 93.7)], budget_pt=0.5, min_speedup=1.05)
    assert d.int8 and d.shipped == "c"
    verdicts = {v.name: v for v in d.verdicts}
    assert "0.50" not in verdicts["b"].reason and "1.00 pt below" in verdicts["b"].reason
    assert verdicts["a"].qualifies and not verdicts["b"].qualifies


def test_ships_fp32_when_no_int8_is_faster():
    d = decide(FP32, [cand("slow", 0.8, 94.0), cand("same", 1.02, 94.0, ci=0.05)], budget_pt=0.5, min_speedup=1.05)
    assert not d.int8 and d.shipped == "fp32"
    assert "no int8 recipe is faster than fp32" in d.reason and "same" in d.reason and "shipping fp32" in d.reason


def test_a_speedup_whose_interval_reaches_one_is_not_faster():
    d = decide(FP32, [cand("noisy", 1.3, 94.0, ci=0.35)], budget_pt=0.5, min_speedup=1.05)
    assert not d.int8 and "not measurably faster" in d.verdicts[0].reason


def test_min_speedup_is_enforced():
    d = decide(FP32, [cand("meh", 1.08, 94.0, ci=0.02)], budget_pt=0.5, min_speedup=1.1)
    assert not d.int8 and "below the 1.1x" in d.verdicts[0].reason


def test_statistically_tied_candidates_ship_the_more_accurate():
    fast_noisy = cand("fast", 1.60, 93.6, ci=0.2)
    accurate = cand("accurate", 1.55, 93.95, ci=0.2)
    d = decide(FP32, [fast_noisy, accurate], budget_pt=0.5, min_speedup=1.05)
    assert d.shipped == "accurate" and "statistically tied with the fastest (fast" in d.reason
    # Not tied any more: the faster one ships.
    d = decide(FP32, [cand("fast", 2.0, 93.6, ci=0.05), cand("accurate", 1.5, 93.95, ci=0.05)], 0.5, 1.05)
    assert d.shipped == "fast"


def test_errors_and_unmeasured_candidates_never_ship():
    d = decide(FP32, [cand("broken", 3.0, 94.0, error="onnxruntime could not quantize"), cand("unmeasured", 2.0)],
               budget_pt=0.5, min_speedup=1.05)
    assert not d.int8
    assert "not produced" in d.verdicts[0].reason and "accuracy not measured" in d.verdicts[1].reason


def test_latency_only_runs_can_waive_accuracy_and_say_so():
    d = decide(Measured("fp32", latency_ms=10.0), [cand("a", 1.8)], budget_pt=0.5, min_speedup=1.05,
               accuracy_required=False)
    assert d.int8 and "accuracy NOT checked" in d.reason


def test_no_candidates_ships_fp32():
    d = decide(FP32, [], budget_pt=0.5, min_speedup=1.05)
    assert not d.int8 and d.verdicts == ()


def test_accuracy_order_measures_the_most_faithful_tied_candidate_first():
    tied_low_sqnr = cand("fastest", 1.60, ci=0.2, sqnr=21.0)
    tied_high_sqnr = cand("faithful", 1.50, ci=0.2, sqnr=34.0)
    slower = cand("slower", 1.2, ci=0.02, sqnr=40.0)
    slow = cand("slow", 0.9, sqnr=50.0)
    order = accuracy_order([slow, slower, tied_low_sqnr, tied_high_sqnr], min_speedup=1.05)
    assert [c.name for c in order] == ["faithful", "fastest", "slower"]


@pytest.mark.parametrize("budget", [0.0, 0.5, 2.0])
def test_budget_boundary_is_inclusive(budget):
    d = decide(FP32, [cand("edge", 1.5, 94.0 - budget)], budget_pt=budget, min_speedup=1.05)
    assert d.int8


def test_latency_only_ties_are_broken_by_fidelity():
    d = decide(Measured("fp32", latency_ms=10.0),
               [cand("fastest", 1.7, ci=0.2, sqnr=20.0), cand("faithful", 1.6, ci=0.2, sqnr=34.0)],
               budget_pt=0.5, min_speedup=1.05, accuracy_required=False)
    assert d.shipped == "faithful" and "more faithful to fp32 (logits SQNR 34.0 vs 20.0 dB)" in d.reason


def test_a_tied_recipe_needs_a_clear_fidelity_margin_to_beat_the_fastest():
    # The ResNet-50 case on the development VM: 0.2 dB "more faithful" is no reason to ship a recipe
    # that looks slower.
    fastest, marginal = cand("fastest", 1.53, ci=0.3, sqnr=31.4), cand("marginal", 1.38, ci=0.3, sqnr=31.6)
    d = decide(Measured("fp32", latency_ms=10.0), [marginal, fastest], budget_pt=0.5, min_speedup=1.05,
               accuracy_required=False)
    assert d.shipped == "fastest" and "tied" not in d.reason
    clear = cand("clear", 1.38, ci=0.3, sqnr=31.4 + SQNR_MARGIN_DB)
    d = decide(Measured("fp32", latency_ms=10.0), [marginal, fastest, clear], budget_pt=0.5, min_speedup=1.05,
               accuracy_required=False)
    assert d.shipped == "clear" and "more faithful to fp32" in d.reason
    # accuracy_order agrees: the candidate decide() would ship is measured first.
    assert [c.name for c in accuracy_order([marginal, fastest], 1.05)] == ["fastest", "marginal"]
    assert [c.name for c in accuracy_order([marginal, fastest, clear], 1.05)] == ["clear", "fastest", "marginal"]


def test_the_choice_ships_only_if_it_is_still_faster_timed_against_fp32_alone():
    d = decide(FP32, [cand("a", 1.5, 93.9)], budget_pt=0.5, min_speedup=1.05)
    kept = confirm(d, cand("a", 1.17, 93.9, ci=0.04), min_speedup=1.05)
    assert kept.int8 and kept.shipped == "a" and "timed against fp32 alone: 1.17x" in kept.reason
    dropped = confirm(d, cand("a", 1.02, 93.9, ci=0.04), min_speedup=1.05)
    assert not dropped.int8 and dropped.shipped == "fp32"
    assert "won the joint timing" in dropped.reason and "shipping fp32" in dropped.reason
    assert dropped.verdicts == d.verdicts  # the search's verdicts stay on record
    fp32_decision = decide(FP32, [cand("slow", 0.8, 94.0)], budget_pt=0.5, min_speedup=1.05)
    assert confirm(fp32_decision, cand("slow", 3.0, 94.0), 1.05) is fp32_decision


def test_forced_int8_ships_the_most_accurate_within_budget_whatever_its_speed_here():
    from shrink.quantize.decide import decide_forced, forced_order

    slow_good, slow_bad, error = cand("slow_good", 0.8, 93.8, sqnr=30.0), cand("slow_bad", 0.7, 92.0, sqnr=35.0), \
        cand("broken", 1.5, error="no")
    assert [c.name for c in forced_order([slow_good, slow_bad, error])] == ["slow_bad", "slow_good"]  # by fidelity
    d = decide_forced(FP32, [slow_good, slow_bad, error], budget_pt=0.5)
    assert d.int8 and d.shipped == "slow_good"
    assert "FORCED (--force-int8, for another CPU)" in d.reason and "0.80x" in d.reason and "time it on the target" in d.reason
    # The accuracy budget still holds: nothing within it, fp32 ships and says why.
    d = decide_forced(FP32, [slow_bad], budget_pt=0.5)
    assert not d.int8 and "no int8 recipe is within the 0.5 pt accuracy budget" in d.reason
