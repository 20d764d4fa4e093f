"""fresh_bn_statistics: the one place that puts BatchNorm layers in cumulative-statistics mode, for
BN recalibration (recover) and for the exactness check's random weights (prune)."""

from __future__ import annotations

import torch
import torch.nn as nn

from shrink.recover.bn import fresh_bn_statistics


def test_only_the_norms_train_and_everything_is_restored_after():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.Dropout(0.5)).train()
    with fresh_bn_statistics(model) as norms:
        assert norms == [model[1]]
        assert model[1].training and not model[0].training and not model[2].training
        assert model[1].momentum is None and int(model[1].num_batches_tracked) == 0
    assert model.training and all(m.training for m in model.modules())
    assert model[1].momentum == 0.3

    model.eval()
    with fresh_bn_statistics(model):
        pass
    assert not model.training and not any(m.training for m in model.modules())


def test_the_statistics_are_the_plain_mean_over_the_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(2))
    a, b = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3) + 5
    with torch.no_grad(), fresh_bn_statistics(model):
        model(a)
        model(b)
    expected = (a.mean(dim=(0, 2, 3)) + b.mean(dim=(0, 2, 3))) / 2
    assert torch.allclose(model[0].running_mean, expected, atol=1e-6)
    assert int(model[0].num_batches_tracked) == 2


def test_a_model_without_norms_yields_none_and_keeps_its_mode():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout()).train()
    with fresh_bn_statistics(model) as norms:
        assert norms == []
    assert model.training
