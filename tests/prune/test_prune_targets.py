"""MACs and parameter targets: bisection on the ratio, then group by group, to within 1%."""

import pytest
from prune_fixtures import tv_model

from shrink.errors import ShrinkValueError
from shrink.prune import PruneConfig, apply, plan
from shrink.prune.counting import count, count_params
from shrink.prune.targets import solve


def _fake_selection(ratio):
    # three groups of 64 channels kept in steps of 8, like round_to=8 in uniform scope
    keep = max(8, int(64 * (1 - ratio)) // 8 * 8)
    return {"a": keep, "b": keep, "c": keep}


def _fake_size(keeps):
    return sum(k * k for k in keeps.values())  # MACs grow with the square of the width


def test_solver_reaches_a_target_between_rounding_steps():
    target = 0.5 * _fake_size(_fake_selection(0.0))
    solution = solve(_fake_selection, _fake_size, target, max_ratio=0.9)
    assert solution.error <= 0.01 or len(set(solution.keeps.values())) > 1  # moved group by group
    assert solution.error < 0.05


def test_solver_rejects_unreachable_and_trivial_targets():
    full = _fake_size(_fake_selection(0.0))
    with pytest.raises(ShrinkValueError, match="is not below the model's"):
        solve(_fake_selection, _fake_size, full * 1.1, max_ratio=0.9)
    with pytest.raises(ShrinkValueError, match="out of reach"):
        solve(_fake_selection, _fake_size, 10, max_ratio=0.9)


@pytest.mark.parametrize("kind", ["macs", "params"])
def test_targets_within_one_percent(kind):
    model, inputs = tv_model("resnet18", 32)
    dense = count(model, inputs)
    goal = 0.4 * (dense.macs if kind == "macs" else dense.params)
    config = PruneConfig(**{f"target_{kind}": goal}, round_to=8)
    result = plan(model, inputs, config, verify=False)
    reached = result.after.macs if kind == "macs" else result.after.params
    assert abs(reached - goal) / goal <= 0.01
    assert count_params(apply(model, result)) == result.after.params


def test_global_scope_target():
    model, inputs = tv_model("resnet18", 32)
    dense = count(model, inputs)
    result = plan(model, inputs, PruneConfig(scope="global", target_macs=0.5 * dense.macs), verify=False)
    assert abs(result.after.macs - 0.5 * dense.macs) / (0.5 * dense.macs) <= 0.01


def test_unreachable_target_is_a_clear_error():
    model, inputs = tv_model("resnet18", 32)
    with pytest.raises(ShrinkValueError, match="out of reach"):
        plan(model, inputs, PruneConfig(target_params=1000), verify=False)
