"""batch_indices says exactly which images each batch of either split kind holds (the training
loop relies on it to look up cached teacher logits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from shrink.data import BatchOptions, batch_indices, load_data
from shrink.data.imagefolder import FolderOptions

OPTIONS = [
    BatchOptions(batch_size=64),
    BatchOptions(batch_size=64, shuffle=True, seed=2, epoch=3),
    BatchOptions(batch_size=50, shuffle=True, drop_last=True),
    BatchOptions(batch_size=32, shuffle=True, seed=1, rank=1, world_size=2),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_tensor_split_batches_follow_batch_indices(options):
    split = load_data("digits", "train").subset(torch.arange(300))
    batches = list(split.batches(options))
    indices = batch_indices(len(split), options)
    assert len(batches) == len(indices)
    for (x, y), idx in zip(batches, indices):
        assert torch.equal(y, split.labels[idx])
        assert torch.equal(x, (split.images[idx].float() / 255 - split.info.mean[0]) / split.info.std[0])
    if options.drop_last:
        assert all(len(i) == options.batch_size for i in indices)


def test_loader_split_batches_follow_batch_indices(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "train" / cls / f"{i}.png")
    split = load_data(f"imagefolder:{tmp_path}", "train", folder_options=FolderOptions(image_size=8, num_workers=0))
    options = BatchOptions(batch_size=4, shuffle=True, seed=5)
    labels = torch.tensor([split.dataset[i][1] for i in range(len(split))])
    pixels = torch.stack([split.dataset[i][0] for i in range(len(split))])
    batches = list(split.batches(options))
    indices = batch_indices(len(split), options)
    assert len(batches) == len(indices) == 4
    for (x, y), idx in zip(batches, indices):
        assert torch.equal(y, labels[idx]) and torch.equal(x, pixels[idx])
