"""What a model predicts, and so how it is scored: the one list of tasks.

A classifier returns one logits tensor per image and is scored by top-1. A segmenter returns
per-pixel logits (N, K, H, W) and is scored by mIoU. A detector's graph returns the raw outputs of
its heads; boxes are decoded and non-maximum-suppressed outside the graph, in fp32, and scored by
COCO mAP@[.5:.95].
"""

from __future__ import annotations

import enum

from shrink.errors import ShrinkValueError


class Task(str, enum.Enum):
    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    DETECTION = "detection"

    @property
    def metric(self) -> str:
        """The name of the headline metric, as the report prints it."""
        return METRICS[self]

    @classmethod
    def parse(cls, text: str) -> "Task":
        try:
            return cls(text)
        except ValueError:
            raise ShrinkValueError(f"unknown task {text!r}; choose one of: {', '.join(t.value for t in cls)}") from None


METRICS = {Task.CLASSIFICATION: "top-1", Task.SEGMENTATION: "mIoU", Task.DETECTION: "mAP@[.5:.95]"}
