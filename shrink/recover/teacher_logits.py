"""Teacher logits computed once per recovery, when every epoch would show the teacher the same images.

Without augmentation the teacher's output for an image never changes, yet distillation runs the
teacher on every batch of every epoch. For a dense teacher and a heavily pruned student that
forward pass is most of the work, so one pass over the training split up front, replacing
`epochs` passes, makes distillation several times cheaper (benchmarks/kd_teacher_cache.py). The training loop then hands the criterion each batch's dataset
indices (`shrink.data.batch_indices`); the stored labels must match the batch's, so a batch that
does not line up with the cache is an error, never a silent wrong target.

The logits match the live teacher's up to float rounding (a different batch composition, and bf16
under autocast on CUDA as in training).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn
from tqdm import tqdm

from shrink.data import BatchOptions
from shrink.errors import ShrinkError
from shrink.recover.config import DistillConfig, TrainConfig
from shrink.tasks import Task

MAX_CACHE_BYTES = 512 * 2**20  # float32 logits of every training image; above this the teacher runs live
CACHE_BATCH_SIZE = 512


@dataclass(frozen=True)
class TeacherLogits:
    """Row i: the teacher's logits for image i of the training split, and that image's label."""

    logits: torch.Tensor  # (N, classes) float32, on the training device
    labels: torch.Tensor  # (N,) int64, on the training device

    def lookup(self, indices: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        indices = indices.to(self.logits.device)
        if not torch.equal(self.labels[indices], labels.to(self.labels.device)):
            raise ShrinkError("cached teacher logits do not line up with the training batch (its labels differ); "
                              "rerun with --no-teacher-cache and report this")
        return self.logits[indices]


def why_not_cache(distill: DistillConfig, train: TrainConfig, images: int, classes: int, world_size: int,
                  task: Task = Task.CLASSIFICATION) -> str | None:
    """None when caching pays and is exact; otherwise the reason the teacher runs live."""
    if task is not Task.CLASSIFICATION:
        return f"a {task.value} teacher's outputs are per pixel or per anchor, too many to keep for every image"
    if train.augment:
        return "augmentation shows the teacher different inputs every epoch"
    if distill.feature_weight > 0:
        return "feature distillation needs the teacher's inner activations on every batch"
    if train.epochs <= world_size:
        # Each process computes the whole split once; live, it sees epochs / world_size of it.
        return f"{train.epochs} epoch(s) over {world_size} process(es): one up-front pass would cost as much"
    if images * classes * 4 > MAX_CACHE_BYTES:
        return f"{images:,} x {classes} logits exceed the {MAX_CACHE_BYTES // 2**20} MiB cache budget"
    return None


def compute_teacher_logits(teacher: nn.Module, split, *, device: str, bf16: bool, progress: bool) -> TeacherLogits:
    """One pass of the (eval-mode) teacher over `split` in dataset order."""
    on_cuda = device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and bf16 else contextlib.nullcontext()
    was_training = teacher.training
    teacher.eval()
    logits, labels = [], []
    bar = tqdm(total=len(split), desc="teacher logits (once)", unit="img", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    try:
        with torch.no_grad(), autocast:
            for x, y in split.batches(BatchOptions(batch_size=CACHE_BATCH_SIZE, device=device)):
                logits.append(teacher(x).float())
                labels.append(y)
                bar.update(len(y))
    finally:
        bar.close()
        teacher.train(was_training)
    return TeacherLogits(torch.cat(logits), torch.cat(labels))
