"""BatchNorm recalibration: re-estimate the running statistics of a pruned model without labels.

Pruning removes channels that fed the kept ones, so the stored BN means and variances describe
activations that no longer exist; that alone drops a pruned network to chance. Recomputing them
on a few unlabeled training batches needs no gradients and changes nothing else.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from shrink.data import BatchOptions

BN_TYPES = (nn.modules.batchnorm._BatchNorm,)  # BatchNorm1d/2d/3d and SyncBatchNorm


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]


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
    images, in place. Returns the number of images used (0 when the model has no BatchNorm).

    Only the norm layers are put in train mode, so dropout and the like stay off, and each
    statistic becomes the plain average over the batches (momentum=None), not a decayed one.
    """
    norms = batch_norms(model)
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.to(device).eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    seen = 0
    try:
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
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return seen
