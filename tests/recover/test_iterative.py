"""Iterative prune -> recover: k steps on the epoch budget of one, to the widths of one-shot."""

from __future__ import annotations

import warnings

import pytest
import torch
from recover_fixtures import digits, fast_train, trained_tiny

from shrink.errors import ShrinkError
from shrink.prune import PruneConfig, apply, plan
from shrink.recover import RecoverConfig
from shrink.recover.iterative import prune_and_recover, split_epochs


def test_split_epochs():
    assert split_epochs(5, 1) == (5,)
    assert split_epochs(5, 2) == (2, 3)
    assert split_epochs(6, 3) == (2, 2, 2)
    with pytest.raises(ShrinkError, match="cannot be split"):
        split_epochs(2, 3)


def test_two_steps_reach_the_one_shot_widths_within_the_same_epochs(tmp_path):
    dense = trained_tiny(width=16)
    x = torch.randn(2, 1, 8, 8)
    config = PruneConfig(ratio=0.75, round_to=1, steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = prune_and_recover(dense, x, config, RecoverConfig(train=fast_train(epochs=2)), digits("train", 640),
                                   eval_split=digits("test"), checkpoint_dir=tmp_path, progress=False)
        one_shot = apply(dense, plan(dense, x, PruneConfig(ratio=0.75, round_to=1)))
    assert [s.epochs_completed for s in result.steps] == [1, 1]
    assert [m.shape for m in result.model.state_dict().values()] == [m.shape for m in one_shot.state_dict().values()]
    assert result.plan.steps[-1].index == 2 and len(result.plan.steps) == 2
    assert result.accuracy_after > 80
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step1", "step2"]
    assert dense[0].out_channels == 16  # the input model is untouched
