"""What segfolder:DIR and coco:DIR share: where a split's files are, and how an image is read.

A split lives in a sub-folder, DIR/train/ and DIR/val/ (or DIR/test/), as for imagefolder:DIR. A DIR
with none of those sub-folders is one pool: its items, sorted by name (or COCO image id), are split
by a fixed-seed permutation, HOLDOUT_FRACTION of them (at least one) for "val"/"test", the rest for
"train", so every call splits the same way.

Both loaders check every target and image header first, then decode the images batch by batch
(`FileTargets`), stretched to a fixed (H, W) without keeping the aspect ratio (PIL bilinear),
because targets (masks, boxes) must keep lining up pixel for pixel. The record they read through
(`stretched`) is the one their figures ship with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from shrink.data.preprocessing import Preprocessing
from shrink.errors import ShrinkError, first_line

SPLIT_DIRS = {"train": ("train",), "test": ("val", "test"), "val": ("val",)}
HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0
DEFAULT_SIZE = (128, 128)  # (H, W) every image is resized to
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's pretrained segmenters and detectors expect these
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class SplitSource:
    folder: Path  # the folder whose layout is read
    part: str | None  # None: the whole folder is the split; "train" or "holdout": that part of a one-folder pool


def find_split(root: str | Path, split: str, kind: str) -> SplitSource:
    """Where `split` of a `kind` (segfolder, coco) dataset at `root` is."""
    root = Path(root)
    if not root.is_dir():
        raise ShrinkError(f"{kind} folder not found: {root}")
    names = SPLIT_DIRS.get(split)
    if names is None:
        raise ShrinkError(f"{kind} split must be one of {sorted(SPLIT_DIRS)}, not {split!r}")
    if not any((root / n).is_dir() for d in SPLIT_DIRS.values() for n in d):
        return SplitSource(root, "train" if split == "train" else "holdout")
    folder = next((root / n for n in names if (root / n).is_dir()), None)
    if folder is None:
        raise ShrinkError(f"{root} has no {' or '.join(names)}/ folder for the {split} split")
    return SplitSource(folder, None)


def split_folders(root: Path) -> list[Path]:
    """Every folder of `root` that holds a split (the root itself when it is one pool)."""
    found = sorted({root / n for d in SPLIT_DIRS.values() for n in d if (root / n).is_dir()})
    return found or [root]


def part_indices(count: int, part: str | None, where: Path) -> list[int]:
    """Which of `count` sorted items belong to `part` of a one-folder pool (all of them for None)."""
    if part is None:
        return list(range(count))
    if count < 2:
        raise ShrinkError(f"{where} holds {count} item(s): too few to hold out a test split; "
                          "put them in train/ and val/ sub-folders")
    held = max(1, int(round(count * HOLDOUT_FRACTION)))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(HOLDOUT_SEED)).tolist()
    return sorted(order[:held] if part == "holdout" else order[held:])


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding its pixels; an unreadable file is a
    ShrinkError that names it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ShrinkError(f"cannot read image {path}: {first_line(exc)}") from exc


def reading_record(kind: str, size: tuple[int, int], mean, std, record: Preprocessing | None) -> Preprocessing:
    """The record a segfolder:/coco: split is read through: `stretched` to the input size, with the
    mean and std of `record` when one is given (a shipped file's or a card's: its crop is the input
    size). A record that resizes the shorter side and crops would cut masks and boxes: refused."""
    if record is None:
        return stretched(size, mean, std)
    if record.resize is not None or record.color != "RGB":
        raise ShrinkError(f"the model's preprocessing ({'; '.join(record.steps()[:2])}) cannot read {kind}: data, whose "
                          "masks and boxes follow a stretch of the whole RGB image to the input size")
    return stretched(record.crop, record.mean, record.std)


class FileTargets(torch.utils.data.Dataset):
    """A split read from disk one image at a time: (input through `record`, target of item i).
    `target(i)` gives what goes with image i; only the file paths and targets stay in memory."""

    def __init__(self, paths: Sequence[Path], record: Preprocessing, target: Callable[[int], torch.Tensor]) -> None:
        self.paths, self.record, self.target = list(paths), record, target

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.record.apply(open_image(self.paths[i]))), self.target(i)


def open_image(path: Path):
    """A PIL image, its pixels loaded; an unreadable file is a ShrinkError that names it."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ShrinkError(f"cannot read image {path}: {first_line(exc)}") from exc
    return image


def stretched(size: tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> Preprocessing:
    """The contract of segfolder: and coco: data: RGB, resized to exactly `size` = (H, W) with PIL's
    bilinear filter (the aspect ratio not kept), then normalized. The loaders read their pixels
    through it, and it is the record their figures ship with."""
    return Preprocessing(color="RGB", crop=tuple(size), mean=tuple(mean), std=tuple(std), stretch=True)


def check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ShrinkError(f"image size must be (H, W), two positive integers, got {tuple(size)!r}")
    return int(size[0]), int(size[1])
