"""What training minimises, and what it counts as right, for each task (shrink.tasks.Task).

- classification: cross-entropy of the logits (with label smoothing); top-1 per image.
- segmentation: per-pixel cross-entropy, target pixels 255 ignored; pixel accuracy over the
  pixels scored.
- detection: the detector's own loss (SSD's matching and hard-negative mining, RetinaNet's and
  FCOS's focal losses) computed from the head outputs the loop's one forward produced
  (`DetectionNet.loss_from_outputs`); no per-batch accuracy (mAP needs the whole split).

A criterion is `(outputs, labels, inputs, dataset indices) -> scalar loss`; a detector's outputs
are the tuple of its head outputs, in its `output_names` order.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from shrink.errors import ShrinkError
from shrink.metrics.segmentation import IGNORE_INDEX
from shrink.tasks import Task

# (outputs, labels, inputs, dataset indices of the batch) -> scalar loss; distillation plugs in here
Criterion = Callable[..., torch.Tensor]


def model_task(model: nn.Module) -> Task:
    """What `model` predicts, read from the model: shrink's segmenter and detector wrappers
    (tvseg:/tvdet: models, pruned or not) say so by their type; anything else is a classifier
    unless the caller says otherwise."""
    from shrink.models.dense import DetectionNet, SegmentationNet
    from shrink.models.two_stage import TwoStageNet

    if isinstance(model, (DetectionNet, TwoStageNet)):
        return Task.DETECTION
    if isinstance(model, SegmentationNet):
        return Task.SEGMENTATION
    return Task.CLASSIFICATION


def label_smoothing_ce(label_smoothing: float) -> Criterion:
    def criterion(logits, labels, inputs, indices):
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    return criterion


def segmentation_ce(label_smoothing: float) -> Criterion:
    """Per-pixel cross-entropy, mean over the pixels not marked IGNORE_INDEX (255)."""

    def criterion(logits, masks, inputs, indices):
        return F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)

    return criterion


class DetectionLoss:
    """The detector's own training loss from its head outputs and the packed box targets.

    A plain callable, not an nn.Module: it holds the (unwrapped) model only to reach its anchors
    and its torchvision loss, which have no parameters, so the loop must not move or register it."""

    def __init__(self, model: nn.Module) -> None:
        untrainable = getattr(model, "untrainable", None)
        if untrainable:
            raise ShrinkError(untrainable)
        if not hasattr(model, "loss_from_outputs"):
            raise ShrinkError(f"a detector's loss needs shrink's detector wrapper (a tvdet: model); "
                              f"{type(model).__name__} has no loss_from_outputs")
        self.model = model

    def __call__(self, outputs, targets, inputs, indices) -> torch.Tensor:
        from shrink.data.targets import targets_to_list

        return self.model.loss_from_outputs(outputs, targets_to_list(targets))


def hard_loss(task: Task, model: nn.Module, label_smoothing: float = 0.0) -> Criterion:
    """The loss against the labels for `task` (the loop's criterion when nothing else is given)."""
    if task is Task.CLASSIFICATION:
        return label_smoothing_ce(label_smoothing)
    if task is Task.SEGMENTATION:
        return segmentation_ce(label_smoothing)
    return DetectionLoss(model)


def as_float(outputs):
    """The model's outputs in float32 (bf16 under autocast), a tuple of them for a detector."""
    if isinstance(outputs, (tuple, list)):
        return tuple(o.float() for o in outputs)
    return outputs.float()


def batch_hits(task: Task, outputs, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | int] | None:
    """(right, scored) on one training batch, left on the device so the loop does not wait for it:
    images right of images for a classifier, pixels right of pixels scored for a segmenter; None
    for a detector (a training-batch mAP would cost a decode and NMS per step and mean little)."""
    if task is Task.CLASSIFICATION:
        return (outputs.detach().argmax(1) == labels).sum(), len(labels)
    if task is Task.SEGMENTATION:
        scored = labels != IGNORE_INDEX
        return ((outputs.detach().argmax(1) == labels) & scored).sum(), scored.sum()
    return None
