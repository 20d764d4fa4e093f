"""BN recalibration touches only the norm statistics, and repairs a narrowed model without labels."""

from __future__ import annotations

import torch
import torch.nn as nn
from recover_fixtures import digits, narrow_copy, tiny_net, trained_tiny

from shrink.evaluate import evaluate_torch
from shrink.recover import recalibrate_bn

NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


def test_changes_only_the_norm_statistics():
    torch.manual_seed(0)
    model = tiny_net(8).train()  # train mode on purpose: recalibration must restore it
    before = {k: v.clone() for k, v in model.state_dict().items()}
    used = recalibrate_bn(model, digits("train"), max_images=300, batch_size=64)
    after = model.state_dict()
    assert used == 300
    assert model.training and all(m.training for m in model.modules())
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"{i}.{s}" for i in (1, 4) for s in NORM_STATS}
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert int(after["1.num_batches_tracked"]) == 5  # 64+64+64+64+44: a cumulative average


def test_statistics_are_the_plain_mean_over_the_images_seen():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(1))
    split = digits("train")
    recalibrate_bn(model, split, max_images=400, batch_size=400)
    from shrink.data import BatchOptions

    x, _ = next(split.batches(BatchOptions(batch_size=400, shuffle=True, seed=0)))
    assert torch.allclose(model[0].running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)


def test_repairs_a_narrowed_model_without_labels():
    model = trained_tiny(width=16)
    small = narrow_copy(model, keep=4)
    test = digits("test")
    broken = evaluate_torch(small, test).accuracy
    recalibrate_bn(small, digits("train"), max_images=500)
    repaired = evaluate_torch(small, test).accuracy
    assert repaired > broken + 10, (broken, repaired)


def test_model_without_batchnorm_is_left_alone():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert recalibrate_bn(model, digits("train")) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
