"""Reading a whole split the way training does, for tests of splits that stay on disk."""

import torch

from shrink.data import BatchOptions


def read_all(split) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (input, target) of a split, read batch by batch from disk."""
    xs, ys = zip(*split.batches(BatchOptions(batch_size=64)))
    return torch.cat(xs), torch.cat(ys)
