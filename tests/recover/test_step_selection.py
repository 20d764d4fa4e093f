"""Recovery ships its best step on training images held out of it, not merely its last step."""

from __future__ import annotations

import torch
from recover_fixtures import digits, fast_train, narrow_copy, trained_tiny

from shrink.evaluate import evaluate_torch
from shrink.recover import RecoverConfig, recover
from shrink.run.inputs import held_out


def train_and_select():
    """640 training images and 200 others held out of them (never the test set)."""
    select, rest = held_out(digits("train"), 200, seed=0)
    return rest.subset(torch.arange(640)), select


def test_a_training_that_hurts_is_not_what_ships():
    dense = trained_tiny(16)
    pruned = narrow_copy(dense, keep=8)
    (train, select), test = train_and_select(), digits("test")
    # A learning rate this large wrecks the weights: the fine-tuned step is worse than BN recal.
    config = RecoverConfig(bn_recal=True, bn_recal_images=300, train=fast_train(epochs=1, lr=50.0))
    result = recover(pruned, None, train, config, eval_split=test, select_split=select, progress=False)
    steps = [s["step"] for s in result.selection]
    assert steps == ["pruned", "bn-recal", "fine-tuned"]
    by_step = {s["step"]: s["accuracy"] for s in result.selection}
    assert by_step["fine-tuned"] < by_step["bn-recal"]
    assert result.shipped_step == "bn-recal" and result.selection_images == 200
    # The model it carries is the BN-recalibrated one: its test accuracy is the BN-recal figure.
    assert evaluate_torch(result.model, test).accuracy == result.accuracy_after == result.accuracy_bn_recal


def test_a_training_that_helps_ships_the_last_step():
    dense = trained_tiny(16)
    pruned = narrow_copy(dense, keep=8)
    config = RecoverConfig(bn_recal=True, bn_recal_images=300, train=fast_train(epochs=2))
    train, select = train_and_select()
    result = recover(pruned, None, train, config, eval_split=digits("test"), select_split=select, progress=False)
    assert result.shipped_step == "fine-tuned"
    assert result.selection[-1]["accuracy"] >= result.selection[1]["accuracy"]


def test_without_a_selection_split_the_last_step_ships_and_nothing_is_measured():
    torch.manual_seed(0)
    pruned = narrow_copy(trained_tiny(16), keep=8)
    result = recover(pruned, None, digits("train", 320), RecoverConfig(bn_recal=True, bn_recal_images=200, train=None),
                     progress=False)
    assert result.selection == [] and result.selection_split is None and result.shipped_step == "bn-recal"


def test_a_last_step_within_the_tolerance_still_ships():
    from shrink.recover.api import StepSelection

    class Fixed(StepSelection):
        """Accuracies given, not measured: the rule alone."""

        def __init__(self, accuracies, tolerance):
            super().__init__(torch.nn.Linear(1, 1), object(), "cpu", None, tolerance)
            self.accuracies = iter(accuracies)

        def measure(self, step):
            self.shipped = step
            accuracy = next(self.accuracies)
            self.steps.append({"step": step, "accuracy": accuracy})
            if self._best is None or accuracy >= self._best[0]:
                self._best = (accuracy, step, self.model.state_dict())

    near = Fixed([10.0, 92.6, 92.4], tolerance=0.5)
    for step in ("pruned", "reconstructed", "distilled"):
        near.measure(step)
    assert not near.restore_best() and near.shipped == "distilled"
    far = Fixed([10.0, 92.6, 91.0], tolerance=0.5)
    for step in ("pruned", "reconstructed", "distilled"):
        far.measure(step)
    assert far.restore_best() and far.shipped == "reconstructed"
