"""The training loop shared by `shrink train` (from scratch) and fine-tuning after pruning.

Per epoch it checkpoints atomically; a rerun with the same run id resumes after the last
completed epoch. Batches are seeded by (seed, epoch) and the global RNG is reseeded every epoch,
so a resumed run replays exactly the epochs an uninterrupted one would have run.

Under torchrun the model is wrapped in DistributedDataParallel, each process draws its shard of
every epoch from a DistributedSampler, metrics are summed over processes, and only rank 0 writes.

The task (shrink.tasks.Task) picks the loss, the per-batch statistic and the validation metric
(shrink.recover.objectives, shrink.recover.evaluation): a segmenter trains on per-pixel
cross-entropy and is validated by mIoU, a detector on its own loss and mAP@[.5:.95]. For either,
`val_accuracy` holds that metric and best epochs are chosen by it.
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
from shrink.recover.evaluation import sharded_score
from shrink.recover.objectives import Criterion, as_float, batch_hits, hard_loss, label_smoothing_ce, model_task
from shrink.recover.optim import make_optimizer, make_scheduler
from shrink.recover.weight_average import WeightAverage, decay_for
from shrink.tasks import Task

__all__ = ["Criterion", "EpochStats", "FitResult", "fit", "label_smoothing_ce", "resolve_device"]


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float | None  # top-1 (classifier) or pixel accuracy (segmenter); None for a detector
    val_accuracy: float | None  # the task's metric in percent: top-1, mIoU or mAP@[.5:.95]
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
    metric: str = Task.CLASSIFICATION.metric  # what val_accuracy measures
    # with ema_epochs: the model ends with the averaged weights, and these are the last live ones
    last_weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def epochs_completed(self) -> int:
        return len(self.history)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "last_weights"}


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


@dataclass
class _Session:
    """What every epoch of one fit shares, built once before the first."""

    model: nn.Module
    config: TrainConfig
    task: Task
    ctx: DistContext
    device: str
    channels_last: bool
    batch_size: int  # this process's share of the global batch
    steps: int  # optimizer steps per epoch
    criterion: Criterion
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    average: WeightAverage | None
    run_id: str  # the caller's id and the config's fingerprint: what a checkpoint must match
    log: Callable[[str], None]
    show_progress: bool  # progress lines and bars, on the main process only
    net: nn.Module  # the model, or its DistributedDataParallel wrapper once training starts

    @property
    def scored(self) -> nn.Module:
        """With an average, it is what validation scores, early stopping keeps and the model ends with."""
        return self.average.model if self.average is not None else self.model


@dataclass
class _Progress:
    """What a checkpoint carries over from one run to the one that resumes it."""

    start_epoch: int = 0  # epochs completed before this call
    history: list[EpochStats] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None  # weights of the best validation epoch (early stopping)


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
    task: Task | None = None,
) -> FitResult:
    """Train `model` in place (the caller passes a copy if the original must stay).

    `criterion` may be an nn.Module (e.g. DistillLoss holding a teacher); it is moved to the
    training device; without one, the task's loss against the labels (objectives.hard_loss).
    `val_split` (held out of train, never the test set) feeds early stopping. `task`: what the
    model predicts (default: read from the model, objectives.model_task).
    """
    if config.early_stopping_patience is not None and val_split is None:
        raise ShrinkError("early stopping needs a validation split (hold one out of train)")
    task = task or model_task(model)
    session = _start(model, len(train_split), config, criterion, run_id, progress, task)
    state = _resume(session, checkpoint_dir) if checkpoint_dir is not None else _Progress()
    session.net = _parallel(session)  # after the resume: DDP broadcasts rank 0's weights as it wraps them
    t_start = time.perf_counter()
    for epoch in range(state.start_epoch, config.epochs):
        if _should_stop(state.history, config.early_stopping_patience):
            break
        stats = _run_epoch(session, train_split, val_split, epoch)
        _record_epoch(session, state, stats, t_start)
        if checkpoint_dir is not None and session.ctx.is_main:
            _save(session, state, checkpoint_dir)
    return _finish(session, state, t_start)


def _start(model: nn.Module, train_size: int, config: TrainConfig, criterion: Criterion | None, run_id: str,
           progress: bool, task: Task) -> _Session:
    """Seed, move the model and criterion to the device, and build the optimizer and schedule."""
    ctx = current_context()
    device = resolve_device(config.device, ctx)
    channels_last = device.startswith("cuda") and config.channels_last
    batch_size = per_process_batch(config.batch_size, ctx.world_size)
    torch.manual_seed(config.seed)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    criterion = criterion or hard_loss(task, model, config.label_smoothing)
    if isinstance(criterion, nn.Module):
        criterion.to(device)
        if channels_last:
            criterion.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    steps = _steps_per_epoch(train_size, batch_size, ctx.world_size)
    scheduler = make_scheduler(optimizer, config, steps)
    average = WeightAverage(model, decay_for(config.ema_epochs, steps)) if config.ema_epochs else None
    show_progress = progress and ctx.is_main
    return _Session(model=model, config=config, task=task, ctx=ctx, device=device, channels_last=channels_last,
                    batch_size=batch_size, steps=steps, criterion=criterion, optimizer=optimizer,
                    scheduler=scheduler, average=average, run_id=f"{run_id}:{config.fingerprint()}",
                    log=log_progress if show_progress else (lambda message: None), show_progress=show_progress,
                    net=model)


def _resume(session: _Session, checkpoint_dir: str | Path) -> _Progress:
    """Restore the model, optimizer, schedule and history from the last checkpoint of this run, if any."""
    saved = _resume_state(checkpoint_dir, session.run_id, session.ctx)
    if saved is None:
        return _Progress()
    session.model.load_state_dict(saved.model)
    session.optimizer.load_state_dict(saved.optimizer)
    session.scheduler.load_state_dict(saved.scheduler)
    if session.average is not None and saved.average is not None:
        session.average.load_state_dict(saved.average)
    session.log(f"resuming after epoch {saved.epoch}/{session.config.epochs} from {checkpoint_dir}")
    return _Progress(saved.epoch, [EpochStats(**h) for h in saved.history], saved.best_model)


def _parallel(session: _Session) -> nn.Module:
    """The model as training calls it: under torchrun, DDP all-reduces the gradients in backward."""
    if not session.ctx.distributed:
        return session.model
    on_cuda = session.device.startswith("cuda")
    return DistributedDataParallel(session.model, device_ids=[torch.device(session.device).index] if on_cuda else None)


def _run_epoch(session: _Session, train_split, val_split, epoch: int) -> EpochStats:
    """Train one epoch (0-based `epoch`), then score on the validation split when there is one."""
    config, ctx = session.config, session.ctx
    torch.manual_seed(config.seed * 1_000_003 + epoch * 1009 + ctx.rank)  # dropout etc. replay on resume
    session.net.train()
    if isinstance(session.criterion, nn.Module):
        session.criterion.train()
    t0 = time.perf_counter()
    loss_sum, correct, counted, seen = _train_batches(session, train_split, epoch, t0)
    loss_total, correct_total, counted_total, seen_total = all_reduce_sum([loss_sum, correct, counted, seen],
                                                                          session.device)
    train_acc = 100.0 * correct_total / max(counted_total, 1) if counted_total else None
    val_acc = (sharded_score(session.scored, val_split, device=session.device, task=session.task, ctx=ctx)
               if val_split is not None else None)
    seconds = time.perf_counter() - t0
    return EpochStats(epoch + 1, loss_total / max(seen_total, 1), train_acc,
                      val_acc, session.optimizer.param_groups[0]["lr"], seconds, seen_total / seconds)


def _train_batches(session: _Session, train_split, epoch: int, t0: float) -> tuple[float, int, int, int]:
    """One pass over this process's share of the training split: (loss sum, right, scored, images);
    right of scored is images for a classifier, pixels for a segmenter, and 0 of 0 for a detector."""
    config, ctx, device = session.config, session.ctx, session.device
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") and config.bf16
                else contextlib.nullcontext())
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    counted = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    options = BatchOptions(batch_size=session.batch_size, shuffle=True, augment=config.augment, seed=config.seed,
                           epoch=epoch, device=device, rank=ctx.rank, world_size=ctx.world_size)
    bar = tqdm(total=session.steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
               disable=not (session.show_progress and sys.stderr.isatty()))
    # Indices let distillation look up cached teacher logits; strict: a split that yields another
    # number of batches fails here, and the cache checks each batch's labels against its own.
    batches = zip(train_split.batches(options), batch_indices(len(train_split), options), strict=True)
    for i, ((x, y), indices) in enumerate(batches):
        if session.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            outputs = session.net(x)
            loss = session.criterion(as_float(outputs), y, x, indices)
        _step(session, loss)
        loss_sum += loss.detach() * len(y)
        hits = batch_hits(session.task, outputs, y)
        if hits is not None:
            correct += hits[0]
            counted += hits[1]
        seen += len(y)
        if i % 20 == 0 and not bar.disable:
            accuracy = {"acc": f"{100 * correct.item() / counted.item():.1f}%"} if hits is not None else {}
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", **accuracy,
                            img_s=f"{seen * ctx.world_size / (time.perf_counter() - t0):.0f}")
        bar.update(1)
    bar.close()
    return loss_sum.item(), correct.item(), counted.item(), seen


def _step(session: _Session, loss: torch.Tensor) -> None:
    """One optimizer step on `loss`, the schedule's step, and the average's."""
    session.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if session.config.grad_clip is not None:
        nn.utils.clip_grad_norm_(session.model.parameters(), session.config.grad_clip)
    session.optimizer.step()
    session.scheduler.step()
    if session.average is not None:
        session.average.update(session.model)


def _record_epoch(session: _Session, state: _Progress, stats: EpochStats, t_start: float) -> None:
    """Add the epoch to the history, keep the weights of a new best one, and log it."""
    config = session.config
    state.history.append(stats)
    if config.early_stopping_patience is not None and _best_epoch(state.history) == stats.epoch:
        state.best_state = _cpu_state(session.scored)
    eta = (time.perf_counter() - t_start) / (stats.epoch - state.start_epoch) * (config.epochs - stats.epoch)
    session.log(f"epoch {stats.epoch}/{config.epochs}  loss {stats.train_loss:.4f}{_scores_text(session.task, stats)}"
                f"  lr {stats.lr:.2e}  {stats.seconds:.1f}s  {stats.images_per_second:.0f} img/s  eta {eta:.0f}s")


def _scores_text(task: Task, stats: EpochStats) -> str:
    """'  train 97.10%  val 96.50%' for a classifier; the segmenter's train figure is pixel accuracy,
    and a dense model's validation figure is named (mIoU, mAP@[.5:.95])."""
    if task is Task.CLASSIFICATION:
        val = f"  val {stats.val_accuracy:.2f}%" if stats.val_accuracy is not None else ""
        return f"  train {stats.train_accuracy:.2f}%{val}"
    train = f"  train pixel accuracy {stats.train_accuracy:.2f}%" if stats.train_accuracy is not None else ""
    val = f"  val {task.metric} {stats.val_accuracy:.2f}%" if stats.val_accuracy is not None else ""
    return train + val


