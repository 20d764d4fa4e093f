"""Teacher logits computed once: the same targets as the live teacher, looked up by the batch's
dataset indices, refused when a batch does not line up, and used only when exact and worth it."""

from __future__ import annotations

import pytest
import torch
from recover_fixtures import digits, fast_train, narrow_copy, trained_tiny

from shrink.data import BatchOptions, batch_indices
from shrink.errors import ShrinkError
from shrink.recover import DistillConfig, DistillLoss, RecoverConfig, recover
from shrink.recover.teacher_logits import MAX_CACHE_BYTES, compute_teacher_logits, why_not_cache


def test_cached_logits_are_the_live_teachers_for_shuffled_batches():
    teacher, split = trained_tiny(), digits("train", 300)
    cached = compute_teacher_logits(teacher, split, device="cpu", bf16=True, progress=False)
    assert cached.logits.shape == (300, 10) and not teacher.training
    options = BatchOptions(batch_size=64, shuffle=True, seed=3, epoch=1)
    for (x, y), indices in zip(split.batches(options), batch_indices(len(split), options), strict=True):
        with torch.no_grad():
            live = teacher(x)
        torch.testing.assert_close(cached.lookup(indices, y), live, rtol=1e-4, atol=1e-5)


def test_distill_loss_with_the_cache_equals_the_live_one_and_never_runs_the_teacher():
    teacher, split = trained_tiny(), digits("train", 200)
    cached = compute_teacher_logits(teacher, split, device="cpu", bf16=True, progress=False)
    options = BatchOptions(batch_size=50, shuffle=True, seed=0)
    (x, y), indices = next(iter(split.batches(options))), batch_indices(len(split), options)[0]
    with torch.no_grad():
        logits = narrow_copy(teacher, 8).eval()(x)
    live = DistillLoss(teacher, DistillConfig(temperature=2.0, alpha=0.9))(logits, y, x, indices)
    calls = []
    teacher.register_forward_hook(lambda *args: calls.append(1))
    fast = DistillLoss(teacher, DistillConfig(temperature=2.0, alpha=0.9), cached=cached)(logits, y, x, indices)
    assert fast.item() == pytest.approx(live.item(), rel=1e-5) and not calls


def test_a_batch_that_does_not_line_up_is_refused():
    teacher, split = trained_tiny(), digits("train", 200)
    cached = compute_teacher_logits(teacher, split, device="cpu", bf16=True, progress=False)
    labels = split.labels[:50]
    shifted = torch.arange(1, 51)  # off by one image: some labels differ
    assert not torch.equal(split.labels[shifted], labels)
    with pytest.raises(ShrinkError, match="do not line up"):
        cached.lookup(shifted, labels)
    with pytest.raises(ShrinkError, match="needs the live teacher"):
        DistillLoss(teacher, DistillConfig(feature_layers=("1",), feature_weight=1.0), student=teacher, cached=cached)


@pytest.mark.parametrize("change, reason", [
    (dict(augment=True), "augmentation"),
    (dict(feature_weight=1.0), "feature distillation"),
    (dict(epochs=2, world_size=2), "one up-front pass would cost as much"),
    (dict(images=MAX_CACHE_BYTES // 40 + 1), "cache budget"),
])
def test_the_teacher_runs_live_when_caching_is_inexact_or_does_not_pay(change, reason):
    settings = dict(augment=False, feature_weight=0.0, epochs=5, world_size=1, images=60_000)
    assert why_not_cache(DistillConfig(), fast_train(epochs=5, augment=False), 60_000, 10, 1) is None
    settings.update(change)
    distill = DistillConfig(feature_layers=("a",) if settings["feature_weight"] else (),
                            feature_weight=settings["feature_weight"])
    train = fast_train(epochs=settings["epochs"], augment=settings["augment"])
    assert reason in why_not_cache(distill, train, settings["images"], 10, settings["world_size"])


def test_recovery_with_cached_logits_matches_the_live_teacher(capsys):
    teacher, split, test = trained_tiny(), digits("train", 640), digits("test")
    student = narrow_copy(teacher, 6)
    config = RecoverConfig(bn_recal_images=200, train=fast_train(epochs=2),
                           distill=DistillConfig(temperature=2.0, alpha=0.9))
    fast = recover(student, teacher, split, config, eval_split=test, progress=True)
    assert fast.teacher_cached and "teacher logits: one pass over 640 images" in capsys.readouterr().err
    live = recover(student, teacher, split, config, eval_split=test, progress=False, teacher_cache=False)
    assert not live.teacher_cached
    # Same targets up to float rounding, so the same training within rounding.
    assert fast.accuracy_after == pytest.approx(live.accuracy_after, abs=0.6)
    for a, b in zip(fast.model.state_dict().values(), live.model.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
