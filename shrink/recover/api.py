"""The recovery stage: `recover(pruned_model, teacher, train_split, config) -> RecoverResult`.

It never changes the model it is given: it works on a copy, which the result carries. Steps, each
optional: BN recalibration or layer-wise reconstruction (no labels) -> fine-tuning, or distillation
from `teacher`. Accuracy is measured on `eval_split` (usually the test set) before, after the
label-free step and at the end, for the report only; every choice made during training (early
stopping) uses a validation split held out of train.

With `select_split` (training images held out of recovery, never the test set), every step is
also measured there, and a last step that is worse there than an earlier one by more than
`select_tolerance_pt` (a fine-tuning that diverged, say) is not what ships: the result carries the
best step instead. `selection` records each step's accuracy on that split and `shipped_step`
which one the model is.

"Accuracy" is the task's headline metric throughout (`metric`): top-1 for a classifier, mIoU for
a segmenter, mAP@[.5:.95] for a detector (shrink.recover.evaluation.sharded_score); the task is
read from the model unless the caller gives it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch.nn as nn

from shrink.data import train_val_split
from shrink.data.fits import check_model_fits
from shrink.errors import ShrinkError
from shrink.recover.bn import recalibrate_bn
from shrink.recover.config import RecoverConfig
from shrink.recover.distill import DistillLoss
from shrink.recover.distributed import DistContext, distributed_session, resolve_device
from shrink.recover.evaluation import sharded_score
from shrink.recover.loop import EpochStats, FitResult, fit, log_progress
from shrink.recover.objectives import model_task
from shrink.recover.reconstruct import reconstruct
from shrink.recover.teacher_logits import TeacherLogits, compute_teacher_logits, why_not_cache
from shrink.tasks import Task


@dataclass
class RecoverResult:
    model: nn.Module  # the recovered copy, in eval mode on the CPU (not serialized)
    accuracy_before: float | None  # percent top-1 on eval_split, as given
    accuracy_bn_recal: float | None  # after BN recalibration, before any training
    accuracy_after: float | None
    accuracy_last_weights: float | None  # with ema_epochs: the last live weights (accuracy_after: their average)
    eval_split: str | None  # dataset name of eval_split
    bn_recal_images: int
    epochs_run: int
    epochs_completed: int  # including those of a run this one resumed
    best_epoch: int | None
    stopped_early: bool
    distilled: bool
    teacher_cached: bool  # the teacher's logits were computed once, not on every batch
    seconds: float  # whole stage, evaluation included
    train_seconds: float
    world_size: int
    history: list[EpochStats] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    accuracy_reconstructed: float | None = None  # after layer-wise reconstruction, before any training
    reconstruction: dict | None = None  # ReconstructResult.to_dict(): images, per-layer errors, time
    selection: list[dict] = field(default_factory=list)  # [{"step", "accuracy"}] on select_split, in order
    selection_split: str | None = None  # what the steps were chosen on (None: no selection split)
    selection_images: int = 0
    shipped_step: str | None = None  # the step whose weights the model carries (see StepSelection)
    accuracy_trained: float | None = None  # eval_split accuracy of the trained weights, shipped or not
    metric: str = Task.CLASSIFICATION.metric  # what every accuracy_* above measures (top-1, mIoU, mAP@[.5:.95])

    def to_dict(self) -> dict:
        """JSON-ready: every field but the model (asdict would deep-copy the model's tensors)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out["history"] = [asdict(h) for h in self.history]
        return out


@dataclass
class _Recovery:
    """One recovery in progress: the copy being recovered, where it runs and what it is scored on."""

    student: nn.Module
    config: RecoverConfig
    task: Task
    device: str
    ctx: DistContext
    eval_split: Any
    progress: bool

    @property
    def seed(self) -> int:
        return self.config.train.seed if self.config.train else 0

    def accuracy(self) -> float | None:
        """The task's metric on eval_split, for the report only (None without one)."""
        if self.eval_split is None:
            return None
        return sharded_score(self.student, self.eval_split, device=self.device, task=self.task, ctx=self.ctx)

    def log(self, message: str) -> None:
        if self.progress and self.ctx.is_main:
            log_progress(message)


@dataclass
class _LabelFree:
    """What the step without labels did: BN recalibration or layer-wise reconstruction (or neither)."""

    bn_images: int = 0
    accuracy_bn_recal: float | None = None
    accuracy_reconstructed: float | None = None
    reconstruction: dict | None = None  # ReconstructResult.to_dict()


@dataclass
class _Training:
    """What fine-tuning or distillation did (absent: the config has no training)."""

    fit: FitResult
    teacher_cached: bool
    accuracy: float | None  # on eval_split, right after training


def recover(
    model: nn.Module,
    teacher: nn.Module | None,
    train_split,
    config: RecoverConfig | None = None,
    *,
    eval_split=None,
    val_split=None,
    checkpoint_dir: str | Path | None = None,
    run_id: str = "",
    progress: bool = True,
    teacher_cache: bool = True,
    plan=None,
    dense: nn.Module | None = None,
    select_split=None,
    select_tolerance_pt: float = 0.5,
    task: Task | None = None,
) -> RecoverResult:
    """Recover the accuracy of a pruned `model`; see the module docstring. Under torchrun it joins
    the process group itself; every process returns the same result, and only rank 0 writes.
    `teacher_cache`: compute the teacher's logits once when that is exact and pays (no
    augmentation, no feature distillation; see teacher_logits.py); False always runs it live.
    `plan` (a PrunePlan) and `dense` (the model it was made from): what layer-wise reconstruction
    (config.reconstruct_images > 0) fits the pruned layers to. `task`: what the model predicts
    (default: read from the model, objectives.model_task)."""
    config = config or RecoverConfig()
    task = task or model_task(model)
    _check_inputs(config, teacher, plan, dense)
    train_device = config.train.device if config.train is not None else "auto"
    with distributed_session(train_device) as ctx:
        device = resolve_device(train_device, ctx)
        t_start = time.perf_counter()
        run = _Recovery(copy.deepcopy(model).to(device), config, task, device, ctx, eval_split, progress)
        check_model_fits(run.student, train_split, device, task=task)
        if val_split is None and config.val_fraction > 0:
            train_split, val_split = train_val_split(train_split, config.val_fraction, seed=run.seed)
        selection = StepSelection(run.student, select_split, device, ctx, select_tolerance_pt, task=task)
        before = run.accuracy()
        selection.measure("pruned")
        label_free = _label_free_step(run, train_split, plan, dense, selection)
        training = None
        if config.train is not None:
            training = _train(run, teacher, train_split, val_split, checkpoint_dir, run_id, teacher_cache, selection)
        after = _shipped_accuracy(run, selection, label_free, training)
        last = _last_weights_accuracy(run, training)
        seconds = time.perf_counter() - t_start
    return _result(run, before, label_free, training, after, last, selection, select_split, seconds)


def _check_inputs(config: RecoverConfig, teacher: nn.Module | None, plan, dense: nn.Module | None) -> None:
    if config.distill is not None and teacher is None:
        raise ShrinkError("distillation needs a teacher model (the dense model before pruning)")
    if config.reconstruct_images and (plan is None or dense is None):
        raise ShrinkError("reconstruction needs the prune plan and the dense model it was made from "
                          "(recover(..., plan=, dense=))")


def _label_free_step(run: _Recovery, train_split, plan, dense: nn.Module | None,
                     selection: StepSelection) -> _LabelFree:
    """Layer-wise reconstruction when the config asks for it, else BN recalibration when it is on.
    Every process works on the same images, so the weights and statistics agree without a sync."""
    config = run.config
    if config.reconstruct_images:
        report = log_progress if (run.progress and run.ctx.is_main) else None
        reconstruction = reconstruct(run.student, copy.deepcopy(dense).to(run.device), plan.removed_outputs(),
                                     train_split, max_images=config.reconstruct_images, device=run.device,
                                     seed=run.seed, progress=report).to_dict()
        done = _LabelFree(accuracy_reconstructed=run.accuracy(), reconstruction=reconstruction)
        selection.measure("reconstructed")
        return done
    if config.bn_recal:
        images = recalibrate_bn(run.student, train_split, max_images=config.bn_recal_images,
                                batch_size=config.bn_recal_batch_size, device=run.device, seed=run.seed)
        done = _LabelFree(bn_images=images, accuracy_bn_recal=run.accuracy())
        selection.measure("bn-recal")
        return done
    return _LabelFree()


def _train(run: _Recovery, teacher: nn.Module | None, train_split, val_split, checkpoint_dir, run_id: str,
           teacher_cache: bool, selection: StepSelection) -> _Training:
    """Fine-tune, or distill from `teacher` when the config says so, then measure the result."""
    config = run.config
    criterion, cached = None, None
    if config.distill is not None:
        criterion, cached = _distill_loss(run, teacher, train_split, teacher_cache)
    try:
        result = fit(run.student, train_split, config.train, val_split=val_split, criterion=criterion,
                     checkpoint_dir=checkpoint_dir, run_id=run_id, progress=run.progress, task=run.task)
    finally:
        if criterion is not None:
            criterion.close()
    trained = run.accuracy()
    selection.measure("distilled" if config.distill is not None else "fine-tuned")
    return _Training(result, cached is not None, trained)


def _distill_loss(run: _Recovery, teacher: nn.Module, train_split,
                  teacher_cache: bool) -> tuple[DistillLoss, TeacherLogits | None]:
    """(the distillation loss on a copy of `teacher`, the teacher's cached logits or None)."""
    config = run.config
    teacher_copy = copy.deepcopy(teacher).to(run.device)
    check_model_fits(teacher_copy, train_split, run.device, task=run.task)
    reason = why_not_cache(config.distill, config.train, len(train_split), train_split.info.num_classes,
                           run.ctx.world_size, task=run.task)
    cached = None
    if teacher_cache and reason is None:
        run.log(f"teacher logits: one pass over {len(train_split):,} images "
                f"instead of one per epoch ({config.train.epochs})")
        cached = compute_teacher_logits(teacher_copy, train_split, device=run.device, bf16=config.train.bf16,
                                        progress=run.progress and run.ctx.is_main)
    elif teacher_cache:
        run.log(f"teacher runs on every batch: {reason}")
    criterion = DistillLoss(teacher_copy, config.distill, student=run.student,
                            label_smoothing=config.train.label_smoothing, cached=cached, task=run.task)
    return criterion, cached


def _shipped_accuracy(run: _Recovery, selection: StepSelection, label_free: _LabelFree,
                      training: _Training | None) -> float | None:
    """eval_split accuracy of the weights that ship: a step measurably worse on the held-out split
    than an earlier one does not ship, and the earlier one's weights are measured again."""
    if selection.restore_best():
        return run.accuracy()
    if training is not None:
        return training.accuracy
    if label_free.reconstruction:
        return label_free.accuracy_reconstructed
    return label_free.accuracy_bn_recal


def _last_weights_accuracy(run: _Recovery, training: _Training | None) -> float | None:
    """With weight averaging, the eval_split accuracy of the last live weights (the model ends averaged)."""
    if training is None or training.fit.last_weights is None or run.eval_split is None:
        return None
    live = copy.deepcopy(run.student)
    live.load_state_dict(training.fit.last_weights)
    return sharded_score(live, run.eval_split, device=run.device, task=run.task, ctx=run.ctx)


def _result(run: _Recovery, before: float | None, label_free: _LabelFree, training: _Training | None,
            after: float | None, last: float | None, selection: StepSelection, select_split,
            seconds: float) -> RecoverResult:
    config, fitted = run.config, training.fit if training is not None else None
    return RecoverResult(
        model=run.student.cpu().eval(),
        accuracy_before=before,
        accuracy_bn_recal=label_free.accuracy_bn_recal,
        accuracy_after=after,
        accuracy_last_weights=last,
        eval_split=run.eval_split.info.name if run.eval_split is not None else None,
        bn_recal_images=label_free.bn_images,
        epochs_run=fitted.epochs_run if fitted else 0,
        epochs_completed=fitted.epochs_completed if fitted else 0,
        best_epoch=fitted.best_epoch if fitted else None,
        stopped_early=fitted.stopped_early if fitted else False,
        distilled=config.distill is not None and config.train is not None,
        teacher_cached=training is not None and training.teacher_cached,
        seconds=seconds,
        train_seconds=fitted.seconds if fitted else 0.0,
        world_size=run.ctx.world_size,
        history=list(fitted.history) if fitted else [],
        config=config.to_dict(),
        accuracy_reconstructed=label_free.accuracy_reconstructed,
        reconstruction=label_free.reconstruction,
        selection=selection.steps,
        selection_split=select_split.info.name if select_split is not None else None,
        selection_images=len(select_split) if select_split is not None else 0,
        shipped_step=selection.shipped,
        accuracy_trained=training.accuracy if training is not None else None,
        metric=run.task.metric,
    )


class StepSelection:
    """Each recovery step's accuracy on the held-out split, and the weights of the best one so far
    (kept on the CPU). Recovery ends with its last step unless an earlier one was better by more
    than `tolerance_pt` (the noise of a few hundred images): then that one ships."""

    def __init__(self, model: nn.Module, split, device: str, ctx, tolerance_pt: float,
                 task: Task = Task.CLASSIFICATION) -> None:
        self.model, self.split, self.device, self.ctx, self.task = model, split, device, ctx, task
        self.tolerance_pt = tolerance_pt
        self.steps: list[dict] = []
        self.shipped: str | None = None
        self._best: tuple[float, str, dict] | None = None

    def measure(self, step: str) -> None:
        self.shipped = step
        if self.split is None:
            return
        accuracy = sharded_score(self.model, self.split, device=self.device, task=self.task, ctx=self.ctx)
        self.steps.append({"step": step, "accuracy": accuracy})
        if self._best is None or accuracy >= self._best[0]:  # a tie goes to the later step
            self._best = (accuracy, step, {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()})

    def restore_best(self) -> bool:
        """Load the best step's weights when the last step is measurably worse; True when it did."""
        if self._best is None or self._best[1] == self.steps[-1]["step"]:
            return False
        if self._best[0] - self.steps[-1]["accuracy"] <= self.tolerance_pt:
            return False
        self.model.load_state_dict(self._best[2])
        self.shipped = self._best[1]
        return True