def _save(session: _Session, state: _Progress, checkpoint_dir: str | Path) -> None:
    average = session.average
    save_checkpoint(checkpoint_dir, TrainingState(
        model=_cpu_state(session.model), optimizer=session.optimizer.state_dict(),
        scheduler=session.scheduler.state_dict(), epoch=state.history[-1].epoch, run_id=session.run_id,
        history=[asdict(h) for h in state.history], best_model=state.best_state,
        average=average.state_dict() if average is not None else None))


def _finish(session: _Session, state: _Progress, t_start: float) -> FitResult:
    """End with the averaged or the best weights where the config asks for them, in the default memory format."""
    config, model, history = session.config, session.model, state.history
    stopped = _should_stop(history, config.early_stopping_patience) and len(history) < config.epochs
    if stopped:
        session.log(f"early stop: no better validation accuracy for {config.early_stopping_patience} epochs")
    best_epoch = _best_epoch(history)
    last_weights = None
    if session.average is not None:
        last_weights = _cpu_state(model)
        model.load_state_dict(session.average.model.state_dict())
    if config.early_stopping_patience is not None and config.restore_best and state.best_state is not None:
        model.load_state_dict(state.best_state)
        if best_epoch != len(history):
            session.log(f"restored the weights of epoch {best_epoch} (best validation accuracy)")
    model.to(memory_format=torch.contiguous_format)
    return FitResult(epochs_run=len(history) - state.start_epoch, resumed_from_epoch=state.start_epoch,
                     history=history, seconds=time.perf_counter() - t_start, best_epoch=best_epoch,
                     stopped_early=stopped, world_size=session.ctx.world_size, metric=session.task.metric,
                     last_weights=last_weights)


def log_progress(message: str) -> None:
    """A progress line on stderr (stdout stays for results)."""
    print(message, file=sys.stderr, flush=True)
