"""A small YOLO-style detector in plain PyTorch: your own detector, shrunk through `file.py:factory`.

    shrink train examples/yolo_style.py:build --task detection --data fmnist-det \
        --num-classes 11 --input-size 128 --epochs 10 --batch-size 32 --optimizer adamw --lr 0.002 --out runs/yolo

What torch-shrink needs from a detector of your own (docs/tasks.md):
- `forward(x)` returns a tuple of plain tensors, named by `output_names`, the class scores named
  "cls_logits" (N, cells, classes); nothing data-dependent (no NMS, no top-k) happens in it, so
  the graph prunes, exports and quantizes like any other;
- `decode(outputs)` turns those outputs (tensors or numpy arrays) into boxes (x1, y1, x2, y2 in
  input pixels), scores and labels per image, in fp32, outside the graph;
- `loss_from_outputs(outputs, targets)` for `shrink train` and recovery, with torchvision's
  target format (a list of {"boxes", "labels"} per image; labels 1..K, 0 is the background).

The model: a CSP-style backbone (two branches, concatenated), a top-down neck (upsample and
concatenate) and an anchor-free decoupled head on strides 8 and 16. Each cell predicts class
scores (sigmoid) and its distances to the box's four sides; a cell is a positive for a box when
its centre falls inside the box's central region, as in FCOS and YOLOX's centre sampling.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

STRIDES = (8, 16)
CENTRE_RADIUS = 1.5  # cells within this many strides of a box centre are its positives
SCORE_THRESHOLD = 0.05
NMS_IOU = 0.5
MAX_DETECTIONS = 100


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())


def pointwise(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())


class CSPBlock(nn.Module):
    """Two 1x1 branches, one of them convolved twice more, concatenated and merged (YOLOv5's C3)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.skip = pointwise(channels, half)
        self.main = nn.Sequential(pointwise(channels, half), conv(half, half), conv(half, half))
        self.merge = pointwise(2 * half, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([self.skip(x), self.main(x)], dim=1))


class YoloStyle(nn.Module):
    # torchvision's names, which shrink reads: the class scores are "cls_logits" (N, cells, classes),
    # channel 0 the background (as in torchvision's detectors, `num_classes` counts it)
    output_names = ("bbox_regression", "cls_logits")

    def __init__(self, num_classes: int = 11, in_chans: int = 3, width: int = 32) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(conv(in_chans, width, 2), conv(width, 2 * width, 2))  # stride 4
        self.stage8 = nn.Sequential(conv(2 * width, 4 * width, 2), CSPBlock(4 * width))  # stride 8
        self.stage16 = nn.Sequential(conv(4 * width, 8 * width, 2), CSPBlock(8 * width))  # stride 16
        self.lateral = conv(8 * width + 4 * width, 4 * width)  # the neck at stride 8
        self.heads = nn.ModuleList(self._head(c) for c in (4 * width, 8 * width))

    def _head(self, channels: int) -> nn.ModuleDict:
        return nn.ModuleDict({
            "cls": nn.Sequential(conv(channels, channels), nn.Conv2d(channels, self.num_classes, 1)),
            "box": nn.Sequential(conv(channels, channels), nn.Conv2d(channels, 4, 1)),
        })

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p8 = self.stage8(self.stem(x))
        p16 = self.stage16(p8)
        n8 = self.lateral(torch.cat([p8, F.interpolate(p16, scale_factor=2.0, mode="nearest")], dim=1))
        boxes, scores = [], []
        for feature, head in zip((n8, p16), self.heads):
            # (N, C, H, W) -> (N, H*W, C): one row per cell, levels concatenated
            boxes.append(head["box"](feature).flatten(2).transpose(1, 2))
            scores.append(head["cls"](feature).flatten(2).transpose(1, 2))
        return torch.cat(boxes, dim=1), torch.cat(scores, dim=1)

    # ------------------------------------------------------------------ outside the graph

    def _cells(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre (x, y) in input pixels and stride of every cell, in the order forward() emits them."""
        centres, strides = [], []
        for stride in STRIDES:
            ys, xs = torch.meshgrid(torch.arange(height // stride), torch.arange(width // stride), indexing="ij")
            centres.append(torch.stack([xs, ys], -1).reshape(-1, 2).float() * stride + stride / 2)
            strides.append(torch.full((centres[-1].shape[0],), float(stride)))
        return torch.cat(centres), torch.cat(strides)

    def _to_boxes(self, distances: torch.Tensor, centres: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
        ltrb = F.softplus(distances) * strides[:, None]  # positive distances, in units of the stride
        return torch.cat([centres - ltrb[..., :2], centres + ltrb[..., 2:]], dim=-1)

    def decode(self, outputs) -> list[dict[str, torch.Tensor]]:
        boxes_out, scores_out = (torch.as_tensor(o).float() for o in outputs)
        cells = boxes_out.shape[1]
        side = int(round((cells / sum(1 / s**2 for s in STRIDES)) ** 0.5))  # square inputs
        centres, strides = self._cells(side, side)
        found = []
        for distances, logits in zip(boxes_out, scores_out):
            boxes = self._to_boxes(distances, centres, strides).clamp(0, side)
            scores, labels = logits[:, 1:].sigmoid().max(dim=1)  # channel 0 is the background
            keep = scores > SCORE_THRESHOLD
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep] + 1
            keep = torchvision.ops.batched_nms(boxes, scores, labels, NMS_IOU)[:MAX_DETECTIONS]
            found.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return found

    def loss_from_outputs(self, outputs, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        boxes_out, scores_out = outputs
        cells = boxes_out.shape[1]
        side = int(round((cells / sum(1 / s**2 for s in STRIDES)) ** 0.5))
        centres, strides = self._cells(side, side)
        centres, strides = centres.to(boxes_out.device), strides.to(boxes_out.device)
        cls_target = torch.zeros_like(scores_out)
        box_loss, positives = boxes_out.new_zeros(()), 0
        for i, target in enumerate(targets):
            for box, label in zip(target["boxes"], target["labels"]):
                centre = (box[:2] + box[2:]) / 2
                near = ((centres - centre).abs() <= CENTRE_RADIUS * strides[:, None]).all(dim=1)
                inside = ((centres > box[:2]) & (centres < box[2:])).all(dim=1)
                chosen = near & inside
                if not chosen.any():  # a small box: its nearest cell
                    chosen = torch.zeros_like(near)
                    chosen[((centres - centre) ** 2).sum(1).argmin()] = True
                cls_target[i, chosen, int(label)] = 1.0
                predicted = self._to_boxes(boxes_out[i, chosen], centres[chosen], strides[chosen])
                box_loss = box_loss + torchvision.ops.generalized_box_iou_loss(
                    predicted, box.expand_as(predicted), reduction="sum")
                positives += int(chosen.sum())
        cls_loss = torchvision.ops.sigmoid_focal_loss(scores_out, cls_target, reduction="sum")
        return (cls_loss + 2.0 * box_loss) / max(positives, 1)


def build(num_classes: int = 11, in_chans: int = 3) -> YoloStyle:
    return YoloStyle(num_classes=num_classes, in_chans=in_chans)
