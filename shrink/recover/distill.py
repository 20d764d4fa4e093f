"""Knowledge distillation from a frozen teacher, as a criterion that plugs into `fit()`.

The soft term is Hinton's KL between temperature-softened distributions, scaled by T^2 so its
gradients keep the same size as the hard term's whatever the temperature. The optional feature
term is attention transfer (Zagoruyko & Komodakis): it compares per-position channel energy, so
it needs no learned adapter even though the pruned student has fewer channels than the teacher.

Dense outputs (shrink.tasks.Task), with the same alpha and temperature:
- segmentation: the same KL per pixel (summed over classes, mean over every pixel: the teacher
  has a view on ignored pixels too), plus (1 - alpha) times the per-pixel cross-entropy.
- detection: per anchor, a soft term on cls_logits chosen by how the head scores (SSD: softmax
  KL over classes, background included; RetinaNet/FCOS: sigmoid focal-loss heads, so a binary KL
  per class), T^2-scaled; a smooth-L1 between the student's and the teacher's bbox_regression
  (FCOS: and a binary KL on bbox_ctrness), weighted per anchor by the teacher's probability that
  it holds an object, so the boxes of background anchors, which nothing decodes, do not count.
  The soft terms are normalized like torchvision's own losses, by the number of foreground
  anchors (here the teacher's expected count, at least 1); (1 - alpha) times the detector's own
  loss is the hard term. Student and teacher must share the anchors (the same architecture and
  input size, any widths).
Every soft term is 0 when the student's outputs equal the teacher's.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from shrink.errors import ShrinkError
from shrink.recover.config import DistillConfig
from shrink.recover.objectives import as_float, hard_loss, model_task
from shrink.recover.teacher_logits import TeacherLogits
from shrink.tasks import Task


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


def pixel_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)) over the classes (dim 1) of every pixel, mean over pixels."""
    _check_same_shape("segmentation", student_logits, teacher_logits)
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                  reduction="none", log_target=True)
    return kl.sum(dim=1).mean() * (t * t)


