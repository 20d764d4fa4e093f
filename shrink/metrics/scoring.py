"""A model's outputs, batch by batch, into its task's headline metric: one scorer per task.

The same scorer serves PyTorch and onnxruntime (outputs may be tensors or numpy arrays) so that a
figure measured on the ONNX file and one measured on the PyTorch model are computed alike:
- classification: top-1 of the logits;
- segmentation: mIoU and pixel accuracy of the per-pixel argmax (shrink.metrics.segmentation);
- detection: COCO mAP@[.5:.95] and mAP@.5 (pycocotools) of the boxes the model's `decode` gives,
  decoded and suppressed in fp32 outside the graph (shrink.models.dense).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from shrink.errors import ShrinkError
from shrink.tasks import Task

Outputs = Sequence  # one batch's outputs, in the model's output order (tensors or numpy arrays)
Decode = Callable[[Outputs], list[dict]]  # a detector's outputs -> boxes, scores, labels per image


@dataclass(frozen=True)
class TaskScore:
    task: Task
    value: float  # the headline metric in percent: top-1, mIoU or mAP@[.5:.95]
    images: int
    correct: int | None = None  # classification only
    details: dict[str, float] = field(default_factory=dict)  # pixel accuracy, mAP@.5, ... in percent

    @property
    def metric(self) -> str:
        return self.task.metric

    def describe(self) -> str:
        """'mIoU 61.20% (pixel accuracy 95.10%)', 'top-1 94.10% (941/1000)'."""
        if self.correct is not None:
            return f"{self.metric} {self.value:.2f}% ({self.correct}/{self.images})"
        extra = ", ".join(f"{k} {v:.2f}%" for k, v in self.details.items())
        return f"{self.metric} {self.value:.2f}%" + (f" ({extra})" if extra else "")


class Scorer(Protocol):
    def update(self, outputs: Outputs, targets: torch.Tensor) -> None: ...
    def result(self) -> TaskScore: ...


def _tensor(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array)) if not isinstance(array, torch.Tensor) else array.detach().cpu()


class ClassificationScorer:
    def __init__(self) -> None:
        self.correct = self.images = 0

    def update(self, outputs: Outputs, targets: torch.Tensor) -> None:
        logits = _tensor(outputs[0])
        self.correct += int((logits.argmax(1) == _tensor(targets)).sum())
        self.images += len(logits)

    def result(self) -> TaskScore:
        return TaskScore(Task.CLASSIFICATION, 100.0 * self.correct / max(self.images, 1), self.images, self.correct)


class SegmentationScorer:
    def __init__(self, num_classes: int) -> None:
        from shrink.metrics.segmentation import ConfusionMatrix

        self.matrix = ConfusionMatrix(num_classes)
        self.images = 0

    def update(self, outputs: Outputs, targets: torch.Tensor) -> None:
        logits = _tensor(outputs[0])
        self.matrix.update(logits.argmax(1), _tensor(targets).long())
        self.images += len(logits)

    def result(self) -> TaskScore:
        if not self.images:
            raise ShrinkError("no images were scored")
        score = self.matrix.score()
        return TaskScore(Task.SEGMENTATION, 100.0 * score.miou, self.images,
                         details={"pixel accuracy": 100.0 * score.pixel_accuracy})


class DetectionScorer:
    def __init__(self, decode: Decode) -> None:
        self.decode = decode
        self.predictions: list[dict] = []
        self.targets: list[dict] = []

    def update(self, outputs: Outputs, targets: torch.Tensor) -> None:
        from shrink.data.targets import targets_to_list

        self.predictions += [{k: v.detach().cpu() for k, v in p.items()} for p in self.decode(outputs)]
        self.targets += targets_to_list(_tensor(targets))

    def result(self) -> TaskScore:
        from shrink.metrics.detection import detection_score

        score = detection_score(self.predictions, self.targets)
        return TaskScore(Task.DETECTION, 100.0 * score.map_50_95, len(self.targets),
                         details={"mAP@.5": 100.0 * score.map_50})


def scorer_for(task: Task, *, num_classes: int, decode: Decode | None = None) -> Scorer:
    """The scorer of `task`; a detector's needs its `decode` (the model's, or one rebuilt from an
    ONNX file's metadata: shrink.models.dense)."""
    if task is Task.CLASSIFICATION:
        return ClassificationScorer()
    if task is Task.SEGMENTATION:
        return SegmentationScorer(num_classes)
    if decode is None:
        raise ShrinkError("scoring a detector needs its decoding (boxes from the head outputs)")
    return DetectionScorer(decode)


def as_outputs(out) -> list:
    """A model's return value as a list of outputs (a classifier's one tensor is a list of one)."""
    return list(out) if isinstance(out, (tuple, list)) else [out]
