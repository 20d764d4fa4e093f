"""Random inputs of a given shape, for latency-only runs. Every split says synthetic=True, and every
output that used one must say so: accuracy on it means nothing."""

from __future__ import annotations

import torch

from shrink.data.splits import DataInfo, TensorSplit
from shrink.errors import ShrinkError

DEFAULT_SAMPLES = 256


def parse_shape(text: str) -> tuple[int, int, int]:
    """'3x224x224' -> (3, 224, 224)."""
    try:
        c, h, w = (int(p) for p in text.lower().split("x"))
    except ValueError as exc:
        raise ShrinkError(f"synthetic shape must look like 3x224x224, got {text!r}") from exc
    if min(c, h, w) < 1:
        raise ShrinkError(f"synthetic shape must be positive, got {text!r}")
    return c, h, w


def load_synthetic(shape: tuple[int, int, int], num_classes: int = 10, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> TensorSplit:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (samples, *shape), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (samples,), generator=gen)
    c = shape[0]
    info = DataInfo(
        name=f"synthetic:{'x'.join(map(str, shape))}",
        classes=tuple(f"class{i}" for i in range(num_classes)),
        in_chans=c,
        image_size=(shape[1], shape[2]),
        mean=(0.5,) * c,
        std=(0.25,) * c,
        synthetic=True,
    )
    return TensorSplit(images, labels, info)
