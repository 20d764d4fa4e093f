"""The user's own detection data in COCO format: coco:DIR.

Layout (split sub-folders as shrink.data.userfiles says; DIR itself when it is one pool, split by
image id):

    DIR/train/annotations.json    COCO: "images" (id, file_name, optional width/height),
                                  "annotations" (id, image_id, category_id, bbox [x, y, w, h]),
                                  "categories" (id, name)
    DIR/train/images/<file_name>  (or DIR/train/<file_name>)
    DIR/val/annotations.json, DIR/val/images/...

Category ids, sorted, become the contiguous labels 1..K (0 is torchvision's background), and the
classes are ("background", names in that order); every split must list the same categories. Images
are stretched to (H, W) bilinear (the record that ships says so) and their boxes scaled with them;
the images are decoded batch by batch, so a split of any size fits. The boxes are packed as
shrink.data.targets says (xyxy, x2/y2 exclusive). Crowd annotations (iscrowd = 1) mark regions
rather than instances and are left out. A box may stick out of its image by up to BOX_SLACK_PX (float
rounding in exporters) and is clipped; further out, or with a non-positive width or height, it is
refused, as are unknown category ids, annotations of images not listed, and images not found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shrink.data.preprocessing import Preprocessing
from shrink.data.splits import DataInfo, LoaderSplit
from shrink.data.targets import pack_targets
from shrink.data.userfiles import (DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD, FileTargets, check_size, find_split,
                                   image_size, part_indices, reading_record, split_folders)
from shrink.errors import ShrinkError

ANNOTATIONS_FILE = "annotations.json"
BOX_SLACK_PX = 1.0
KIND = "coco"


@dataclass(frozen=True)
class CocoImage:
    image_id: int
    file_name: str
    width: int | None  # as annotations.json says, when it does
    height: int | None
    boxes: tuple[tuple[float, float, float, float], ...]  # xywh in the original image's pixels
    annotation_ids: tuple[Any, ...]
    labels: tuple[int, ...]  # contiguous, 1..K


@dataclass(frozen=True)
class CocoFile:
    path: Path
    categories: tuple[tuple[int, str], ...]  # (category id, name), sorted by id
    images: tuple[CocoImage, ...]  # sorted by image id


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ShrinkError(f"{KIND}: {path.parent} has no {ANNOTATIONS_FILE}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ShrinkError(f"{KIND}: {path} is not valid JSON: {exc.msg} "
                          f"(line {exc.lineno} column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise ShrinkError(f"{KIND}: {path} is not UTF-8 text: {exc.reason}") from exc
    if not isinstance(document, dict) or not all(isinstance(document.get(k), list)
                                                 for k in ("images", "annotations", "categories")):
        raise ShrinkError(f"{KIND}: {path} is not a COCO file: it needs the lists \"images\", \"annotations\" and "
                          "\"categories\"")
    return document


def _field(entry: Any, key: str, kinds: tuple[type, ...], what: str, path: Path):
    """entry[key] when entry is a dict holding a value of `kinds` there; else a one-line error."""
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ShrinkError(f"{KIND}: {path}: {what} has no valid {key!r} (got {value!r})")
    return value


def read_annotations(path: Path) -> CocoFile:
    """annotations.json, checked: every fault that needs no image file is refused here."""
    document = _read_json(path)
    categories: dict[int, str] = {}
    for n, entry in enumerate(document["categories"]):
        cid = _field(entry, "id", (int,), f"category #{n}", path)
        if cid in categories:
            raise ShrinkError(f"{KIND}: {path} lists category id {cid} twice")
        categories[cid] = str(_field(entry, "name", (str,), f"category {cid}", path))
    if not categories:
        raise ShrinkError(f"{KIND}: {path} lists no categories")
    label_of = {cid: label for label, cid in enumerate(sorted(categories), start=1)}
    listed: dict[int, dict] = {}
    for n, entry in enumerate(document["images"]):
        iid = _field(entry, "id", (int,), f"image #{n}", path)
        if iid in listed:
            raise ShrinkError(f"{KIND}: {path} lists image id {iid} twice")
        _field(entry, "file_name", (str,), f"image {iid}", path)
        listed[iid] = entry
    per_image: dict[int, list[tuple[Any, tuple[float, float, float, float], int]]] = {iid: [] for iid in listed}
    for n, ann in enumerate(document["annotations"]):
        aid = ann.get("id", f"#{n}") if isinstance(ann, dict) else f"#{n}"
        iid = _field(ann, "image_id", (int,), f"annotation {aid}", path)
        if iid not in listed:
            raise ShrinkError(f"{KIND}: {path}: annotation {aid} refers to image id {iid}, which \"images\" does "
                              "not list")
        name = listed[iid]["file_name"]
        cid = _field(ann, "category_id", (int,), f"annotation {aid} (image {name})", path)
        if cid not in categories:
            raise ShrinkError(f"{KIND}: {path}: annotation {aid} (image {name}) has category_id {cid}, not among the "
                              f"categories {sorted(categories)}")
        box = ann.get("bbox")
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise ShrinkError(f"{KIND}: {path}: annotation {aid} (image {name}) needs a bbox [x, y, width, height], "
                              f"got {box!r}")
        if box[2] <= 0 or box[3] <= 0:
            raise ShrinkError(f"{KIND}: {path}: annotation {aid} (image {name}) has a box of width {box[2]} and "
                              f"height {box[3]}; both must be positive")
        if ann.get("iscrowd", 0):
            continue
        per_image[iid].append((aid, tuple(float(v) for v in box), label_of[cid]))
    images = []
    for iid in sorted(listed):
        entry, anns = listed[iid], per_image[iid]
        width, height = entry.get("width"), entry.get("height")
        images.append(CocoImage(
            image_id=iid, file_name=entry["file_name"],
            width=width if isinstance(width, int) else None, height=height if isinstance(height, int) else None,
            boxes=tuple(a[1] for a in anns), annotation_ids=tuple(a[0] for a in anns),
            labels=tuple(a[2] for a in anns)))
    return CocoFile(path, tuple(sorted(categories.items())), tuple(images))


def _image_path(folder: Path, file_name: str, image_id: int) -> Path:
    for candidate in (folder / "images" / file_name, folder / file_name):
        if candidate.is_file():
            return candidate
    raise ShrinkError(f"{KIND}: image {file_name} (id {image_id}) not found: looked for "
                      f"{folder / 'images' / file_name} and {folder / file_name}")


def _xyxy_in(image: CocoImage, width: int, height: int, path: Path) -> list[tuple[float, float, float, float]]:
    """The image's boxes as xyxy clipped to width x height; a box further out than BOX_SLACK_PX is refused."""
    out = []
    for aid, (x, y, w, h) in zip(image.annotation_ids, image.boxes):
        if x < -BOX_SLACK_PX or y < -BOX_SLACK_PX or x + w > width + BOX_SLACK_PX or y + h > height + BOX_SLACK_PX:
            raise ShrinkError(f"{KIND}: {path}: annotation {aid} has a box [x, y, w, h] = {[x, y, w, h]} outside its "
                              f"image {image.file_name} ({width}x{height})")
        out.append((max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)))
    return out


