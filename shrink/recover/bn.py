"""BatchNorm recalibration: re-estimate the running statistics of a pruned model without labels.

Pruning removes channels that fed the kept ones, so the stored BN means and variances describe
activations that no longer exist; that alone drops a pruned network to chance. Recomputing them
on a few unlabeled training batches needs no gradients and changes nothing else.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn

from shrink.data import BatchOptions

BN_TYPES = (nn.modules.batchnorm._BatchNorm,)  # BatchNorm1d/2d/3d and SyncBatchNorm


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]


@contextlib.contextmanager
def fresh_bn_statistics(model: nn.Module) -> Iterator[list[nn.modules.batchnorm._BatchNorm]]:
    """Within the block, every forward pass adds to freshly reset BatchNorm running statistics;
    yields the norms (an empty list when the model has none).

    Only the norm layers are put in train mode, so dropout and auxiliary heads stay as in inference,
    and each statistic becomes the plain average over the batches (momentum=None), not a decayed
    one. On leaving, the momenta and the model's train/eval mode are as they were.
    """
    norms = batch_norms(model)
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    try:
        yield norms
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    split,
    *,
    max_images: int = 2000,
    batch_size: int = 200,
    device: str = "cpu",
    seed: int = 0,
) -> int:
    """Reset and re-estimate every BatchNorm's running stats from at most `max_images` training
    images, in place (see fresh_bn_statistics). Returns the number of images used (0 when the
    model has no BatchNorm)."""
    if not batch_norms(model):
        return 0
    model.to(device)
    seen = 0
    with fresh_bn_statistics(model):
        # Shuffled, so a class-sorted dataset still gives representative statistics; no augmentation.
        options = BatchOptions(batch_size=min(batch_size, max_images), shuffle=True, seed=seed, device=device)
        for x, _ in split.batches(options):
            x = x[: max_images - seen]
            if len(x) < 2 and seen > 0:  # a 1-image batch has no variance to contribute
                break
            model(x)
            seen += len(x)
            if seen >= max_images:
                break
    return seen
