"""RunSummary: what a run measured, typed. The manifest is its JSON (plus artifact hashes); the
report, the closing lines and `shrink run --json` read it. The candidate rows, the shipped file, the
gate, the int8 speedup figures and the stage times are typed; the sections that are one stage's
record as it wrote it (inputs, pruning, recovery, quantization, measurement) stay mappings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shrink.candidates import Candidate
from shrink.config_io import OMIT_IF_NONE, Record, to_dict
from shrink.tasks import Task

MANIFEST_FORMAT = "torch-shrink/run-manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class CandidateRow(Record):
    """One candidate file as the run measured it; `file` None: not made or not shipped (`note` says why)."""

    LABEL = "candidate keys"

    name: str
    file: str | None
    params: int | None = None
    macs: int | None = None
    size_bytes: int | None = None
    accuracy_torch: float | None = None
    accuracy_onnx: float | None = None
    latency: dict[str, Any] | None = None  # p50/p90/p99, the median's 95% CI, runs, cv, noisy
    speedup: dict[str, Any] | None = None  # against dense: ratio and its 95% CI
    caveats: tuple[str, ...] = ()
    domains: dict[str, Any] | None = None  # operator types by domain: what a runtime must implement
    runtime_specific_ops: list[str] | None = None
    checked_on: tuple[str, ...] | None = None
    shipped: bool = False
    note: str | None = None

    @property
    def candidate(self) -> Candidate:
        return Candidate(self.name)

    def to_dict(self) -> dict[str, Any]:
        if self.file is None:  # a file that was not made has nothing measured
            return {"name": self.name, "file": None, "shipped": self.shipped, "note": self.note}
        return to_dict(self)


@dataclass(frozen=True)
class Shipped(Record):
    LABEL = "shipped keys"

    file: str
    int8: bool
    reason: str


@dataclass(frozen=True)
class GateSummary(Record):
    """The ship gate's settings and what it warned about (shrink.run.gate)."""

    LABEL = "gate keys"

    max_drop_pt: float
    step_tolerance_pt: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Int8Speedup(Record):
    """Pruned fp32 -> shipped int8, as each stage measured it, and whether the intervals overlap."""

    LABEL = "int8 speedup keys"

    figures: tuple[dict[str, Any], ...] = ()
    agree: bool | None = None


@dataclass(frozen=True)
class StageTime(Record):
    LABEL = "stage keys"

    name: str
    seconds: float
    finished_utc: str
    cpu_seconds: float | None = None


@dataclass(frozen=True)
class RunSummary(Record):
    LABEL = "run summary keys"

    run: dict[str, Any]  # name, torch-shrink version, recipe file, created_utc
    inputs: dict[str, Any]  # model (source, files, spec) and data (dataset, images, seed, synthetic)
    preprocessing: dict[str, Any]  # the deployment contract the shipped files carry
    labels: list[str] | None
    shipped: Shipped
    candidates: tuple[CandidateRow, ...]
    pruning: dict[str, Any]
    recovery: dict[str, Any]
    gate: GateSummary | None = field(default=None, metadata=OMIT_IF_NONE)
    quantization: dict[str, Any] = field(default_factory=dict)
    int8_speedup: Int8Speedup | None = field(default=None, metadata=OMIT_IF_NONE)
    measurement: dict[str, Any] = field(default_factory=dict)
    stages: tuple[StageTime, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, **to_dict(self)}

    @classmethod
    def from_dict(cls, data):
        from shrink.config_io import check_format, from_dict

        check_format(data, MANIFEST_FORMAT, MANIFEST_VERSION, "run manifest")
        body = {k: v for k, v in data.items() if k not in ("format", "version", "artifacts")}
        return from_dict(cls, body, cls.LABEL)

    def row(self, candidate: Candidate) -> CandidateRow:
        return next(c for c in self.candidates if c.name == candidate.value)

    @property
    def dense(self) -> CandidateRow:
        return self.row(Candidate.DENSE_FP32)

    @property
    def shipped_row(self) -> CandidateRow:
        """The shipped file's row (pruned fp32 until the shipped flags are set)."""
        return next((c for c in self.candidates if c.shipped), self.row(Candidate.PRUNED_FP32))

    @property
    def data(self) -> dict[str, Any]:
        return self.inputs["data"]

    @property
    def synthetic(self) -> bool:
        return bool(self.data["synthetic"])

    @property
    def task(self) -> Task:
        return Task.parse(self.inputs["model"]["spec"].get("task") or Task.CLASSIFICATION.value)

    @property
    def metric(self) -> str:
        """What every accuracy figure of the run is: top-1, mIoU or mAP@[.5:.95]."""
        return self.task.metric

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.gate.warnings if self.gate else ()
