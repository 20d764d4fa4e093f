"""The ship gate: what a run must say, loudly, before anyone ships its file.

Recovery measures every step on training images held out of it (never the test set) and ships
its last step unless an earlier one was better there by more than `step_tolerance_pt`
(shrink.recover.api). The gate then warns, in the closing lines, the report, the
manifest and `--json`, when:
- a recovery step made the model worse than the step before it on that held-out split (by more
  than `step_tolerance_pt`, the noise of a few hundred images);
- the shipped file is more than `max_drop_pt` below the dense model (the task metric, top-1, mIoU or
  mAP, through onnxruntime);
- there was no held-out split to choose on.
`shrink run --strict` turns those warnings into a non-zero exit, for CI pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from shrink.config_io import Record
from shrink.errors import ShrinkValueError

STRICT_EXIT_CODE = 3  # the run finished and wrote its bundle, but the gate has warnings (2 is bad input)


@dataclass(frozen=True)
class GateConfig(Record):
    LABEL = "gate keys"

    max_drop_pt: float = 3.0  # the shipped file may be at most this many points of the task metric below dense
    step_tolerance_pt: float = 0.5  # a step this much worse than the one before it is still "no worse"

    def __post_init__(self) -> None:
        for name in ("max_drop_pt", "step_tolerance_pt"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ShrinkValueError(f"gate.{name} must be a number >= 0 (points of the task metric), got {value!r}")



def step_warnings(selection: Sequence[Mapping[str, Any]], shipped_step: str | None, tolerance_pt: float) -> list[str]:
    """A warning for each step that made the model worse than the step before it."""
    out = []
    for before, after in zip(selection, selection[1:]):
        if after["accuracy"] < before["accuracy"] - tolerance_pt:
            out.append(f"recovery step {after['step']} made the model worse on the held-out training images: "
                       f"{before['accuracy']:.2f}% after {before['step']} -> {after['accuracy']:.2f}%; "
                       f"the run ships the {shipped_step} weights")
    return out


def gate_warnings(recovery: Mapping[str, Any], dense_accuracy: float | None, shipped_accuracy: float | None,
                  shipped_file: str, config: GateConfig, synthetic: bool, metric: str = "top-1") -> list[str]:
    """Everything the gate warns about for one run (nothing for a latency-only synthetic run)."""
    if synthetic:
        return []
    out = []
    if recovery.get("recovered") and not recovery.get("selection"):
        out.append("no training images were held out of recovery, so its steps could not be compared before "
                   "shipping (data.select_images)")
    out += step_warnings(recovery.get("selection") or [], recovery.get("shipped_step"), config.step_tolerance_pt)
    if dense_accuracy is not None and shipped_accuracy is not None:
        drop = dense_accuracy - shipped_accuracy
        if drop > config.max_drop_pt:
            out.append(f"the shipped {shipped_file} is {drop:.2f} pt below dense ({metric} {shipped_accuracy:.2f}% vs "
                       f"{dense_accuracy:.2f}%), more than gate.max_drop_pt {config.max_drop_pt:g}")
    return out
