"""mIoU and pixel accuracy from a confusion matrix accumulated over batches.

All scores are fractions in [0, 1]. A class's IoU is TP / (TP + FP + FN) over every pixel seen.
mIoU averages the IoU of the classes that appear in the targets or in the predictions; a class
absent from both has no IoU (0 / 0) and is left out, so a test set without some class is not
penalised for it (nor rewarded: predicting a class that is not there gives it IoU 0, which counts).
Target pixels equal to the ignore index (255) are not scored, whatever is predicted there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shrink.errors import ShrinkError

IGNORE_INDEX = 255


@dataclass(frozen=True)
class SegmentationScore:
    miou: float  # fraction: mean IoU over the classes present in targets or predictions
    pixel_accuracy: float  # fraction of scored (not ignored) pixels predicted right
    class_iou: tuple[float | None, ...]  # per class id; None: absent from targets and predictions


class ConfusionMatrix:
    """Counts of (target class, predicted class) over every scored pixel: rows are targets."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ShrinkError(f"a confusion matrix needs at least 1 class, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self._counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    @property
    def counts(self) -> torch.Tensor:
        """(num_classes, num_classes) int64, [target, prediction] (a copy)."""
        return self._counts.clone()

    def update(self, pred_labels: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: predicted class ids and target class ids of the same shape (e.g. (N, H, W);
        the argmax of the logits over classes, not the logits)."""
        if pred_labels.shape != target.shape:
            raise ShrinkError(f"predictions {tuple(pred_labels.shape)} and targets {tuple(target.shape)} differ in "
                              "shape")
        pred, true = pred_labels.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
        scored = true != self.ignore_index
        pred, true = pred[scored], true[scored]
        for what, ids in (("target", true), ("predicted", pred)):
            if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_classes):
                raise ShrinkError(f"a {what} class id is outside 0..{self.num_classes - 1} (ignore index "
                                  f"{self.ignore_index}): found {int(ids.min())}..{int(ids.max())}")
        self._counts += torch.bincount(true * self.num_classes + pred, minlength=self.num_classes ** 2).reshape(
            self.num_classes, self.num_classes)

    def score(self) -> SegmentationScore:
        counts = self._counts.double()
        total = counts.sum()
        if total == 0:
            raise ShrinkError("nothing to score: no pixel was added, or every target pixel was the ignore index")
        hits = counts.diag()
        union = counts.sum(0) + counts.sum(1) - hits  # TP + FP + FN
        present = union > 0
        iou = torch.where(present, hits / union.clamp(min=1), torch.zeros_like(hits))
        return SegmentationScore(
            miou=float(iou[present].mean()),
            pixel_accuracy=float(hits.sum() / total),
            class_iou=tuple(float(v) if p else None for v, p in zip(iou.tolist(), present.tolist())),
        )
