"""Calibration batches for post-training quantization: N real training images, fixed seed, and
onnxruntime's reader over them.

Random calibration data makes int8 ranges meaningless; `calibration_batches` refuses a synthetic
split unless the caller forces it, and the caller must then flag that in its report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from onnxruntime.quantization import CalibrationDataReader

from shrink.data.splits import BatchOptions
from shrink.errors import ShrinkError, ShrinkValueError

DEFAULT_CALIBRATION_IMAGES = 512


@dataclass(frozen=True)
class CalibrationConfig:
    num_images: int = DEFAULT_CALIBRATION_IMAGES
    batch_size: int = 32
    seed: int = 0
    allow_synthetic: bool = False

    def __post_init__(self) -> None:
        if self.num_images < 1 or self.batch_size < 1:
            raise ShrinkValueError("calibration needs num_images >= 1 and batch_size >= 1")


def calibration_batches(split, config: CalibrationConfig = CalibrationConfig()) -> list[np.ndarray]:
    """Up to `num_images` images from `split` (normalized, float32), drawn with a fixed seed."""
    if split.info.synthetic and not config.allow_synthetic:
        raise ShrinkError("refusing to calibrate on synthetic (random) data; use real training images, or force it")
    n = min(config.num_images, len(split))
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(config.seed))[:n]
    subset = split.subset(order)
    out = []
    for x, _ in subset.batches(BatchOptions(batch_size=config.batch_size)):
        out.append(x.numpy().astype(np.float32))
    return out


class CalibrationReader(CalibrationDataReader):
    """onnxruntime's CalibrationDataReader over prepared batches; `rewind` allows several passes."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        super().__init__()
        self.input_name, self.batches, self._pos = input_name, batches, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._pos >= len(self.batches):
            return None
        self._pos += 1
        return {self.input_name: self.batches[self._pos - 1]}

    def rewind(self) -> None:
        self._pos = 0

    def __len__(self) -> int:
        return len(self.batches)
