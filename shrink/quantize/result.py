"""Typed records of the quantize stage: each measured candidate, the decision, the whole result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from shrink.fileio import insert_after, json_safe
from shrink.quantize.recipe import QuantRecipe

FP32 = "fp32"


@dataclass(frozen=True)
class Measured:
    """One candidate (the fp32 file or an int8 recipe) as measured on this machine.

    accuracy is top-1 % on the eval split through onnxruntime (None: not measured); speedup is
    median fp32 latency / median candidate latency from one interleaved bench run, with its 95%
    bootstrap interval (None: not timed). `error` is set when the recipe could not be produced."""

    name: str
    recipe: QuantRecipe | None = None  # None for the fp32 file
    path: str | None = None
    accuracy: float | None = None
    top1_agreement: float | None = None  # with the fp32 ONNX file, on the compared images
    logits_sqnr_db: float | None = None  # against the fp32 ONNX file
    latency_ms: float | None = None  # median
    speedup: float | None = None
    speedup_ci_low: float | None = None
    speedup_ci_high: float | None = None
    error: str | None = None

    @property
    def is_fp32(self) -> bool:
        return self.recipe is None

    def to_dict(self) -> dict[str, Any]:
        d = json_safe(dataclasses.asdict(self))
        d["recipe"] = self.recipe.to_dict() if self.recipe else None
        return d


@dataclass(frozen=True)
class Verdict:
    name: str
    qualifies: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    shipped: str  # the name of the shipped candidate: "fp32" or a recipe name
    int8: bool
    reason: str
    verdicts: tuple[Verdict, ...]


@dataclass(frozen=True)
class QuantizeResult:
    input_path: str
    output_path: str
    record_path: str
    sha256: str
    mode: str
    config: dict[str, Any]
    fp32: Measured
    candidates: tuple[Measured, ...]
    decision: Decision
    calibration: dict[str, Any]  # dataset, images, seed, synthetic
    evaluation: dict[str, Any]  # dataset, split, images, synthetic
    layer_sqnr: tuple[dict[str, Any], ...]
    machine: dict[str, Any]
    bench: dict[str, Any]  # threads, batch, rounds, notes of the interleaved timing run
    profile: dict[str, Any] | None  # ORT profile of fp32 vs the fastest int8, when fp32 shipped
    flags: tuple[str, ...]  # warnings every report must repeat (e.g. random calibration)
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    confirmation: Measured | None = None  # the chosen int8 file timed against fp32 alone (auto mode)

    # What shipped and why is the decision's; the record repeats it near the top, for a reader.
    @property
    def shipped(self) -> str:
        return self.decision.shipped

    @property
    def int8(self) -> bool:
        return self.decision.int8

    @property
    def reason(self) -> str:
        return self.decision.reason

    def to_dict(self) -> dict[str, Any]:
        d = json_safe(dataclasses.asdict(self))
        d["fp32"] = self.fp32.to_dict()
        d["candidates"] = [c.to_dict() for c in self.candidates]
        d["confirmation"] = self.confirmation.to_dict() if self.confirmation else None
        return insert_after(d, "sha256", {"shipped": self.shipped, "int8": self.int8, "reason": self.reason})

