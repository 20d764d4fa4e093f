"""Distillation loss: checked against a hand computation, and the teacher stays frozen."""

from __future__ import annotations

import math

import pytest
import torch
from recover_fixtures import tiny_net

from shrink.errors import ShrinkError
from shrink.recover import DistillConfig, DistillLoss, kd_loss
from shrink.recover.distill import attention_transfer_loss


def _softmax(row, t):
    exps = [math.exp(v / t) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def _hand_kd(student, teacher, labels, t, alpha):
    """Hinton's loss written out with Python floats: T^2 KL(p_t || p_s) and CE on the labels."""
    soft = hard = 0.0
    for s_row, t_row, label in zip(student, teacher, labels):
        p_s, p_t = _softmax(s_row, t), _softmax(t_row, t)
        soft += sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s))
        hard += -math.log(_softmax(s_row, 1.0)[label])
    n = len(labels)
    return alpha * t * t * soft / n + (1 - alpha) * hard / n


@pytest.mark.parametrize("t, alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 0.0), (3.0, 1.0)])
def test_kd_loss_matches_hand_computation(t, alpha):
    student = [[1.0, -0.5, 2.0, 0.3], [0.2, 0.1, -1.0, 1.5], [-2.0, 0.0, 0.5, 0.7]]
    teacher = [[2.0, 0.5, 1.0, -0.3], [0.0, 0.0, 0.0, 3.0], [1.0, -1.0, 2.5, 0.1]]
    labels = [2, 3, 0]
    got = kd_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), temperature=t, alpha=alpha)
    assert got.item() == pytest.approx(_hand_kd(student, teacher, labels, t, alpha), rel=1e-5)


def test_kd_loss_is_zero_soft_term_when_student_equals_teacher():
    logits = torch.randn(5, 10)
    assert kd_loss(logits, logits, torch.zeros(5, dtype=torch.long), temperature=4, alpha=1.0).item() == pytest.approx(
        0.0, abs=1e-6)


def test_teacher_stays_frozen_and_in_eval_mode():
    torch.manual_seed(0)
    teacher, student = tiny_net(16), tiny_net(8)
    snapshot = {k: v.clone() for k, v in teacher.state_dict().items()}
    criterion = DistillLoss(teacher, DistillConfig())
    criterion.train()
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    loss = criterion(student(x), y, x)
    loss.backward()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(snapshot[k], v) for k, v in teacher.state_dict().items())  # BN stats too
    assert all(p.grad is not None for p in student.parameters())


def test_feature_distillation_works_across_widths_and_adds_to_the_loss():
    torch.manual_seed(0)
    teacher, student = tiny_net(16), tiny_net(8)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    plain = DistillLoss(teacher, DistillConfig())
    feat = DistillLoss(teacher, DistillConfig(feature_layers=("2", "5"), feature_weight=100.0), student=student)
    logits = student(x)
    with_features = feat(logits, y, x)
    assert with_features.item() > plain(logits, y, x).item()
    feat.close()
    assert not student[2]._forward_hooks and not teacher[2]._forward_hooks


def test_attention_transfer_is_zero_for_the_same_maps_at_any_width():
    f = torch.randn(2, 8, 4, 4)
    assert attention_transfer_loss(f, torch.cat([f, f], dim=1)).item() == pytest.approx(0.0, abs=1e-7)


def test_unknown_feature_layer_is_a_clear_error():
    with pytest.raises(ShrinkError, match="not modules of the student"):
        DistillLoss(tiny_net(16), DistillConfig(feature_layers=("layer9",), feature_weight=1.0), student=tiny_net(8))
