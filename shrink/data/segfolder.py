"""The user's own segmentation data: segfolder:DIR.

Layout (split sub-folders as shrink.data.userfiles says; DIR itself when it is one pool):

    DIR/classes.txt                optional: one class name per line, line i names class id i
    DIR/train/images/<stem>.png|jpg
    DIR/train/masks/<stem>.png     an index PNG (mode P or L): pixel value = class id, 255 = ignore
    DIR/val/images/..., DIR/val/masks/...

Every image needs a mask of the same stem and the same size, and every mask an image. Images are
resized to (H, W) bilinear, masks nearest, so class ids stay class ids. Without classes.txt the
classes are 0..the largest id in any mask of DIR (all splits, so every split has the same classes),
named by their ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from shrink.data.splits import DataInfo, TensorSplit
from shrink.data.userfiles import (DEFAULT_SIZE, IMAGE_SUFFIXES, IMAGENET_MEAN, IMAGENET_STD, check_size, find_split,
                                   open_image, part_indices, split_folders, stretched)
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


def load_segfolder(root: str | Path, split: str, size: tuple[int, int] = DEFAULT_SIZE,
                   mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> TensorSplit:
    """One split of segfolder:ROOT, held in memory: uint8 images (N, 3, H, W), uint8 masks
    (N, H, W) of class ids and IGNORE_INDEX (batches give int64)."""
    size = check_size(size)
    source = find_split(root, split, KIND)
    root = Path(root)
    classes = read_classes(root)
    pairs = _pairs(source.folder)
    pairs = [pairs[i] for i in part_indices(len(pairs), source.part, source.folder)]
    record = stretched(size, mean, std)
    images = np.empty((len(pairs), 3, *size), dtype=np.uint8)
    masks = np.empty((len(pairs), *size), dtype=np.uint8)
    for i, (image_path, mask_path) in enumerate(pairs):
        image, mask = open_image(image_path), _open_mask(mask_path)
        if mask.size != image.size:
            raise ShrinkError(f"{KIND}: mask {mask_path} is {mask.size[0]}x{mask.size[1]} but its image "
                              f"{image_path.name} is {image.size[0]}x{image.size[1]}")
        unknown = [c for c in _ids_in(mask) if c >= len(classes)]
        if unknown:
            raise ShrinkError(f"{KIND}: mask {mask_path} has class id {unknown[0]}, but there are {len(classes)} "
                              f"classes (0..{len(classes) - 1}; {IGNORE_INDEX} = ignore)")
        images[i] = record.pixels(image)
        # nearest keeps every pixel a class id; a P image's pixel values are its palette indices
        masks[i] = np.asarray(mask.resize((size[1], size[0]), Image.NEAREST), dtype=np.uint8)
    info = DataInfo(name=f"{KIND}:{root}", classes=classes, in_chans=3, image_size=size, mean=tuple(mean),
                    std=tuple(std), task="segmentation", preprocessing=record,
                    note=f"your segmentation masks from {root}, resized to {size[1]}x{size[0]} (masks nearest)")
    return TensorSplit(torch.from_numpy(images), torch.from_numpy(masks), info)
