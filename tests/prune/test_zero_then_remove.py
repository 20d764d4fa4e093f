"""zero_then_remove: the one comparison behind check_exactness and check_step (zeroing what writes
the removed channels must give the outputs of removing them)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from shrink.prune import PruneConfig, plan
from shrink.prune.apply import ChannelTracker, apply
from shrink.prune.exactness import outputs, randomize, zero_then_remove


def _small_convnet() -> tuple[nn.Module, tuple[torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    inputs = (torch.randn(2, 3, 8, 8),)
    return randomize(model, inputs), inputs


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for t in model.state_dict().values()]


def test_zeroing_the_planned_channels_matches_removing_them_and_leaves_the_model_alone():
    model, inputs = _small_convnet()
    pruned_plan = plan(model, inputs, PruneConfig(ratio=0.5, round_to=1))
    groups = [g for g in pruned_plan.groups if g.inexact is None]
    before = _params(model)

    check = zero_then_remove(model, groups, ChannelTracker(), inputs, outputs(apply(model, pruned_plan), inputs))

    assert groups and check.passed, (check.max_abs_diff, check.max_abs_output)
    assert check.max_abs_diff <= 1e-5 * check.max_abs_output
    assert all(torch.equal(a, b) for a, b in zip(before, _params(model)))  # worked on a copy
    assert check.dead_outputs.shape == outputs(model, inputs).shape


def test_other_outputs_fail_and_in_place_zeroes_the_model_itself():
    model, inputs = _small_convnet()
    pruned_plan = plan(model, inputs, PruneConfig(ratio=0.5, round_to=1))
    groups = [g for g in pruned_plan.groups if g.inexact is None]
    dense = outputs(model, inputs)
    target = copy.deepcopy(model)

    check = zero_then_remove(target, groups, ChannelTracker(), inputs, dense + 1.0, in_place=True)

    assert not check.passed and check.max_abs_diff > 0.5
    assert torch.equal(outputs(target, inputs), check.dead_outputs)  # the zeros stayed in the model
    assert not torch.equal(outputs(target, inputs), dense)
