"""Knowledge distillation from a frozen teacher, as a criterion that plugs into `fit()`.

The soft term is Hinton's KL between temperature-softened distributions, scaled by T^2 so its
gradients keep the same size as the hard term's whatever the temperature. The optional feature
term is attention transfer (Zagoruyko & Komodakis): it compares per-position channel energy, so
it needs no learned adapter even though the pruned student has fewer channels than the teacher.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from shrink.errors import ShrinkError
from shrink.recover.config import DistillConfig
from shrink.recover.teacher_logits import TeacherLogits


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels), batch mean."""
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits.float() / t, dim=1),
        F.log_softmax(teacher_logits.float() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    if alpha == 1.0:
        return soft
    hard = F.cross_entropy(student_logits.float(), labels, label_smoothing=label_smoothing)
    return alpha * soft + (1.0 - alpha) * hard


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W): mean squared activation over channels, L2-normalized per image."""
    energy = features.float().pow(2).mean(dim=1).flatten(1)
    return F.normalize(energy, dim=1)


def attention_transfer_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    if student_features.shape[-2:] != teacher_features.shape[-2:]:
        raise ShrinkError(
            f"feature distillation needs the same spatial size in student and teacher, got "
            f"{tuple(student_features.shape)} vs {tuple(teacher_features.shape)}"
        )
    return (attention_map(student_features) - attention_map(teacher_features)).pow(2).mean()


class _FeatureTap:
    """Keeps the latest output of named modules (forward hooks), for feature distillation."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], role: str) -> None:
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ShrinkError(f"feature layers {missing} are not modules of the {role}; "
                              f"e.g. {[n for n in modules if n][:8]}")
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            self.outputs[name] = output

        return hook

    def take(self, name: str) -> torch.Tensor:
        if name not in self.outputs:
            raise ShrinkError(f"feature layer {name} did not run in the forward pass")
        return self.outputs.pop(name)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.outputs.clear()


class DistillLoss(nn.Module):
    """criterion(student_logits, labels, inputs, indices) for `fit()`: the teacher sees the same
    (augmented) inputs, under no_grad and inside the loop's autocast, and always stays in eval mode.
    With `cached` teacher logits (see teacher_logits.py) the batch's dataset indices look them up
    and the teacher does not run."""

    def __init__(self, teacher: nn.Module, config: DistillConfig, *, student: nn.Module | None = None,
                 label_smoothing: float = 0.0, cached: TeacherLogits | None = None) -> None:
        super().__init__()
        if cached is not None and config.feature_weight > 0:
            raise ShrinkError("feature distillation needs the live teacher: do not pass cached logits")
        self.cached = cached
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.config = config
        self.label_smoothing = label_smoothing
        self._student_tap = self._teacher_tap = None
        if config.feature_weight > 0:
            if student is None:
                raise ShrinkError("feature distillation needs the student model to hook its layers")
            self._student_tap = _FeatureTap(student, config.feature_layers, "student")
            self._teacher_tap = _FeatureTap(teacher, config.feature_layers, "teacher")

    def train(self, mode: bool = True) -> "DistillLoss":
        # The teacher is a fixed reference: its BN statistics must never move.
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, student_logits: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor,
                indices: torch.Tensor | None = None) -> torch.Tensor:
        if self.cached is not None:
            if indices is None:
                raise ShrinkError("cached teacher logits need the batch's dataset indices")
            teacher_logits = self.cached.lookup(indices, labels)
        else:
            with torch.no_grad():
                teacher_logits = self.teacher(inputs)
        loss = kd_loss(student_logits, teacher_logits, labels, temperature=self.config.temperature,
                       alpha=self.config.alpha, label_smoothing=self.label_smoothing)
        if self._student_tap is not None:
            feature = sum(
                attention_transfer_loss(self._student_tap.take(n), self._teacher_tap.take(n))
                for n in self.config.feature_layers
            )
            loss = loss + self.config.feature_weight * feature
        return loss

    def close(self) -> None:
        """Remove the feature hooks (the student keeps no trace of distillation)."""
        for tap in (self._student_tap, self._teacher_tap):
            if tap is not None:
                tap.remove()
