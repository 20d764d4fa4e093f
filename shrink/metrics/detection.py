"""COCO box mAP, by pycocotools' own COCOeval on COCO objects built in memory.

Predictions and targets are one dict per image, as torchvision's detectors give and take them:
targets {"boxes": (n, 4) xyxy, "labels": (n,)}, predictions the same plus "scores": (n,). Boxes are
in pixels, x2/y2 exclusive (shrink.data.targets), turned into COCO's xywh here. The scores are
fractions in [0, 1], COCOeval's defaults: 101-point interpolated precision, up to 100 detections per
image (the highest scored), area range "all", averaged over the classes that have a target box (a
class only predicted, never there, is left out, as in COCO). No prediction at all scores 0.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from shrink.errors import ShrinkError


@dataclass(frozen=True)
class DetectionScore:
    map_50_95: float  # mAP averaged over IoU thresholds .50, .55, ..., .95 (COCO's headline AP)
    map_50: float  # mAP at IoU .50
    map_75: float  # mAP at IoU .75


def _rows(entry: Mapping[str, object], keys: tuple[str, ...], where: str) -> list[list]:
    """The entry's values for `keys` as python lists, checked to be one per box."""
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ShrinkError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
    boxes = torch.as_tensor(entry["boxes"], dtype=torch.float64).reshape(-1, 4)
    columns = [boxes.tolist()] + [torch.as_tensor(entry[k]).reshape(-1).tolist() for k in keys[1:]]
    if any(len(c) != len(boxes) for c in columns):
        counts = ", ".join(f"{len(c)} {k}" for c, k in zip(columns[1:], keys[1:]))
        raise ShrinkError(f"{where} has {len(boxes)} boxes but {counts}")
    return columns


def _xywh(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def detection_score(predictions: Sequence[Mapping[str, object]], targets: Sequence[Mapping[str, object]]
                    ) -> DetectionScore:
    """COCO mAP of `predictions` against `targets`, image i of one to image i of the other."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(predictions) != len(targets):
        raise ShrinkError(f"{len(predictions)} prediction sets for {len(targets)} images")
    # COCO ids count from 1: COCOeval takes a matched id of 0 for "not matched"
    truth, found, labels = [], [], set()
    for image_id, (pred, target) in enumerate(zip(predictions, targets), start=1):
        boxes, classes = _rows(target, ("boxes", "labels"), f"the target of image {image_id - 1}")
        for box, label in zip(boxes, classes):
            xywh = _xywh(box)
            truth.append({"id": len(truth) + 1, "image_id": image_id, "category_id": int(label), "bbox": xywh,
                          "area": xywh[2] * xywh[3], "iscrowd": 0})
            labels.add(int(label))
        boxes, classes, scores = _rows(pred, ("boxes", "labels", "scores"), f"the prediction for image {image_id - 1}")
        for box, label, score in zip(boxes, classes, scores):
            found.append({"image_id": image_id, "category_id": int(label), "bbox": _xywh(box), "score": float(score)})
            labels.add(int(label))
    if not truth:
        raise ShrinkError("no target box in any image: detection mAP is undefined")
    if not found:
        return DetectionScore(0.0, 0.0, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on every step
        ground = COCO()
        ground.dataset = {"images": [{"id": i} for i in range(1, len(targets) + 1)], "annotations": truth,
                          "categories": [{"id": label} for label in sorted(labels)]}
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(found), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [max(0.0, float(s)) for s in evaluation.stats[:3]]  # -1: nothing to average
    return DetectionScore(map_50_95=stats[0], map_50=stats[1], map_75=stats[2])
