"""The training loop shared by `shrink train` (from scratch) and fine-tuning after pruning.

Per epoch it checkpoints atomically; a rerun with the same run id resumes after the last
completed epoch. Batches are seeded by (seed, epoch) and the global RNG is reseeded every epoch,
so a resumed run replays exactly the epochs an uninterrupted one would have run.

Under torchrun the model is wrapped in DistributedDataParallel, each process draws its shard of
every epoch from a DistributedSampler, metrics are summed over processes, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from shrink.data import BatchOptions, batch_indices
from shrink.errors import ShrinkError
from shrink.recover.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from shrink.recover.config import TrainConfig
from shrink.recover.distributed import (
    DistContext,
    all_reduce_sum,
    broadcast_from_main,
    current_context,
    resolve_device,
)
from shrink.recover.evaluation import sharded_accuracy
from shrink.recover.optim import make_optimizer, make_scheduler
from shrink.recover.weight_average import WeightAverage, decay_for

# (logits, labels, inputs, dataset indices of the batch) -> scalar loss; distillation plugs in here
Criterion = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["Criterion", "EpochStats", "FitResult", "fit", "label_smoothing_ce", "resolve_device"]


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float | None
    lr: float
    seconds: float
    images_per_second: float


@dataclass
class FitResult:
    epochs_run: int  # by this call (a resumed run counts only the epochs it ran itself)
    resumed_from_epoch: int
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int | None = None  # by validation accuracy, when there is a validation split
    stopped_early: bool = False
    world_size: int = 1
    # with ema_epochs: the model ends with the averaged weights, and these are the last live ones
    last_weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def epochs_completed(self) -> int:
        return len(self.history)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "last_weights"}


def label_smoothing_ce(label_smoothing: float) -> Criterion:
    def criterion(logits, labels, inputs, indices):
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    return criterion


def per_process_batch(batch_size: int, world_size: int) -> int:
    """The global batch splits evenly over the processes, so N processes take the same optimizer
    steps with the same learning rate as one."""
    if batch_size % world_size:
        raise ShrinkError(f"batch size {batch_size} does not split over {world_size} processes; "
                          f"use a multiple of {world_size}")
    return batch_size // world_size


def _steps_per_epoch(n: int, batch_size: int, world_size: int) -> int:
    per_rank = -(-n // world_size)
    return -(-per_rank // batch_size)


def _best_epoch(history: list[EpochStats]) -> int | None:
    scored = [h for h in history if h.val_accuracy is not None]
    if not scored:
        return None
    return max(scored, key=lambda h: (h.val_accuracy, -h.epoch)).epoch  # earliest of equal bests


def _should_stop(history: list[EpochStats], patience: int | None) -> bool:
    best = _best_epoch(history)
    return patience is not None and best is not None and history[-1].epoch - best >= patience


def _resume_state(checkpoint_dir, run_id: str, ctx: DistContext) -> TrainingState | None:
    """rank 0 reads the checkpoint and hands it to the others, so a multi-node run needs no shared
    disk; a refusal (another run's checkpoint) reaches every process as the same error."""
    state, error = None, None
    if ctx.is_main:
        try:
            state = load_checkpoint(checkpoint_dir, run_id)
        except ShrinkError as exc:
            error = str(exc)
    if ctx.distributed:
        state, error = broadcast_from_main((state, error))
    if error is not None:
        raise ShrinkError(error)
    return state


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def fit(
    model: nn.Module,
    train_split,
    config: TrainConfig,
    *,
    val_split=None,
    criterion: Criterion | None = None,
    checkpoint_dir: str | Path | None = None,
    run_id: str = "",
    progress: bool = True,
) -> FitResult:
    """Train `model` in place (the caller passes a copy if the original must stay).

    `criterion` may be an nn.Module (e.g. DistillLoss holding a teacher); it is moved to the
    training device. `val_split` (held out of train, never the test set) feeds early stopping.
    """
    ctx = current_context()
    device = resolve_device(config.device, ctx)
    on_cuda = device.startswith("cuda")
    channels_last = on_cuda and config.channels_last
    if config.early_stopping_patience is not None and val_split is None:
        raise ShrinkError("early stopping needs a validation split (hold one out of train)")
    batch_size = per_process_batch(config.batch_size, ctx.world_size)
    torch.manual_seed(config.seed)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    criterion = criterion or label_smoothing_ce(config.label_smoothing)
    if isinstance(criterion, nn.Module):
        criterion.to(device)
        if channels_last:
            criterion.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    steps = _steps_per_epoch(len(train_split), batch_size, ctx.world_size)
    scheduler = make_scheduler(optimizer, config, steps)
    run_id = f"{run_id}:{config.fingerprint()}"
    log = log_progress if (progress and ctx.is_main) else (lambda message: None)
    # With an average, it is what validation scores, early stopping keeps and the model ends with.
    average = WeightAverage(model, decay_for(config.ema_epochs, steps)) if config.ema_epochs else None
    scored = average.model if average is not None else model

    start_epoch, history, best_state = 0, [], None
    if checkpoint_dir is not None:
        state = _resume_state(checkpoint_dir, run_id, ctx)
        if state is not None:
            model.load_state_dict(state.model)
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            start_epoch, history = state.epoch, [EpochStats(**h) for h in state.history]
            best_state = state.best_model
            if average is not None and state.average is not None:
                average.load_state_dict(state.average)
            log(f"resuming after epoch {start_epoch}/{config.epochs} from {checkpoint_dir}")

    net = model
    if ctx.distributed:
        # DDP broadcasts rank 0's weights at construction and all-reduces gradients in backward.
        net = DistributedDataParallel(model, device_ids=[torch.device(device).index] if on_cuda else None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and config.bf16 else contextlib.nullcontext()
    t_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        if _should_stop(history, config.early_stopping_patience):
            break
        torch.manual_seed(config.seed * 1_000_003 + epoch * 1009 + ctx.rank)  # dropout etc. replay on resume
        net.train()
        if isinstance(criterion, nn.Module):
            criterion.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        options = BatchOptions(batch_size=batch_size, shuffle=True, augment=config.augment, seed=config.seed,
                               epoch=epoch, device=device, rank=ctx.rank, world_size=ctx.world_size)
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=not (progress and ctx.is_main and sys.stderr.isatty()))
        # Indices let distillation look up cached teacher logits; strict: a split that yields another
        # number of batches fails here, and the cache checks each batch's labels against its own.
        batches = zip(train_split.batches(options), batch_indices(len(train_split), options), strict=True)
        for i, ((x, y), indices) in enumerate(batches):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = net(x)
                loss = criterion(logits.float(), y, x, indices)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update(model)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if i % 20 == 0 and not bar.disable:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{100 * correct.item() / seen:.1f}%",
                                img_s=f"{seen * ctx.world_size / (time.perf_counter() - t0):.0f}")
            bar.update(1)
        bar.close()
        loss_total, correct_total, seen_total = all_reduce_sum([loss_sum.item(), correct.item(), seen], device)
        val_acc = sharded_accuracy(scored, val_split, device=device, ctx=ctx) if val_split is not None else None
        seconds = time.perf_counter() - t0
        stats = EpochStats(epoch + 1, loss_total / max(seen_total, 1), 100.0 * correct_total / max(seen_total, 1),
                           val_acc, optimizer.param_groups[0]["lr"], seconds, seen_total / seconds)
        history.append(stats)
        if config.early_stopping_patience is not None and _best_epoch(history) == stats.epoch:
            best_state = _cpu_state(scored)
        eta = (time.perf_counter() - t_start) / (epoch + 1 - start_epoch) * (config.epochs - epoch - 1)
        val_text = f"  val {val_acc:.2f}%" if val_acc is not None else ""
        log(f"epoch {stats.epoch}/{config.epochs}  loss {stats.train_loss:.4f}  train {stats.train_accuracy:.2f}%"
            f"{val_text}  lr {stats.lr:.2e}  {seconds:.1f}s  {stats.images_per_second:.0f} img/s  eta {eta:.0f}s")
        if checkpoint_dir is not None and ctx.is_main:
            save_checkpoint(checkpoint_dir, TrainingState(
                model=_cpu_state(model), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                epoch=epoch + 1, run_id=run_id, history=[asdict(h) for h in history], best_model=best_state,
                average=average.state_dict() if average is not None else None))
    stopped = _should_stop(history, config.early_stopping_patience) and len(history) < config.epochs
    if stopped:
        log(f"early stop: no better validation accuracy for {config.early_stopping_patience} epochs")
    best_epoch = _best_epoch(history)
    last_weights = None
    if average is not None:
        last_weights = _cpu_state(model)
        model.load_state_dict(average.model.state_dict())
    if config.early_stopping_patience is not None and config.restore_best and best_state is not None:
        model.load_state_dict(best_state)
        if best_epoch != len(history):
            log(f"restored the weights of epoch {best_epoch} (best validation accuracy)")
    model.to(memory_format=torch.contiguous_format)
    return FitResult(epochs_run=len(history) - start_epoch, resumed_from_epoch=start_epoch, history=history,
                     seconds=time.perf_counter() - t_start, best_epoch=best_epoch, stopped_early=stopped,
                     world_size=ctx.world_size, last_weights=last_weights)


def log_progress(message: str) -> None:
    """A progress line on stderr (stdout stays for results)."""
    print(message, file=sys.stderr, flush=True)
