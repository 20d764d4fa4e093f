"""Detection targets in one tensor per split, so they fit a TensorSplit like class ids do.

A split's targets are a float32 tensor (N, MAX, 5): per image, up to MAX rows of
(label, x1, y1, x2, y2), then padding rows whose label is PADDING_LABEL (-1) and whose box is 0.
Labels count from 1 (0 is torchvision's background class). Boxes are xyxy in pixel coordinates of
the image as the model sees it: x1, y1 the top-left corner, x2, y2 exclusive, so an item covering
columns 10..19 has x1 = 10, x2 = 20 and its width is x2 - x1 (COCO's xywh is (x1, y1, x2 - x1, y2 - y1)).
"""

from __future__ import annotations

from typing import Sequence

import torch

from shrink.errors import ShrinkError

PADDING_LABEL = -1
ROW = 5  # label, x1, y1, x2, y2


def pack_targets(boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], max_items: int | None = None
                 ) -> torch.Tensor:
    """(N, max_items, 5) float32 from per-image boxes (n, 4) xyxy and labels (n,); max_items
    defaults to the most boxes any image has (at least 1, so an empty split still has a row)."""
    if len(boxes) != len(labels):
        raise ShrinkError(f"{len(boxes)} box sets but {len(labels)} label sets")
    most = max((len(b) for b in boxes), default=0)
    width = max(1, most) if max_items is None else max_items
    if most > width:
        raise ShrinkError(f"an image has {most} boxes; targets hold at most {width}")
    packed = torch.zeros(len(boxes), width, ROW, dtype=torch.float32)
    packed[:, :, 0] = PADDING_LABEL
    for i, (b, lab) in enumerate(zip(boxes, labels)):
        if len(b) != len(lab):
            raise ShrinkError(f"image {i} has {len(b)} boxes but {len(lab)} labels")
        packed[i, : len(b), 0] = torch.as_tensor(lab, dtype=torch.float32)
        packed[i, : len(b), 1:] = torch.as_tensor(b, dtype=torch.float32).reshape(-1, 4)
    return packed


def targets_to_list(targets: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Packed targets (N, MAX, 5) -> one dict per image, as torchvision's detectors and
    shrink.metrics.detection take them: boxes FloatTensor (n, 4) xyxy, labels LongTensor (n,),
    padding rows dropped."""
    if targets.ndim != 3 or targets.shape[-1] != ROW:
        raise ShrinkError(f"detection targets must be (N, MAX, {ROW}), got {tuple(targets.shape)}")
    out = []
    for rows in targets:
        real = rows[rows[:, 0] != PADDING_LABEL]
        out.append({"boxes": real[:, 1:].float(), "labels": real[:, 0].long()})
    return out
