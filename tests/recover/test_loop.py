"""The training loop: deterministic seeds, resume, early stopping on a validation split, and
checkpoints that a mismatched run can never overwrite."""

from __future__ import annotations

import pytest
import torch
from recover_fixtures import CrashAt, digits, fast_train, tiny_net

from shrink.data import train_val_split
from shrink.errors import ShrinkError
from shrink.recover import fit
from shrink.recover.checkpoint import CHECKPOINT_NAME
from shrink.recover.loop import per_process_batch


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


SMALL = 384  # training images: the loop's mechanics need few


def _train(epochs, checkpoint_dir=None, run_id="r", seed=0, criterion=None, **overrides):
    torch.manual_seed(seed)
    model = tiny_net(8)
    result = fit(model, digits("train", SMALL), fast_train(epochs=epochs, seed=seed, **overrides),
                 checkpoint_dir=checkpoint_dir, run_id=run_id, progress=False, criterion=criterion)
    return model, result


def test_same_seed_same_weights_other_seed_other_weights():
    a, _ = _train(1)
    b, _ = _train(1)
    c, _ = _train(1, seed=1)
    assert torch.equal(_params(a), _params(b))
    assert not torch.equal(_params(a), _params(c))


def test_crash_mid_epoch_then_resume_gives_the_same_weights(tmp_path):
    straight, _ = _train(3, criterion=CrashAt(10**9))
    steps_per_epoch = SMALL // 32
    with pytest.raises(KeyboardInterrupt):  # in epoch 2, half-way
        _train(3, checkpoint_dir=tmp_path, criterion=CrashAt(steps_per_epoch + steps_per_epoch // 2))
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["epoch"] == 1
    resumed, result = _train(3, checkpoint_dir=tmp_path, criterion=CrashAt(10**9))
    assert result.resumed_from_epoch == 1 and result.epochs_run == 2 and len(result.history) == 3
    assert torch.equal(_params(resumed), _params(straight))
    # Rerunning a finished run does no more work and keeps its weights.
    again, result = _train(3, checkpoint_dir=tmp_path, criterion=CrashAt(10**9))
    assert result.epochs_run == 0 and torch.equal(_params(again), _params(straight))


def test_checkpoint_of_another_run_is_refused_and_left_intact(tmp_path):
    _train(1, checkpoint_dir=tmp_path, run_id="first")
    path = tmp_path / CHECKPOINT_NAME
    before = path.read_bytes()
    with pytest.raises(ShrinkError, match="belongs to another run"):
        _train(1, checkpoint_dir=tmp_path, run_id="second")
    with pytest.raises(ShrinkError, match="belongs to another run"):
        _train(1, checkpoint_dir=tmp_path, run_id="first", lr=0.01)  # same id, other config
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no stray temp files


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(ShrinkError, match="unreadable"):
        _train(1, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == b"not a checkpoint"


def test_early_stopping_uses_validation_and_restores_the_best_epoch():
    train, val = train_val_split(digits("train", 640), 0.25, seed=0)
    torch.manual_seed(0)
    model = tiny_net(8)
    # A learning rate that diverges after the first epochs, so validation accuracy stops improving.
    config = fast_train(epochs=8, lr=3.0, warmup_epochs=0.0, schedule="cosine", early_stopping_patience=2)
    result = fit(model, train, config, val_split=val, progress=False)
    vals = [h.val_accuracy for h in result.history]
    assert result.best_epoch == 1 + vals.index(max(vals))
    assert result.stopped_early and len(result.history) == result.best_epoch + 2 < 8
    from shrink.recover.evaluation import sharded_accuracy

    assert sharded_accuracy(model, val, device="cpu") == pytest.approx(max(vals))


def test_early_stopping_without_validation_is_refused():
    with pytest.raises(ShrinkError, match="validation split"):
        fit(tiny_net(8), digits("train", SMALL), fast_train(early_stopping_patience=1), progress=False)


def test_global_batch_must_split_over_processes():
    assert per_process_batch(256, 4) == 64
    with pytest.raises(ShrinkError, match="multiple of 3"):
        per_process_batch(256, 3)


def test_progress_lines_have_eta_and_throughput(capsys):
    _train(1)
    err = capsys.readouterr().err
    assert "eta" not in err  # progress=False is silent
    torch.manual_seed(0)
    fit(tiny_net(8), digits("train", SMALL), fast_train(epochs=1), progress=True)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "epoch 1/1" in line and "img/s" in line and "eta" in line and "loss" in line
