"""The task metric during training: top-1 sharded over the torchrun processes and summed exactly;
mIoU and mAP on the whole split (see sharded_score).

Each process scores its DistributedSampler shard. The sampler pads the last round with repeats of
the first images so every shard has the same length; those repeats sit at the end of a shard and
are cut off here, so the summed count is over each image exactly once.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from shrink.data import BatchOptions
from shrink.data.fits import check_fits
from shrink.metrics.scoring import as_outputs, scorer_for
from shrink.recover.distributed import DistContext, all_reduce_sum, broadcast_from_main, current_context
from shrink.tasks import Task


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


DENSE_BATCH_SIZE = 64  # per-pixel logits of 64 images at 128x128 and 11 classes: ~46 MB


@torch.no_grad()
def sharded_score(model: nn.Module, split, *, device: str, task: Task = Task.CLASSIFICATION,
                  batch_size: int | None = None, ctx: DistContext | None = None) -> float:
    """Percent of `task`'s headline metric (top-1, mIoU, mAP@[.5:.95]) of `model` on the whole of
    `split`, the same number on every process.

    A classifier's top-1 is a sum, so each process scores its shard (sharded_accuracy). mIoU and
    mAP are not sums of per-image numbers, so under torchrun every process scores the whole split
    (no faster than one, but exact) and rank 0's number is broadcast: BN running statistics may
    differ in the last bits between processes, and every process must take the same decisions."""
    if task is Task.CLASSIFICATION:
        return sharded_accuracy(model, split, device=device, batch_size=batch_size or 512, ctx=ctx)
    ctx = ctx or current_context()
    check_fits(split.info, task=task)
    scorer = scorer_for(task, num_classes=split.info.num_classes, decode=getattr(model, "decode", None))
    names = getattr(model, "output_names", None) or ()
    was_training = model.training
    model.eval()
    try:
        for i, (x, y) in enumerate(split.batches(BatchOptions(batch_size=batch_size or DENSE_BATCH_SIZE,
                                                              device=device))):
            outputs = [o.float() for o in as_outputs(model(x))]
            if i == 0:
                named = dict(zip(names, outputs))
                classes = named["cls_logits"].shape[-1] if task is Task.DETECTION else outputs[0].shape[1]
                check_fits(split.info, num_outputs=int(classes))
            scorer.update(outputs, y)
    finally:
        model.train(was_training)
    value = scorer.result().value
    return broadcast_from_main(value) if ctx.distributed else value
