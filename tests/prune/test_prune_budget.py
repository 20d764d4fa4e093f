"""The latency allocator on synthetic tables whose optimum is known (no timing anywhere)."""

import itertools

import pytest
import torch

from shrink.bench.latency_table import Calibration, LatencyTable, LayerKind, TableKey, TableLayer
from shrink.errors import ShrinkError
from shrink.prune.budget import allocate
from shrink.prune.groups import CoupledGroup
from shrink.prune.selection import Ranked

KEY = TableKey("s", "m", "cpu", "fp32", 2, 1)
WIDTHS = (16, 32, 48, 64)


def ranked(name: str, scores: list[float]) -> Ranked:
    group = CoupledGroup(root=name, width=len(scores), members=[], tp_group=None,
                         units=[[i] for i in range(len(scores))])
    return Ranked(group, torch.tensor(scores), len(scores))


def linear_kind(name: str, ms_per_channel: float) -> LayerKind:
    """A layer whose only width is its output, costing ms_per_channel per output channel."""
    return LayerKind(name, ("Conv",), (3,), WIDTHS, (tuple(ms_per_channel * w for w in WIDTHS),))


def table(groups: dict[str, float]) -> LatencyTable:
    layers = tuple(TableLayer(f"{g}.conv", f"k{g}", 3, 64, None, 0, g, 64) for g in groups)
    kinds = {f"k{g}": linear_kind(f"k{g}", cost) for g, cost in groups.items()}
    return LatencyTable(KEY, {g: 64 for g in groups}, layers, kinds, Calibration(1.0, 0.0, 0.0, ()), {})


def importance_kept(groups: list[Ranked], keeps: dict[str, int]) -> float:
    """Normalized importance the allocator maximizes: each group's scores over their mean, the
    highest `keep` of them."""
    total = 0.0
    for r in groups:
        s = r.unit_scores / r.unit_scores.mean()
        total += float(torch.sort(s, descending=True).values[: keeps[r.name]].sum())
    return total


def brute_force(groups: list[Ranked], t: LatencyTable, budget: float):
    best = None
    for combo in itertools.product(WIDTHS, repeat=len(groups)):
        keeps = dict(zip((r.name for r in groups), combo))
        if t.predict(keeps) <= budget + 1e-9:
            value = importance_kept(groups, keeps)
            if best is None or value > best[0] + 1e-9:
                best = (value, keeps)
    return best


def test_equal_step_costs_reach_the_known_optimum():
    # Every rounding step of every group costs the same 16 ms, so the optimum removes the steps
    # that hold the least importance (scores normalized per group: a group's spread, not its scale,
    # decides how cheap its weakest channels are).
    gen = torch.Generator().manual_seed(0)
    groups = [ranked("a", (torch.rand(64, generator=gen) * 0.1 + 0.01).tolist()),
              ranked("b", (torch.rand(64, generator=gen) + 1).tolist()),
              ranked("c", (torch.rand(64, generator=gen) * 10 + 10).tolist())]
    t = table({"a": 1.0, "b": 1.0, "c": 1.0})
    budget = 0.5 * t.dense_ms()
    allocation = allocate(groups, t, budget, max_layer_ratio=0.9, round_to=16)
    _, optimum = brute_force(groups, t, budget)
    assert allocation.predicted_ms <= budget
    assert allocation.widths == allocation.keeps  # one channel per unit here
    assert importance_kept(groups, allocation.keeps) == pytest.approx(importance_kept(groups, optimum))


def test_a_costly_layer_is_cut_before_a_cheap_one_of_equal_importance():
    groups = [ranked("slow", [1.0] * 64), ranked("fast", [1.0] * 64)]
    t = table({"slow": 10.0, "fast": 1.0})
    allocation = allocate(groups, t, 0.5 * t.dense_ms(), max_layer_ratio=0.9, round_to=16)
    value, optimum = brute_force(groups, t, 0.5 * t.dense_ms())
    assert allocation.keeps == optimum == {"slow": 16, "fast": 64}  # 160 + 64 ms: all of "fast" kept


def test_joint_input_output_costs_stay_within_the_budget_near_the_optimum():
    # One layer reads group a and writes group b: its cost is the product of both widths (a conv's
    # MACs), so the saving of a step depends on the other group's current width.
    gen = torch.Generator().manual_seed(1)
    groups = [ranked("a", (torch.rand(64, generator=gen) + 0.5).tolist()),
              ranked("b", (torch.rand(64, generator=gen) + 0.5).tolist())]
    grid = tuple(tuple(ci * co / 1000 for co in WIDTHS) for ci in WIDTHS)
    kinds = {"pair": LayerKind("pair", ("Conv",), WIDTHS, WIDTHS, grid), **{f"k{g}": linear_kind(f"k{g}", 0.01) for g in "ab"}}
    layers = (TableLayer("a.conv", "ka", 3, 64, None, 0, "a", 64), TableLayer("mid", "pair", 64, 64, "a", 64, "b", 64),
              TableLayer("b.conv", "kb", 3, 64, None, 0, "b", 64))
    t = LatencyTable(KEY, {"a": 64, "b": 64}, layers, kinds, Calibration(1.0, 0.0, 0.0, ()), {})
    for share in (0.3, 0.5, 0.7):
        budget = share * t.dense_ms()
        allocation = allocate(groups, t, budget, max_layer_ratio=0.9, round_to=16)
        value, _ = brute_force(groups, t, budget)
        assert allocation.predicted_ms <= budget
        assert importance_kept(groups, allocation.keeps) >= 0.95 * value


def test_calibration_terms_enter_the_prediction():
    t = table({"a": 1.0})
    shifted = LatencyTable(KEY, t.groups, t.layers, t.kinds, Calibration(2.0, 3.0, 0.5, ()), {})
    layer = t.layers[0]
    assert shifted.predict({"a": 32}) == pytest.approx(2.0 * 32 + 0.5 * layer.activations(3, 32) + 3.0)


def test_an_unreachable_budget_names_the_smallest_latency():
    groups = [ranked("a", [1.0] * 64), ranked("b", [1.0] * 64)]
    t = table({"a": 1.0, "b": 1.0})
    # max_layer_ratio 0.75 keeps at least 16 of 64 channels: 16 + 16 = 32 ms at best
    with pytest.raises(ShrinkError, match=r"out of reach: the smallest widths max_layer_ratio 0.75 allows are "
                                          r"predicted at 32 ms \(0.25 of dense 128 ms\)"):
        allocate(groups, t, 20.0, max_layer_ratio=0.75, round_to=16)


def test_a_table_for_another_model_is_refused():
    with pytest.raises(ShrinkError, match="made for another model: it has no group 'x'"):
        allocate([ranked("x", [1.0] * 64)], table({"a": 1.0}), 10.0, max_layer_ratio=0.9, round_to=16)
