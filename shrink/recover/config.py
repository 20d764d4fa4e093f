"""Configuration of the training / fine-tuning loop."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from shrink.errors import ShrinkValueError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 256
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
    device: str = "auto"  # auto: cuda if available
    bf16: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # on CUDA only

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ShrinkValueError(f"unknown training options {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def fingerprint(self) -> str:
        """What a resumed run must share with the run that wrote the checkpoint."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