def binary_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(Bernoulli(sigmoid(t)) || Bernoulli(sigmoid(s))): the distillation term of a
    sigmoid score; binary cross-entropy against the teacher's probability minus its entropy, so 0
    when they agree."""
    p = torch.sigmoid(teacher_logits)
    return (p * (F.logsigmoid(teacher_logits) - F.logsigmoid(student_logits))
            + (1 - p) * (F.logsigmoid(-teacher_logits) - F.logsigmoid(-student_logits)))


def detection_kd_loss(student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor], *,
                      temperature: float, activation: str) -> torch.Tensor:
    """The soft terms of detection distillation (see the module docstring) from head outputs by
    name: cls_logits (N, A, K), bbox_regression (N, A, 4), and FCOS's bbox_ctrness (N, A, 1).
    `activation`: "softmax" (SSD) or "sigmoid" (RetinaNet, FCOS), DetectionNet.class_activation."""
    if set(student) != set(teacher):
        raise ShrinkError(f"the student detector's outputs {sorted(student)} are not the teacher's {sorted(teacher)}: "
                          "distill from a teacher of the same architecture")
    for name in student:
        _check_same_shape("detection", student[name], teacher[name], name)
    t = temperature
    s_cls, t_cls = student["cls_logits"], teacher["cls_logits"]
    with torch.no_grad():  # how much each anchor's boxes count: the teacher's belief that it holds an object
        if activation == "softmax":
            foreground = 1.0 - torch.softmax(t_cls, dim=-1)[..., 0]
        else:
            foreground = torch.sigmoid(t_cls).amax(dim=-1)
        objects = foreground.sum().clamp_min(1.0)
    if activation == "softmax":
        cls = F.kl_div(F.log_softmax(s_cls / t, dim=-1), F.log_softmax(t_cls / t, dim=-1), reduction="none",
                       log_target=True).sum(-1)
    else:
        cls = binary_kl(s_cls / t, t_cls / t).sum(-1)
    loss = cls.sum() * (t * t) / objects
    box = F.smooth_l1_loss(student["bbox_regression"], teacher["bbox_regression"], reduction="none").sum(-1)
    loss = loss + (box * foreground).sum() / objects
    if "bbox_ctrness" in student:
        centredness = binary_kl(student["bbox_ctrness"], teacher["bbox_ctrness"]).sum(-1)
        loss = loss + (centredness * foreground).sum() / objects
    return loss


def _check_same_shape(task: str, student: torch.Tensor, teacher: torch.Tensor, name: str = "logits") -> None:
    if student.shape != teacher.shape:
        raise ShrinkError(f"{task} distillation compares outputs position by position, but the student's {name} "
                          f"are {tuple(student.shape)} and the teacher's {tuple(teacher.shape)}: distill from a "
                          "teacher of the same architecture and input size")


def _anchor_layout(detector: nn.Module) -> tuple:
    """What a detector's anchors depend on: its kind, its input size and its feature map sizes."""
    return type(detector.detector).__name__, detector.input_size, detector.level_sizes


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
    """criterion(student_outputs, labels, inputs, indices) for `fit()`: the teacher sees the same
    (augmented) inputs, under no_grad and inside the loop's autocast, and always stays in eval mode.
    With `cached` teacher logits (see teacher_logits.py) the batch's dataset indices look them up
    and the teacher does not run. `task` (default: read from the student, else the teacher) picks
    the soft and hard terms (module docstring); a detector's needs the `student` for its own loss."""

    def __init__(self, teacher: nn.Module, config: DistillConfig, *, student: nn.Module | None = None,
                 label_smoothing: float = 0.0, cached: TeacherLogits | None = None,
                 task: Task | None = None) -> None:
        super().__init__()
        if cached is not None and config.feature_weight > 0:
            raise ShrinkError("feature distillation needs the live teacher: do not pass cached logits")
        self.task = task or model_task(student if student is not None else teacher)
        if self.task is not Task.CLASSIFICATION:
            if cached is not None:
                raise ShrinkError(f"cached teacher logits hold one row per image: a {self.task.value} teacher "
                                  "runs live")
            if self.task is Task.DETECTION and (student is None or model_task(teacher) is not Task.DETECTION):
                raise ShrinkError("distilling a detector needs a detector teacher (tvdet:) and the student model, "
                                  "whose own loss is the hard term")
            # the hard term; a detector's reads the student's anchors and torchvision loss (and
            # refuses a detector that cannot be trained, before its anchors are compared)
            self.hard = hard_loss(self.task, student, label_smoothing)
            if self.task is Task.DETECTION and _anchor_layout(student) != _anchor_layout(teacher):
                raise ShrinkError(f"detection distillation compares anchor by anchor, but the student's anchors "
                                  f"{_anchor_layout(student)} are not the teacher's {_anchor_layout(teacher)}: "
                                  "distill from a teacher of the same architecture and input size")
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
        if self.task is Task.CLASSIFICATION:
            loss = kd_loss(student_logits, teacher_logits, labels, temperature=self.config.temperature,
                           alpha=self.config.alpha, label_smoothing=self.label_smoothing)
        else:
            loss = self._dense_loss(student_logits, as_float(teacher_logits), labels, inputs, indices)
        if self._student_tap is not None:
            feature = sum(
                attention_transfer_loss(self._student_tap.take(n), self._teacher_tap.take(n))
                for n in self.config.feature_layers
            )
            loss = loss + self.config.feature_weight * feature
        return loss

    def _dense_loss(self, student_outputs, teacher_outputs, labels: torch.Tensor, inputs: torch.Tensor,
                    indices: torch.Tensor | None) -> torch.Tensor:
        """alpha * the soft terms + (1 - alpha) * the task's hard loss (kd_loss's weighting)."""
        config = self.config
        if self.task is Task.SEGMENTATION:
            soft = pixel_kd_loss(student_outputs, teacher_outputs, temperature=config.temperature)
        else:
            student, teacher = self.hard.model, self.teacher
            soft = detection_kd_loss(dict(zip(student.output_names, student_outputs, strict=True)),
                                     dict(zip(teacher.output_names, teacher_outputs, strict=True)),
                                     temperature=config.temperature, activation=student.class_activation)
        if config.alpha == 1.0:
            return soft
        return config.alpha * soft + (1.0 - config.alpha) * self.hard(student_outputs, labels, inputs, indices)

    def close(self) -> None:
        """Remove the feature hooks (the student keeps no trace of distillation)."""
        for tap in (self._student_tap, self._teacher_tap):
            if tap is not None:
                tap.remove()
