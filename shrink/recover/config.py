"""Configuration of the training / fine-tuning loop, of distillation, and of a whole recovery."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from shrink.config_io import Record
from shrink.errors import ShrinkValueError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine")
MAX_BN_RECAL_IMAGES = 2000  # label-free steps stay cheap: BN recalibration sees at most this many train images
MAX_RECONSTRUCT_IMAGES = 2000  # the same budget for layer-wise reconstruction, also label-free


@dataclass(frozen=True)
class TrainConfig(Record):
    LABEL = "training options"

    epochs: int = 15
    batch_size: int = 256  # global: under torchrun each of N processes takes batch_size / N
    optimizer: str = "sgd"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4  # not applied to norm layers and biases
    schedule: str = "onecycle"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float | None = None  # max global grad norm
    augment: bool = True
    seed: int = 0
    device: str = "auto"  # auto: cuda if available (cuda:LOCAL_RANK under torchrun)
    bf16: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # on CUDA only
    early_stopping_patience: int | None = None  # stop after this many epochs without a better val accuracy
    restore_best: bool = True  # with early stopping: end with the weights of the best val epoch
    ema_epochs: float | None = None  # end with the weights averaged (EMA) over about this many last epochs

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ShrinkValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ShrinkValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ShrinkValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ShrinkValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.lr > 0:
            raise ShrinkValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 1 or self.warmup_epochs < 0:
            raise ShrinkValueError("weight_decay and warmup_epochs must be >= 0, label_smoothing in [0, 1)")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ShrinkValueError(f"grad_clip must be > 0, got {self.grad_clip}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ShrinkValueError(f"early_stopping_patience must be >= 1, got {self.early_stopping_patience}")
        if self.ema_epochs is not None and not self.ema_epochs > 0:
            raise ShrinkValueError(f"ema_epochs must be > 0, got {self.ema_epochs}")

    def fingerprint(self) -> str:
        """What a resumed run must share with the run that wrote the checkpoint."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DistillConfig(Record):
    """Knowledge distillation from a teacher (usually the dense model before pruning).

    loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)
           + feature_weight * sum over `feature_layers` of the attention-transfer distance

    For a segmenter the KL is per pixel and CE the per-pixel loss; for a detector the soft term
    compares the heads anchor by anchor and the hard one is the detector's own loss
    (shrink.recover.distill).
    """

    LABEL = "distillation options"

    # The defaults are the validated recipe of `shrink finetune --distill` (default_distill()).
    temperature: float = 2.0
    alpha: float = 0.9  # weight of the soft (teacher) term
    feature_layers: tuple[str, ...] = ()  # module names present in both student and teacher
    feature_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ShrinkValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ShrinkValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.feature_weight < 0:
            raise ShrinkValueError(f"feature_weight must be >= 0, got {self.feature_weight}")
        object.__setattr__(self, "feature_layers", tuple(self.feature_layers))
        if self.feature_weight > 0 and not self.feature_layers:
            raise ShrinkValueError("feature_weight > 0 needs feature_layers (module names to match)")


def default_finetune() -> TrainConfig:
    """Fine-tuning defaults for a pruned model that starts from trained weights (the recipe of
    `shrink finetune` and benchmarks/recovery.py): 5 epochs; a peak lr of 0.01 (a tenth of training
    from scratch) at batch 128, after a short warmup and annealed to zero by cosine, so the kept
    weights are adjusted rather than erased; weight decay and label smoothing as in the reference
    models' own training; no crop/flip augmentation. How these were chosen, on a split held out of
    train: docs/recovery.md, "How the recipe was chosen"."""
    return TrainConfig(epochs=5, batch_size=128, lr=0.01, warmup_epochs=0.3, schedule="cosine",
                       label_smoothing=0.1, weight_decay=5e-4, augment=False)


def default_distill() -> DistillConfig:
    """Distillation defaults of `shrink finetune --distill` and benchmarks/recovery.py: mostly the
    teacher (alpha 0.9) at a moderate temperature; the reference teachers were trained with label
    smoothing, whose logits keep little between-class structure to reveal at high temperatures.
    DistillConfig() has the same defaults, so the Python API and the command line agree."""
    return DistillConfig()


@dataclass(frozen=True)
class RecoverConfig(Record):
    """One recovery: optional BN recalibration or layer-wise reconstruction (both label-free), then
    optional fine-tuning or distillation. With reconstruct_images > 0 the pruned layers are re-fitted
    to the dense model's outputs (shrink.recover.reconstruct) and BN recalibration is skipped: the
    re-fitted layers match the dense model's statistics again, which recalibration would replace."""

    LABEL = "recovery options"

    bn_recal: bool = True
    bn_recal_images: int = MAX_BN_RECAL_IMAGES
    bn_recal_batch_size: int = 200
    train: TrainConfig | None = field(default_factory=default_finetune)  # None: BN recalibration only
    distill: DistillConfig | None = None  # None: fine-tune on labels only (needs no teacher)
    val_fraction: float = 0.0  # held out of train (never test) for early stopping
    reconstruct_images: int = 0  # > 0: layer-wise reconstruction on this many train images (needs the plan)

    def __post_init__(self) -> None:
        if not 0 <= self.reconstruct_images <= MAX_RECONSTRUCT_IMAGES or self.reconstruct_images == 1:
            raise ShrinkValueError(f"reconstruct_images must be 0 (off) or in [2, {MAX_RECONSTRUCT_IMAGES}], "
                                   f"got {self.reconstruct_images}")
        if not 1 <= self.bn_recal_images <= MAX_BN_RECAL_IMAGES:
            raise ShrinkValueError(f"bn_recal_images must be in [1, {MAX_BN_RECAL_IMAGES}], got {self.bn_recal_images}")
        if self.bn_recal_batch_size < 1:
            raise ShrinkValueError(f"bn_recal_batch_size must be >= 1, got {self.bn_recal_batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ShrinkValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.distill is not None and self.train is None:
            raise ShrinkValueError("distillation needs training: give a train config too, or for the label-free "
                                   "step only set both train and distill to null (recover.train: null, "
                                   "recover.distill: null)")
        if self.train is not None and self.train.early_stopping_patience is not None and self.val_fraction == 0:
            raise ShrinkValueError("early stopping needs a validation split: set val_fraction > 0")
