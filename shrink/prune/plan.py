"""PrunePlan: an inspectable, JSON-serializable record of what structural pruning removes.

Every channel index in a plan is in the *dense* model's numbering, in every step: a plan can be
read, diffed, or cut down to some of its groups without replaying anything. Replaying converts the
indices to the current numbering (see apply.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from shrink.config_io import check_format
from shrink.errors import ShrinkError
from shrink.prune.config import PruneConfig

PLAN_FORMAT = "torch-shrink/prune-plan"
PLAN_VERSION = 1


@dataclass(frozen=True)
class PrunedLayer:
    """One layer of a group: its name, which side loses channels, and which channels."""

    name: str
    axis: str  # "out": the layer writes these channels; "in": it reads them
    optype: str  # torch-pruning OPTYPE name: CONV, DEPTHWISE_CONV, LINEAR, BN, LN, MHA, PARAMETER, ...
    removed: tuple[int, ...]
    dim: int | None = None  # for bare parameters (ViT class token, layer scales): the pruned dim

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "axis": self.axis, "optype": self.optype, "removed": list(self.removed)}
        if self.dim is not None:
            d["dim"] = self.dim
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PrunedLayer":
        return cls(d["name"], d["axis"], d["optype"], tuple(d["removed"]), d.get("dim"))


@dataclass(frozen=True)
class PlanGroup:
    """Coupled layers that lose the same channels; `root` is the layer whose outputs define them."""

    root: str
    width: int  # root output channels before this step
    removed: tuple[int, ...]  # root channels removed
    layers: tuple[PrunedLayer, ...]
    inexact: str | None = None  # why the zero-then-remove check is not exact here (LayerNorm...)
    num_heads: dict[str, int] = field(default_factory=dict)  # attention modules -> heads left (whole-head pruning)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "root": self.root,
            "width": self.width,
            "removed": list(self.removed),
            "inexact": self.inexact,
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.num_heads:
            d["num_heads"] = dict(self.num_heads)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PlanGroup":
        layers = tuple(PrunedLayer.from_dict(x) for x in d["layers"])
        return cls(d["root"], d["width"], tuple(d["removed"]), layers, d.get("inexact"), dict(d.get("num_heads", {})))


@dataclass(frozen=True)
class PlanStep:
    index: int  # 1-based
    ratio: float  # cumulative channel ratio this step was selected at
    groups: tuple[PlanGroup, ...]

    @property
    def num_heads(self) -> dict[str, int]:
        """Attention modules that lose whole heads in this step -> heads left."""
        return {name: n for g in self.groups for name, n in g.num_heads.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "ratio": self.ratio, "groups": [g.to_dict() for g in self.groups]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PlanStep":
        return cls(d["index"], d["ratio"], tuple(PlanGroup.from_dict(g) for g in d["groups"]))


@dataclass(frozen=True)
class LayerWidth:
    """(in, out) widths of one prunable layer in the dense model and after the plan."""

    name: str
    kind: str  # module class name, or "Parameter"
    before: tuple[int, int]
    after: tuple[int, int]
    dim: int | None = None  # for a Parameter: the dim whose size is the width

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "kind": self.kind, "before": list(self.before), "after": list(self.after)}
        if self.dim is not None:
            d["dim"] = self.dim
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LayerWidth":
        return cls(d["name"], d["kind"], tuple(d["before"]), tuple(d["after"]), d.get("dim"))


@dataclass(frozen=True)
class Counts:
    macs: int
    params: int


@dataclass(frozen=True)
class LeftWhole:
    """A group the pass left whole: its root, why, and the layers that keep their widths."""

    root: str
    reason: str
    layers: tuple[str, ...]


@dataclass(frozen=True)
class LatencyPlan:
    """How a latency budget was planned: the table it used, the budget, what the table predicts
    (in the table's milliseconds), and, once the plan was exported and timed, what was measured."""

    table_key: dict[str, Any]
    requested: float | str  # as given: a fraction of dense, or "12ms"
    budget_ms: float  # the budget in the table's milliseconds
    dense_predicted_ms: float
    predicted_ms: float
    groups_ms: dict[str, float]  # predicted ms of the layers each group writes
    measured: tuple[dict[str, Any], ...] = ()  # one record per closed-loop round

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["measured"] = list(self.measured)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LatencyPlan":
        return cls(**{**d, "measured": tuple(d.get("measured", ()))})


@dataclass(frozen=True)
class PrunePlan:
    config: PruneConfig
    input_shapes: tuple[tuple[int, ...], ...]
    steps: tuple[PlanStep, ...]
    before: Counts
    after: Counts
    layers: tuple[LayerWidth, ...]
    left_whole: tuple[LeftWhole, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    latency: LatencyPlan | None = None  # set when the widths were chosen for a latency budget

    @property
    def groups(self) -> tuple[PlanGroup, ...]:
        return tuple(g for step in self.steps for g in step.groups)

    @property
    def mac_reduction(self) -> float:
        return self.before.macs / self.after.macs if self.after.macs else float("inf")

    @property
    def param_reduction(self) -> float:
        return self.before.params / self.after.params if self.after.params else float("inf")

    def changed_layers(self) -> list[LayerWidth]:
        return [w for w in self.layers if w.before != w.after]

    def removed_outputs(self) -> dict[str, frozenset[int]]:
        """Layer -> the output channels the plan removes from it over all steps, in the dense
        model's numbering (what layer-wise reconstruction needs to match a pruned layer with the
        dense one's outputs). Bare parameters are left out."""
        removed: dict[str, set[int]] = {}
        for group in self.groups:
            for layer in group.layers:
                if layer.axis == "out" and layer.dim is None:
                    removed.setdefault(layer.name, set()).update(layer.removed)
        return {name: frozenset(channels) for name, channels in removed.items()}

    def dense_widths(self) -> dict[str, tuple[int, int]]:
        return {w.name: w.before for w in self.layers}

    def with_groups(self, keep) -> "PrunePlan":
        """The same plan restricted to the groups for which `keep(group)` is true (counts and
        widths are no longer predictions for it)."""
        steps = tuple(
            PlanStep(s.index, s.ratio, tuple(g for g in s.groups if keep(g))) for s in self.steps
        )
        return PrunePlan(self.config, self.input_shapes, steps, self.before, self.after, self.layers,
                         self.left_whole, self.versions, self.latency)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "mode": "structured",
            "config": self.config.to_dict(),
            "input_shapes": [list(s) for s in self.input_shapes],
            "before": {"macs": self.before.macs, "params": self.before.params},
            "after": {"macs": self.after.macs, "params": self.after.params},
            "versions": dict(self.versions),
            "left_whole": [{"root": n.root, "reason": n.reason, "layers": list(n.layers)} for n in self.left_whole],
            "layers": [w.to_dict() for w in self.layers],
            "steps": [s.to_dict() for s in self.steps],
        }
        if self.latency is not None:
            d["latency"] = self.latency.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PrunePlan":
        check_format(d, PLAN_FORMAT, PLAN_VERSION, "prune plan")
        try:
            return cls(
                config=PruneConfig.from_dict(d["config"]),
                input_shapes=tuple(tuple(s) for s in d["input_shapes"]),
                steps=tuple(PlanStep.from_dict(s) for s in d["steps"]),
                before=Counts(**d["before"]),
                after=Counts(**d["after"]),
                layers=tuple(LayerWidth.from_dict(w) for w in d["layers"]),
                left_whole=tuple(LeftWhole(n["root"], n["reason"], tuple(n["layers"])) for n in d["left_whole"]),
                versions=dict(d.get("versions", {})),
                latency=LatencyPlan.from_dict(d["latency"]) if d.get("latency") else None,
            )
        except (KeyError, TypeError) as exc:
            raise ShrinkError(f"prune plan is incomplete or malformed: {exc!r}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "PrunePlan":
        return cls.from_dict(json.loads(text))

    def digest(self) -> str:
        """sha256 of the plan's canonical JSON: what was removed, independent of formatting."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

