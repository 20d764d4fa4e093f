"""Accuracy recovery after pruning: BN recalibration or layer-wise reconstruction, fine-tuning and
distillation, on one process or many under torchrun."""

from shrink.recover.api import RecoverResult, recover
from shrink.recover.bn import recalibrate_bn
from shrink.recover.config import DistillConfig, RecoverConfig, TrainConfig
from shrink.recover.distill import DistillLoss, kd_loss
from shrink.recover.loop import FitResult, fit
from shrink.recover.reconstruct import ReconstructResult, reconstruct

__all__ = [
    "DistillConfig",
    "DistillLoss",
    "FitResult",
    "RecoverConfig",
    "ReconstructResult",
    "RecoverResult",
    "TrainConfig",
    "fit",
    "kd_loss",
    "recalibrate_bn",
    "reconstruct",
    "recover",
]
