"""What an export produced and what its checks measured (typed, JSON via to_dict)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from shrink.fileio import json_safe


@dataclass(frozen=True)
class BatchParity:
    """ONNX vs PyTorch logits at one batch size."""

    batch: int
    max_abs_diff: float
    max_tolerance_ratio: float  # <= 1: every element within atol + rtol |torch| (fp32 only)
    sqnr_db: float


@dataclass(frozen=True)
class ParityReport:
    precision: str  # fp32 | fp16
    provider: str  # the onnxruntime provider the ONNX side ran on
    batches: tuple[BatchParity, ...]
    eval_images: int  # 0 when no real eval split was given
    eval_dataset: str | None
    top1_agree: int
    top1_near_ties: int  # disagreements where the two best PyTorch logits are within tolerance
    eval_sqnr_db: float | None
    passed: bool
    failures: tuple[str, ...] = ()
    # dense eval images that differed inside a batch and matched when compared alone (see parity.py)
    rechecked_alone: int = 0

    @property
    def top1_agreement(self) -> float:
        return self.top1_agree / self.eval_images if self.eval_images else 1.0


@dataclass(frozen=True)
class ExportResult:
    path: str
    sha256: str
    size_bytes: int
    external_data: bool
    exporter: str  # the one that produced the file
    fallback_reason: str | None  # why dynamo was not used, when it was not
    opset: int
    precision: str
    input_name: str
    input_shape: tuple[Any, ...]  # ("batch", C, H, W) with a dynamic batch
    output_name: str
    metadata: dict[str, str]
    checks: tuple[str, ...]  # the checks that ran and passed, in order
    parity: ParityReport
    slim: dict[str, int] | None = None  # node counts before/after onnxslim, when it ran
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return json_safe(dataclasses.asdict(self))
