"""Scores for the tasks beyond classification: mIoU for segmentation, COCO mAP for detection.

Light on import: the names below load their module (torch, pycocotools) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ConfusionMatrix": "shrink.metrics.segmentation",
    "SegmentationScore": "shrink.metrics.segmentation",
    "DetectionScore": "shrink.metrics.detection",
    "detection_score": "shrink.metrics.detection",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shrink.metrics' has no attribute {name!r}")


__all__ = sorted(_LAZY)
