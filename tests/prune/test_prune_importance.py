"""Every importance criterion plans; taylor/hessian need labeled batches; random is seeded."""

import pytest
import torch
from prune_fixtures import tv_model

from shrink.errors import ShrinkValueError
from shrink.prune import IMPORTANCE_NAMES, PruneConfig, plan
from shrink.prune.importance import make_importance


def _batches(n=2):
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, 32, 32, generator=gen), torch.randint(0, 10, (4,), generator=gen)) for _ in range(n)]


@pytest.mark.parametrize("name", IMPORTANCE_NAMES)
def test_every_criterion_plans(name):
    model, inputs = tv_model("resnet18", 32)
    config = PruneConfig(ratio=0.5, importance=name, calibration_batches=2)
    result = plan(model, inputs, config, batches=_batches() if config.needs_batches else None, verify=False)
    assert result.mac_reduction > 2.5
    assert all(p.grad is None for p in model.parameters())  # gradients went to a copy


def test_criteria_choose_different_channels():
    model, inputs = tv_model("resnet18", 32)
    l1 = plan(model, inputs, PruneConfig(importance="l1"), verify=False)
    rnd = plan(model, inputs, PruneConfig(importance="random"), verify=False)
    assert l1.groups[0].removed != rnd.groups[0].removed


def test_random_is_seeded():
    model, inputs = tv_model("resnet18", 32)
    a = plan(model, inputs, PruneConfig(importance="random", seed=3), verify=False)
    b = plan(model, inputs, PruneConfig(importance="random", seed=3), verify=False)
    assert a.steps == b.steps


def test_taylor_without_batches_is_an_error():
    model, inputs = tv_model("resnet18", 32)
    with pytest.raises(ShrinkValueError, match="taylor importance needs labeled batches"):
        plan(model, inputs, PruneConfig(importance="taylor"))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ShrinkValueError, match="valid names: l1, l2, taylor, bn-scale, lamp, fpgm, random, hessian"):
        make_importance("snip")