class PackedRows:
    """Target i of a coco split: its packed box rows (MAX, 5), held in memory (a few floats per box)."""

    def __init__(self, packed: torch.Tensor) -> None:
        self.packed = packed

    def __call__(self, i: int) -> torch.Tensor:
        return self.packed[i]


def load_coco(root: str | Path, split: str, size: tuple[int, int] = DEFAULT_SIZE,
              mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
              record: Preprocessing | None = None) -> LoaderSplit:
    """One split of coco:ROOT, read from disk batch by batch: normalized images (N, 3, H, W) and
    packed float targets (N, MAX, 5) rows of (label, x1, y1, x2, y2) in the input's pixels, MAX the
    most boxes any image of the split has (shrink.data.targets.targets_to_list unpacks them). Every
    annotation and image header is checked before any work. `record`: a shipped file's
    preprocessing to read the images through (its crop is the input size)."""
    size = check_size(record.crop if record is not None else size)
    record = reading_record(KIND, size, mean, std, record)
    source = find_split(root, split, KIND)
    root = Path(root)
    coco = read_annotations(source.folder / ANNOTATIONS_FILE)
    for other in split_folders(root):
        if other != source.folder and (other / ANNOTATIONS_FILE).is_file():
            if read_annotations(other / ANNOTATIONS_FILE).categories != coco.categories:
                raise ShrinkError(f"{KIND}: {coco.path} and {other / ANNOTATIONS_FILE} list different categories; "
                                  "every split needs the same ids and names")
    chosen = [coco.images[i] for i in part_indices(len(coco.images), source.part, source.folder)]
    paths, boxes, labels = [], [], []
    for entry in chosen:
        path = _image_path(source.folder, entry.file_name, entry.image_id)
        width, height = image_size(path)
        if entry.width not in (None, width) or entry.height not in (None, height):
            raise ShrinkError(f"{KIND}: image {path} is {width}x{height} but {coco.path} says "
                              f"{entry.width}x{entry.height}")
        scale = torch.tensor([size[1] / width, size[0] / height] * 2)  # the stretch moves the boxes with it
        xyxy = torch.tensor(_xyxy_in(entry, width, height, coco.path), dtype=torch.float32).reshape(-1, 4)
        paths.append(path)
        boxes.append(xyxy * scale)
        labels.append(torch.tensor(entry.labels, dtype=torch.int64))
    info = DataInfo(name=f"{KIND}:{root}", classes=("background", *(name for _, name in coco.categories)), in_chans=3,
                    image_size=size, mean=record.mean, std=record.std, task="detection", preprocessing=record,
                    note=f"your COCO boxes from {root}, images resized to {size[1]}x{size[0]} with their boxes")
    return LoaderSplit(FileTargets(paths, record, PackedRows(pack_targets(boxes, labels).float())), info)
