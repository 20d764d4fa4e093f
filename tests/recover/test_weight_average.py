"""Weight averaging (EMA): the update against a hand computation, and the training loop ending with,
validating on and resuming the average."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from recover_fixtures import CrashAt, digits, fast_train, tiny_net

from shrink.data import train_val_split
from shrink.errors import ShrinkValueError
from shrink.recover import fit, recover
from shrink.recover.config import RecoverConfig
from shrink.recover.evaluation import sharded_accuracy
from shrink.recover.weight_average import WeightAverage, decay_for

SMALL = 384


def _floats(model):
    return torch.cat([v.detach().flatten() for v in model.state_dict().values() if v.is_floating_point()])


def test_update_matches_a_hand_computation_and_copies_integer_buffers():
    live = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = WeightAverage(live, decay=0.99)
    start = {k: v.clone() for k, v in live.state_dict().items()}
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    live[1].running_mean.fill_(2.0)
    live[1].num_batches_tracked.fill_(7)
    average.update(live)
    # First update: the decay is 1 - 1/2, so the average is the mean of the start and the new weights.
    got = average.model.state_dict()
    for name, value in live.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(got[name], 0.5 * start[name] + 0.5 * value)
    assert got["1.num_batches_tracked"].item() == 7
    average.updates = 10_000  # past the horizon (100 updates) the configured decay applies
    assert average.current_decay() == 0.99


def test_before_the_horizon_the_average_is_the_plain_mean():
    live = nn.Linear(4, 1, bias=False)
    average = WeightAverage(live, decay=0.999)
    seen = [live.weight.detach().clone()]
    for _ in range(5):
        with torch.no_grad():
            live.weight.copy_(torch.randn(1, 4))
        seen.append(live.weight.detach().clone())
        average.update(live)
    torch.testing.assert_close(average.model.weight, torch.stack(seen).mean(0))
    assert not any(p.requires_grad for p in average.model.parameters())


def test_decay_spans_the_asked_horizon():
    assert decay_for(1.0, 500) == pytest.approx(1 - 1 / 500)
    assert decay_for(0.5, 400) == pytest.approx(1 - 1 / 200)
    assert decay_for(0.001, 10) == 0.0  # a horizon under one step: the last weights
    with pytest.raises(ValueError):
        WeightAverage(nn.Linear(2, 2), decay=1.0)


def test_config_refuses_a_non_positive_horizon():
    with pytest.raises(ShrinkValueError, match="ema_epochs"):
        fast_train(ema_epochs=0)


def test_fit_ends_with_the_average_and_keeps_the_last_weights():
    torch.manual_seed(0)
    plain = tiny_net(8)
    plain_result = fit(plain, digits("train", SMALL), fast_train(epochs=2), progress=False)
    torch.manual_seed(0)
    averaged = tiny_net(8)
    result = fit(averaged, digits("train", SMALL), fast_train(epochs=2, ema_epochs=1.0), progress=False)
    assert plain_result.last_weights is None
    # Averaging only watches: the live weights follow the same trajectory as without it.
    last = torch.cat([v.flatten() for v in result.last_weights.values() if v.is_floating_point()])
    assert torch.equal(last, _floats(plain))
    assert not torch.allclose(_floats(averaged), _floats(plain))
    assert "last_weights" not in result.to_dict()


def test_validation_scores_the_average():
    train, val = train_val_split(digits("train", 640), 0.25, seed=0)
    torch.manual_seed(0)
    model = tiny_net(8)
    result = fit(model, train, fast_train(epochs=2, ema_epochs=0.5), val_split=val, progress=False)
    assert result.history[-1].val_accuracy == pytest.approx(sharded_accuracy(model, val, device="cpu"))


def test_resume_restores_the_average(tmp_path):
    def train(checkpoint_dir=None, crash_at=10**9):
        torch.manual_seed(0)
        model = tiny_net(8)
        fit(model, digits("train", SMALL), fast_train(epochs=3, ema_epochs=1.0), checkpoint_dir=checkpoint_dir,
            run_id="r", progress=False, criterion=CrashAt(crash_at))
        return model

    straight = train()
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, crash_at=SMALL // 32 + 3)  # in epoch 2
    resumed = train(tmp_path)
    assert torch.equal(_floats(resumed), _floats(straight))


def test_recover_reports_the_last_weights_beside_the_average():
    train, test = digits("train", SMALL), digits("test", 200)
    torch.manual_seed(0)
    config = RecoverConfig(train=fast_train(epochs=2, ema_epochs=1.0))
    result = recover(tiny_net(8), None, train, config, eval_split=test, progress=False)
    assert result.accuracy_last_weights is not None
    assert result.accuracy_after == pytest.approx(sharded_accuracy(result.model, test, device="cpu"))
    plain = recover(tiny_net(8), None, train, RecoverConfig(train=fast_train(epochs=2)), eval_split=test,
                    progress=False)
    assert plain.accuracy_last_weights is None
