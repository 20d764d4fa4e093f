"""The user's own segmentation data: segfolder:DIR.

Layout (split sub-folders as shrink.data.userfiles says; DIR itself when it is one pool):

    DIR/classes.txt                optional: one class name per line, line i names class id i
    DIR/train/images/<stem>.png|jpg
    DIR/train/masks/<stem>.png     an index PNG (mode P or L): pixel value = class id, 255 = ignore
    DIR/val/images/..., DIR/val/masks/...

Every image needs a mask of the same stem and the same size, and every mask an image; all masks are
checked before any work, and the images are decoded batch by batch, so a split of any size fits.
Images are stretched to (H, W) bilinear (the record that ships says so), masks nearest, so class
ids stay class ids. Without classes.txt the
classes are 0..the largest id in any mask of DIR (all splits, so every split has the same classes),
named by their ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from shrink.data.preprocessing import Preprocessing
from shrink.data.splits import DataInfo, LoaderSplit
from shrink.data.userfiles import (DEFAULT_SIZE, IMAGE_SUFFIXES, IMAGENET_MEAN, IMAGENET_STD, FileTargets, check_size,
                                   find_split, image_size, open_image, part_indices, reading_record, split_folders)
from shrink.errors import ShrinkError

IGNORE_INDEX = 255  # a mask pixel that is scored as nothing (borders, unlabeled)
MASK_MODES = ("P", "L")  # 8-bit single-channel PNGs, whose pixel values are the class ids
CLASSES_FILE = "classes.txt"
KIND = "segfolder"


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(image, mask) for every image of folder/images, sorted by stem; refused: a missing folder,
    no images, an image without a mask, a mask without an image."""
    images_dir, masks_dir = folder / "images", folder / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise ShrinkError(f"{KIND}: {folder} has no {d.name}/ folder (it needs images/ and masks/)")
    images: dict[str, Path] = {}
    for path in sorted(images_dir.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in images:
                raise ShrinkError(f"{KIND}: two images named {path.stem}: {images[path.stem].name} and {path.name}")
            images[path.stem] = path
    if not images:
        raise ShrinkError(f"{KIND}: {images_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    masks: dict[str, Path] = {}
    for path in sorted(masks_dir.iterdir()):
        if path.suffix.lower() == ".png":
            masks[path.stem] = path
        elif path.suffix.lower() in IMAGE_SUFFIXES:  # JPEG's lossy compression would change class ids
            raise ShrinkError(f"{KIND}: mask {path} is not a PNG; masks must be lossless index PNGs")
    for stem, path in images.items():
        if stem not in masks:
            raise ShrinkError(f"{KIND}: image {path} has no mask {masks_dir / (stem + '.png')}")
    for stem, path in masks.items():
        if stem not in images:
            raise ShrinkError(f"{KIND}: mask {path} has no image {stem}.* in {images_dir}")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def _open_mask(path: Path):
    mask = open_image(path)
    if mask.mode not in MASK_MODES:
        raise ShrinkError(f"{KIND}: mask {path} is a {mask.mode} image; masks must be 8-bit index PNGs "
                          f"(mode {' or '.join(MASK_MODES)}) whose pixel values are class ids")
    return mask


def _ids_in(mask) -> list[int]:
    """The class ids a mask uses (its pixel values but IGNORE_INDEX), read from its histogram."""
    return [value for value, n in enumerate(mask.histogram()[:256]) if n and value != IGNORE_INDEX]


def read_classes(root: Path) -> tuple[str, ...]:
    """The class names: classes.txt when present, else "0".."K" for the largest id K in any mask."""
    listed = root / CLASSES_FILE
    if listed.is_file():
        names = tuple(line.strip() for line in listed.read_text(encoding="utf-8").strip().splitlines())
        if not names or any(not n for n in names):
            raise ShrinkError(f"{KIND}: {listed} must name one class per line, with no blank line between")
        return names
    largest = 0
    for folder in split_folders(root):
        for _, mask_path in _pairs(folder):
            largest = max([largest, *_ids_in(_open_mask(mask_path))])
    return tuple(str(i) for i in range(largest + 1))


class MaskFiles:
    """Target i of a segfolder split: mask i resized nearest to the input size (class ids stay class
    ids; a P image's pixel values are its palette indices), as int64."""

    def __init__(self, paths: list[Path], size: tuple[int, int]) -> None:
        self.paths, self.size = paths, size

    def __call__(self, i: int) -> torch.Tensor:
        mask = _open_mask(self.paths[i]).resize((self.size[1], self.size[0]), Image.NEAREST)
        return torch.from_numpy(np.array(mask, dtype=np.uint8)).long()  # a copy: PIL gives a read-only view


def _check_pairs(pairs: list[tuple[Path, Path]], classes: tuple[str, ...]) -> None:
    """Every mask the size of its image and within the classes, read before any work (the images
    only to their headers; their pixels are decoded batch by batch later)."""
    for image_path, mask_path in pairs:
        (width, height), mask = image_size(image_path), _open_mask(mask_path)
        if mask.size != (width, height):
            raise ShrinkError(f"{KIND}: mask {mask_path} is {mask.size[0]}x{mask.size[1]} but its image "
                              f"{image_path.name} is {width}x{height}")
        unknown = [c for c in _ids_in(mask) if c >= len(classes)]
        if unknown:
            raise ShrinkError(f"{KIND}: mask {mask_path} has class id {unknown[0]}, but there are {len(classes)} "
                              f"classes (0..{len(classes) - 1}; {IGNORE_INDEX} = ignore)")


def load_segfolder(root: str | Path, split: str, size: tuple[int, int] = DEFAULT_SIZE,
                   mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                   record: Preprocessing | None = None) -> LoaderSplit:
    """One split of segfolder:ROOT, read from disk batch by batch: normalized images (N, 3, H, W)
    and int64 masks (N, H, W) of class ids and IGNORE_INDEX. `record`: a shipped file's
    preprocessing to read the images through (its crop is the input size)."""
    size = check_size(record.crop if record is not None else size)
    record = reading_record(KIND, size, mean, std, record)
    source = find_split(root, split, KIND)
    root = Path(root)
    classes = read_classes(root)
    pairs = _pairs(source.folder)
    pairs = [pairs[i] for i in part_indices(len(pairs), source.part, source.folder)]
    _check_pairs(pairs, classes)
    info = DataInfo(name=f"{KIND}:{root}", classes=classes, in_chans=3, image_size=size, mean=record.mean,
                    std=record.std, task="segmentation", preprocessing=record,
                    note=f"your segmentation masks from {root}, resized to {size[1]}x{size[0]} (masks nearest)")
    files = FileTargets([image for image, _ in pairs], record, MaskFiles([mask for _, mask in pairs], size))
    return LoaderSplit(files, info)
