"""Datasets by name: fmnist | digits | imagefolder:DIR | synthetic[:CxHxW], and for segmentation and
detection fmnist-seg | fmnist-det (composed from Fashion-MNIST) | segfolder:DIR | coco:DIR.

The names below load their module on first use, so importing one light module of this package (the
preprocessing record, an ONNX file's contract) does not import torch or onnxruntime: a bench worker
process that reads a file's declared input shape starts in a second, not in seven.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.errors import ShrinkError

if TYPE_CHECKING:
    from shrink.data.preprocessing import Preprocessing
    from shrink.data.splits import ImageSplit

_LAZY = {
    "Preprocessing": "shrink.data.preprocessing",
    "BatchOptions": "shrink.data.splits",
    "DataInfo": "shrink.data.splits",
    "ImageSplit": "shrink.data.splits",
    "LoaderSplit": "shrink.data.splits",
    "TensorSplit": "shrink.data.splits",
    "batch_indices": "shrink.data.splits",
    "train_val_split": "shrink.data.splits",
    "targets_to_list": "shrink.data.targets",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shrink.data' has no attribute {name!r}")


DATASETS = ("fmnist", "digits", "imagefolder:DIR", "synthetic[:CxHxW]", "fmnist-seg", "fmnist-det", "segfolder:DIR",
            "coco:DIR")
SCENE_TASKS = {"fmnist-seg": "segmentation", "fmnist-det": "detection"}


def load_data(
    name: str,
    split: str,
    *,
    data_dir: str | Path | None = None,
    folder_options=None,
    synthetic_shape: tuple[int, int, int] | None = None,
    num_classes: int = 10,
    preprocessing: Preprocessing | None = None,
    scenes: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> ImageSplit:
    """One split of a named dataset. `synthetic_shape` sets the shape of `synthetic` when the name
    does not (usually the model's input shape). `preprocessing`, the record a shipped file carries,
    makes the images read exactly as it says (shrink.data.contract). `scenes`: how many scenes
    fmnist-seg/fmnist-det compose (default shrink.data.scenes.SCENES); `image_size`: the (H, W)
    segfolder/coco images are resized to (default 128x128)."""
    if name.startswith(("segfolder:", "coco:")):  # files, read through the record when one is given
        from shrink.data.coco import load_coco
        from shrink.data.segfolder import load_segfolder
        from shrink.data.userfiles import DEFAULT_SIZE

        kind, root = name.split(":", 1)
        load = load_segfolder if kind == "segfolder" else load_coco
        return load(root, split, image_size or DEFAULT_SIZE, record=preprocessing)
    if name in SCENE_TASKS:
        from shrink.data.scenes import load_scenes

        data = load_scenes(SCENE_TASKS[name], split, data_dir, scenes)
        if preprocessing is None:
            return data
        from shrink.data.contract import with_contract

        return with_contract(data, preprocessing, name)
    if name in ("fmnist", "digits"):
        if name == "fmnist":
            from shrink.data.fmnist import load_fmnist

            data = load_fmnist(split, data_dir)
        else:
            from shrink.data.digits import load_digits_split

            data = load_digits_split(split)
        if preprocessing is None:
            return data
        from shrink.data.contract import with_contract

        return with_contract(data, preprocessing, name)
    if name.startswith("imagefolder:"):
        from shrink.data.imagefolder import FolderOptions, load_imagefolder

        return load_imagefolder(name.split(":", 1)[1], split, folder_options or FolderOptions(), record=preprocessing)
    if name == "synthetic" or name.startswith("synthetic:"):
        from shrink.data.synthetic import load_synthetic, parse_shape

        shape = parse_shape(name.split(":", 1)[1]) if ":" in name else synthetic_shape
        if shape is None:
            raise ShrinkError("synthetic data needs a shape: synthetic:CxHxW")
        return load_synthetic(shape, num_classes=num_classes)
    raise ShrinkError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


__all__ = [
    "BatchOptions",
    "DATASETS",
    "DataInfo",
    "ImageSplit",
    "LoaderSplit",
    "Preprocessing",
    "TensorSplit",
    "batch_indices",
    "load_data",
    "targets_to_list",
    "train_val_split",
]
