"""scikit-learn's bundled 8x8 digits (1797 images), with a fixed-seed 80/20 train/test split."""

from __future__ import annotations

import torch

from shrink.data.splits import DataInfo, TensorSplit
from shrink.errors import ShrinkError

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load_digits_split(split: str) -> TensorSplit:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ShrinkError("the digits dataset needs scikit-learn: pip install 'torch-shrink[sklearn]'") from exc
    if split not in ("train", "test"):
        raise ShrinkError(f"digits has splits ['test', 'train'], not {split!r}")
    bunch = load_digits()
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype("uint8")).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype("int64"))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = int(len(images) * TEST_FRACTION)
    idx = order[:n_test] if split == "test" else order[n_test:]
    mean = float(images[order[n_test:]].float().mean() / 255.0)
    std = float(images[order[n_test:]].float().std() / 255.0)
    info = DataInfo(
        name="digits", classes=tuple(str(d) for d in range(10)), in_chans=1, image_size=(8, 8), mean=(mean,), std=(std,)
    )
    return TensorSplit(images[idx], labels[idx], info)
