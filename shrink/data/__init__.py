"""Datasets by name: fmnist | digits | imagefolder:DIR | synthetic[:CxHxW]."""

from __future__ import annotations

from pathlib import Path

from shrink.data.preprocessing import Preprocessing
from shrink.data.calibration import CalibrationConfig, CalibrationReader, calibration_batches
from shrink.data.splits import (
    BatchOptions,
    DataInfo,
    ImageSplit,
    LoaderSplit,
    TensorSplit,
    batch_indices,
    train_val_split,
)
from shrink.errors import ShrinkError

DATASETS = ("fmnist", "digits", "imagefolder:DIR", "synthetic[:CxHxW]")


def load_data(
    name: str,
    split: str,
    *,
    data_dir: str | Path | None = None,
    folder_options=None,
    synthetic_shape: tuple[int, int, int] | None = None,
    num_classes: int = 10,
    preprocessing: Preprocessing | None = None,
) -> ImageSplit:
    """One split of a named dataset. `synthetic_shape` sets the shape of `synthetic` when the name
    does not (usually the model's input shape). `preprocessing`, the record a shipped file carries,
    makes the images read exactly as it says (shrink.data.contract)."""
    if preprocessing is not None and not (name == "synthetic" or name.startswith("synthetic:")):
        from shrink.data.contract import load_by_contract

        return load_by_contract(name, split, preprocessing, data_dir=data_dir, folder_options=folder_options)
    if name == "fmnist":
        from shrink.data.fmnist import load_fmnist

        return load_fmnist(split, data_dir)
    if name == "digits":
        from shrink.data.digits import load_digits_split

        return load_digits_split(split)
    if name.startswith("imagefolder:"):
        from shrink.data.imagefolder import FolderOptions, load_imagefolder

        return load_imagefolder(name.split(":", 1)[1], split, folder_options or FolderOptions())
    if name == "synthetic" or name.startswith("synthetic:"):
        from shrink.data.synthetic import load_synthetic, parse_shape

        shape = parse_shape(name.split(":", 1)[1]) if ":" in name else synthetic_shape
        if shape is None:
            raise ShrinkError("synthetic data needs a shape: synthetic:CxHxW")
        return load_synthetic(shape, num_classes=num_classes)
    raise ShrinkError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


__all__ = [
    "BatchOptions",
    "CalibrationConfig",
    "CalibrationReader",
    "DATASETS",
    "DataInfo",
    "ImageSplit",
    "LoaderSplit",
    "Preprocessing",
    "TensorSplit",
    "batch_indices",
    "calibration_batches",
    "load_data",
    "train_val_split",
]
