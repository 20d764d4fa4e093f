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
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn

from shrink.data import train_val_split
from shrink.errors import ShrinkError
from shrink.recover.bn import recalibrate_bn
from shrink.recover.config import RecoverConfig
from shrink.recover.distill import DistillLoss
from shrink.recover.distributed import distributed_session, resolve_device
from shrink.recover.evaluation import sharded_accuracy
from shrink.recover.loop import EpochStats, fit, log_progress
from shrink.recover.reconstruct import reconstruct
from shrink.recover.teacher_logits import compute_teacher_logits, why_not_cache


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

    def to_dict(self) -> dict:
        """JSON-ready: every field but the model (asdict would deep-copy the model's tensors)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out["history"] = [asdict(h) for h in self.history]
        return out


def check_classes(model: nn.Module, split, device: str = "cpu") -> None:
    """A clear error, before any training, when the head does not match the dataset."""
    x, _ = next(iter(split.batches(_one_batch(device))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.to(device)(x)
    except RuntimeError as exc:
        raise ShrinkError(f"the model cannot take {split.info.name} inputs of shape {tuple(x.shape[1:])}: "
                          f"{str(exc).splitlines()[0]}") from exc
    finally:
        model.train(was_training)
    if out.ndim != 2 or out.shape[1] != split.info.num_classes:
        raise ShrinkError(f"the model has {out.shape[-1]} outputs but {split.info.name} has "
                          f"{split.info.num_classes} classes")


def _one_batch(device: str):
    from shrink.data import BatchOptions

    return BatchOptions(batch_size=2, device=device)


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
) -> RecoverResult:
    """Recover the accuracy of a pruned `model`; see the module docstring. Under torchrun it joins
    the process group itself; every process returns the same result, and only rank 0 writes.
    `teacher_cache`: compute the teacher's logits once when that is exact and pays (no
    augmentation, no feature distillation; see teacher_logits.py); False always runs it live.
    `plan` (a PrunePlan) and `dense` (the model it was made from): what layer-wise reconstruction
    (config.reconstruct_images > 0) fits the pruned layers to."""
    config = config or RecoverConfig()
    if config.distill is not None and teacher is None:
        raise ShrinkError("distillation needs a teacher model (the dense model before pruning)")
    if config.reconstruct_images and (plan is None or dense is None):
        raise ShrinkError("reconstruction needs the prune plan and the dense model it was made from "
                          "(recover(..., plan=, dense=))")
    train_device = config.train.device if config.train is not None else "auto"
    with distributed_session(train_device) as ctx:
        device = resolve_device(train_device, ctx)
        t_start = time.perf_counter()
        student = copy.deepcopy(model).to(device)
        check_classes(student, train_split, device)
        if val_split is None and config.val_fraction > 0:
            seed = config.train.seed if config.train else 0
            train_split, val_split = train_val_split(train_split, config.val_fraction, seed=seed)

        def accuracy() -> float | None:
            return sharded_accuracy(student, eval_split, device=device, ctx=ctx) if eval_split is not None else None

        selection = StepSelection(student, select_split, device, ctx, select_tolerance_pt)
        before = accuracy()
        selection.measure("pruned")
        bn_images = 0
        after_bn = after_reconstruction = reconstruction = None
        seed = config.train.seed if config.train else 0
        if config.reconstruct_images:
            # Every process fits on the same images, so the weights agree without a sync.
            report = log_progress if (progress and ctx.is_main) else None
            reconstruction = reconstruct(student, copy.deepcopy(dense).to(device), plan.removed_outputs(),
                                         train_split, max_images=config.reconstruct_images, device=device,
                                         seed=seed, progress=report).to_dict()
            after_reconstruction = accuracy()
            selection.measure("reconstructed")
        elif config.bn_recal:
            # Every process recalibrates on the same images, so the statistics agree without a sync.
            bn_images = recalibrate_bn(student, train_split, max_images=config.bn_recal_images,
                                       batch_size=config.bn_recal_batch_size, device=device, seed=seed)
            after_bn = accuracy()
            selection.measure("bn-recal")
        fit_result, cached = None, None
        if config.train is not None:
            criterion = None
            if config.distill is not None:
                teacher_copy = copy.deepcopy(teacher).to(device)
                check_classes(teacher_copy, train_split, device)
                log = log_progress if (progress and ctx.is_main) else (lambda message: None)
                reason = why_not_cache(config.distill, config.train, len(train_split),
                                       train_split.info.num_classes, ctx.world_size)
                if teacher_cache and reason is None:
                    log(f"teacher logits: one pass over {len(train_split):,} images "
                        f"instead of one per epoch ({config.train.epochs})")
                    cached = compute_teacher_logits(teacher_copy, train_split, device=device,
                                                    bf16=config.train.bf16, progress=progress and ctx.is_main)
                elif teacher_cache:
                    log(f"teacher runs on every batch: {reason}")
                criterion = DistillLoss(teacher_copy, config.distill, student=student,
                                        label_smoothing=config.train.label_smoothing, cached=cached)
            try:
                fit_result = fit(student, train_split, config.train, val_split=val_split, criterion=criterion,
                                 checkpoint_dir=checkpoint_dir, run_id=run_id, progress=progress)
            finally:
                if criterion is not None:
                    criterion.close()
        trained = None
        if config.train is not None:
            trained = accuracy()
            selection.measure("distilled" if config.distill is not None else "fine-tuned")
        restored = selection.restore_best()  # a step measurably worse on the held-out split does not ship
        if restored:
            after = accuracy()
        else:
            after = trained if config.train is not None else (after_reconstruction if reconstruction else after_bn)
        last = None
        if fit_result is not None and fit_result.last_weights is not None and eval_split is not None:
            live = copy.deepcopy(student)
            live.load_state_dict(fit_result.last_weights)
            last = sharded_accuracy(live, eval_split, device=device, ctx=ctx)
        seconds = time.perf_counter() - t_start
    return RecoverResult(
        model=student.cpu().eval(),
        accuracy_before=before,
        accuracy_bn_recal=after_bn,
        accuracy_after=after,
        accuracy_last_weights=last,
        eval_split=eval_split.info.name if eval_split is not None else None,
        bn_recal_images=bn_images,
        epochs_run=fit_result.epochs_run if fit_result else 0,
        epochs_completed=fit_result.epochs_completed if fit_result else 0,
        best_epoch=fit_result.best_epoch if fit_result else None,
        stopped_early=fit_result.stopped_early if fit_result else False,
        distilled=config.distill is not None and config.train is not None,
        teacher_cached=cached is not None,
        seconds=seconds,
        train_seconds=fit_result.seconds if fit_result else 0.0,
        world_size=ctx.world_size,
        history=list(fit_result.history) if fit_result else [],
        config=config.to_dict(),
        accuracy_reconstructed=after_reconstruction,
        reconstruction=reconstruction,
        selection=selection.steps,
        selection_split=select_split.info.name if select_split is not None else None,
        selection_images=len(select_split) if select_split is not None else 0,
        shipped_step=selection.shipped,
        accuracy_trained=trained,
    )


class StepSelection:
    """Each recovery step's accuracy on the held-out split, and the weights of the best one so far
    (kept on the CPU). Recovery ends with its last step unless an earlier one was better by more
    than `tolerance_pt` (the noise of a few hundred images): then that one ships."""

    def __init__(self, model: nn.Module, split, device: str, ctx, tolerance_pt: float) -> None:
        self.model, self.split, self.device, self.ctx = model, split, device, ctx
        self.tolerance_pt = tolerance_pt
        self.steps: list[dict] = []
        self.shipped: str | None = None
        self._best: tuple[float, str, dict] | None = None

    def measure(self, step: str) -> None:
        self.shipped = step
        if self.split is None:
            return
        accuracy = sharded_accuracy(self.model, self.split, device=self.device, ctx=self.ctx)
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
