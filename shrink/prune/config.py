"""PruneConfig: what to prune and how far, validated when it is made.

A config says *what* the pass should do (importance, scope, target, rounding, ignored layers,
steps, attention handling). How hard the machine may work (time and memory guards) is not part of
it: see `shrink.prune.guards.GuardLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shrink.config_io import Record
from shrink.errors import ShrinkValueError

IMPORTANCE_NAMES: tuple[str, ...] = ("l1", "l2", "taylor", "bn-scale", "lamp", "fpgm", "random", "hessian")
NEEDS_LABELED_BATCHES: tuple[str, ...] = ("taylor", "hessian")
SCOPES: tuple[str, ...] = ("uniform", "global")
ATTENTION_MODES: tuple[str, ...] = ("dims", "heads", "skip")

# Channel multiples per deployment target. onnxruntime's NCHWc convolution kernels block channels
# by the SIMD width: 8 floats on AVX2, 16 on AVX-512. Tensor cores tile fp16 in multiples of 8 and
# int8 in multiples of 16. `generic` keeps every channel count reachable (no rounding). `machine`
# (the default) is this machine's ORT CPU fp32 granule (shrink.bench.granule).
ROUND_TO_BY_TARGET: dict[str, int] = {
    "avx2": 8,
    "avx512": 16,
    "neon": 4,
    "tensorcore-fp16": 8,
    "tensorcore-int8": 16,
    "generic": 1,
}
MACHINE = "machine"
DEFAULT_ROUND_TO = MACHINE
DEFAULT_RATIO = 0.5


def resolve_round_to(value: int | str) -> int:
    """An int, a deployment target name from ROUND_TO_BY_TARGET, or "machine" (this CPU's granule)."""
    if isinstance(value, str) and not value.strip().isdigit():
        key = value.strip().lower()
        if key == MACHINE:
            from shrink.bench.granule import granule

            return granule("cpu", "fp32")
        if key not in ROUND_TO_BY_TARGET:
            known = ", ".join(f"{k} ({v})" for k, v in ROUND_TO_BY_TARGET.items())
            raise ShrinkValueError(f"unknown round-to target {value!r}; use an integer, {MACHINE} or one of: {known}")
        return ROUND_TO_BY_TARGET[key]
    return int(value)


TARGET_FIELDS: tuple[str, ...] = ("ratio", "target_macs", "target_params", "target_latency")


def parse_latency_budget(value: float | str | None) -> tuple[float | None, float | None]:
    """(fraction of dense, milliseconds): a number in (0, 1) is a fraction, "12ms" is milliseconds."""
    if value is None:
        return None, None
    if isinstance(value, str):
        text = value.strip().lower()
        if text.endswith("ms"):
            try:
                ms = float(text[:-2])
            except ValueError:
                ms = float("nan")
            if not ms > 0:
                raise ShrinkValueError(f"target_latency {value!r}: milliseconds must be a number > 0, like 12ms")
            return None, ms
        try:
            value = float(text)
        except ValueError:
            raise ShrinkValueError(f"target_latency {value!r}: give a fraction of dense like 0.25, or milliseconds like 12ms") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ShrinkValueError(f"target_latency {value!r}: a fraction of the dense latency must be in (0, 1) "
                               "(0.25 = 4x faster); write milliseconds with a unit, like 12ms")
    return float(value), None


@dataclass(frozen=True)
class PruneConfig(Record):
    """Structured-pruning settings. Give at most one of ratio, target_macs, target_params,
    target_latency (ratio 0.5 when none is given).

    - ratio: fraction of channels removed from every group (uniform) or from all channels (global).
    - target_macs / target_params: absolute counts the pruned model should reach (within 1%).
    - max_layer_ratio: no group loses more than this fraction of its channels, in either scope.
    - target_latency: instead of a size, a latency budget: a fraction of the dense model's latency
      (0.25 = 4x faster), or milliseconds as a string ("12ms"); needs a latency table (shrink.bench.latency_table)
      passed to plan(). Widths are then chosen by shrink.prune.budget.
    - round_to: kept widths are multiples of this (see ROUND_TO_BY_TARGET); default: this machine's
      granule, resolved to an integer when the config is made.
    - ignore: module-name globs whose output channels are kept; the layer that writes the model
      output (the classifier head) is always kept.
    - steps: reach the final ratio/target in this many equal steps.
    - attention: "dims" prunes the same dims in every head, "heads" removes whole heads,
      "skip" leaves attention-coupled groups whole.
    - calibration_batches: labeled batches read for taylor/hessian importance.
    """

    LABEL = "prune config keys"

    importance: str = "l2"
    scope: str = "uniform"
    ratio: float | None = None
    target_macs: float | None = None
    target_params: float | None = None
    target_latency: float | str | None = None
    max_layer_ratio: float = 0.9
    round_to: int | str = DEFAULT_ROUND_TO
    ignore: tuple[str, ...] = ()
    steps: int = 1
    attention: str = "dims"
    calibration_batches: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_choice("importance", self.importance, IMPORTANCE_NAMES)
        self._check_choice("scope", self.scope, SCOPES)
        self._check_choice("attention", self.attention, ATTENTION_MODES)
        object.__setattr__(self, "round_to", resolve_round_to(self.round_to))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        self._check_target()
        if not 0.0 < self.max_layer_ratio < 1.0:
            raise ShrinkValueError(f"max_layer_ratio must be in (0, 1), got {self.max_layer_ratio}")
        if self.ratio is not None and self.scope == "uniform" and self.ratio > self.max_layer_ratio:
            raise ShrinkValueError(
                f"ratio {self.ratio} exceeds max_layer_ratio {self.max_layer_ratio}; in uniform scope every "
                "group loses the ratio, so raise max_layer_ratio or lower the ratio"
            )
        if self.round_to < 1:
            raise ShrinkValueError(f"round_to must be >= 1, got {self.round_to}")
        if self.steps < 1:
            raise ShrinkValueError(f"steps must be >= 1, got {self.steps}")
        if self.target_latency is not None and self.steps != 1:
            raise ShrinkValueError("a latency budget is planned in one step: use steps 1 with target_latency")
        if self.calibration_batches < 1:
            raise ShrinkValueError(f"calibration_batches must be >= 1, got {self.calibration_batches}")
        for glob in self.ignore:
            if not isinstance(glob, str) or not glob:
                raise ShrinkValueError(f"ignore entries must be non-empty module-name globs, got {glob!r}")

    @staticmethod
    def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
        if value not in choices:
            raise ShrinkValueError(f"unknown {name} {value!r}; valid names: {', '.join(choices)}")

    def _check_target(self) -> None:
        given = [n for n in TARGET_FIELDS if getattr(self, n) is not None]
        if len(given) > 1:
            raise ShrinkValueError(f"give one of {', '.join(TARGET_FIELDS)}; got {', '.join(given)}")
        if not given:
            object.__setattr__(self, "ratio", DEFAULT_RATIO)
        if self.ratio is not None and not 0.0 < self.ratio < 1.0:
            raise ShrinkValueError(f"ratio must be in (0, 1), got {self.ratio}")
        for name in ("target_macs", "target_params"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ShrinkValueError(f"{name} must be positive, got {value}")
        parse_latency_budget(self.target_latency)

    @property
    def target_kind(self) -> str:
        """'ratio', 'macs', 'params' or 'latency'."""
        if self.target_latency is not None:
            return "latency"
        if self.target_macs is not None:
            return "macs"
        if self.target_params is not None:
            return "params"
        return "ratio"

    @property
    def latency_budget(self) -> tuple[float | None, float | None]:
        """(fraction of dense, milliseconds); one of them is set when target_latency is."""
        return parse_latency_budget(self.target_latency)

    @property
    def needs_batches(self) -> bool:
        return self.importance in NEEDS_LABELED_BATCHES

