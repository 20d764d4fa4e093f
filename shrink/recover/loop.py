"""The training loop shared by `shrink train` (from scratch) and fine-tuning after pruning.

Per epoch it checkpoints atomically; a rerun with the same run id resumes after the last
completed epoch, and because batches are seeded by (seed, epoch) it replays the same data order.
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
from tqdm import tqdm

from shrink.data import BatchOptions
from shrink.evaluate import evaluate_torch
from shrink.recover.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from shrink.recover.config import TrainConfig
from shrink.recover.optim import make_optimizer, make_scheduler

# (logits, labels, inputs) -> scalar loss; distillation plugs in here
Criterion = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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
    epochs_run: int
    resumed_from_epoch: int
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def label_smoothing_ce(label_smoothing: float) -> Criterion:
    def criterion(logits, labels, inputs):
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    return criterion


def _steps_per_epoch(n: int, batch_size: int, world_size: int) -> int:
    per_rank = -(-n // world_size)
    return -(-per_rank // batch_size)


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
    """Train `model` in place (the caller passes a copy if the original must stay)."""
    device = resolve_device(config.device)
    on_cuda = device.startswith("cuda")
    torch.manual_seed(config.seed)
    model.to(device)
    if on_cuda and config.channels_last:
        model.to(memory_format=torch.channels_last)
    criterion = criterion or label_smoothing_ce(config.label_smoothing)
    optimizer = make_optimizer(model, config)
    steps = _steps_per_epoch(len(train_split), config.batch_size, 1)
    scheduler = make_scheduler(optimizer, config, steps)
    run_id = f"{run_id}:{config.fingerprint()}"

    start_epoch, history = 0, []
    if checkpoint_dir is not None:
        state = load_checkpoint(checkpoint_dir, run_id)
        if state is not None:
            model.load_state_dict(state.model)
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            start_epoch, history = state.epoch, [EpochStats(**h) for h in state.history]
            _log(f"resuming after epoch {start_epoch}/{config.epochs} from {checkpoint_dir}")

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and config.bf16 else contextlib.nullcontext()
    )
    t_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        options = BatchOptions(batch_size=config.batch_size, shuffle=True, augment=config.augment,
                               seed=config.seed, epoch=epoch, device=device)
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=not (progress and sys.stderr.isatty()))
        for i, (x, y) in enumerate(train_split.batches(options)):
            if on_cuda and config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = model(x)
                loss = criterion(logits.float(), y, x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{100 * correct.item() / seen:.1f}%",
                                img_s=f"{seen / (time.perf_counter() - t0):.0f}")
            bar.update(1)
        bar.close()
        val_acc = None
        if val_split is not None:
            val_acc = evaluate_torch(model, val_split, batch_size=512, device=device, split_name="val").accuracy
        seconds = time.perf_counter() - t0
        stats = EpochStats(epoch + 1, loss_sum.item() / max(seen, 1), 100.0 * correct.item() / max(seen, 1),
                           val_acc, optimizer.param_groups[0]["lr"], seconds, seen / seconds)
        history.append(stats)
        val_text = f"  val {val_acc:.2f}%" if val_acc is not None else ""
        if progress:
            _log(f"epoch {stats.epoch}/{config.epochs}  loss {stats.train_loss:.4f}  train {stats.train_accuracy:.2f}%"
                 f"{val_text}  {seconds:.1f}s  {stats.images_per_second:.0f} img/s")
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, TrainingState(
                model={k: v.detach().cpu() for k, v in model.state_dict().items()},
                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                epoch=epoch + 1, run_id=run_id, history=[asdict(h) for h in history]))
    model.to(memory_format=torch.contiguous_format)
    return FitResult(epochs_run=config.epochs - start_epoch, resumed_from_epoch=start_epoch, history=history,
                     seconds=time.perf_counter() - t_start)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
