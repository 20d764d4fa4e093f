"""Top-1 accuracy during training, sharded over the torchrun processes and summed exactly.

Each process scores its DistributedSampler shard. The sampler pads the last round with repeats of
the first images so every shard has the same length; those repeats sit at the end of a shard and
are cut off here, so the summed count is over each image exactly once.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from shrink.data import BatchOptions
from shrink.data.fits import check_fits
from shrink.recover.distributed import DistContext, all_reduce_sum, current_context


@torch.no_grad()
def sharded_accuracy(model: nn.Module, split, *, device: str, batch_size: int = 512,
                     ctx: DistContext | None = None) -> float:
    """Percent top-1 of `model` on the whole of `split`, the same number on every process."""
    ctx = ctx or current_context()
    mine = len(range(ctx.rank, len(split), ctx.world_size))  # this shard's real (unpadded) images
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        options = BatchOptions(batch_size=batch_size, device=device, rank=ctx.rank, world_size=ctx.world_size)
        for x, y in split.batches(options):
            keep = mine - total
            if keep <= 0:
                break
            x, y = x[:keep], y[:keep]
            logits = model(x)
            check_fits(split.info, num_outputs=logits.shape[1])
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    correct_all, total_all = all_reduce_sum([correct, total], device)
    return 100.0 * correct_all / max(total_all, 1)
