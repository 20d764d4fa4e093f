"""A latency table: what each layer costs on one runtime as a function of its widths, as data.

Built by shrink.bench.layers (here, or on the device with the export kit), read by the latency
allocator (shrink.prune.budget), which never times anything itself. The table predicts a width
configuration's end-to-end latency as

    alpha * sum over layers of T_kind(c_in, c_out) + beta

- T_kind is measured on a grid of widths (granule multiples) and interpolated bilinearly between
  grid points; layers with the same shapes share one kind.
- alpha and beta are fitted to whole-model timings of a few width configurations. The sum of
  isolated layers misses what the whole model adds or saves: the layout reorders at the ends of
  each subgraph, pooling, LayerNorm and transposes that are not part of a layer, and the layers
  that no group changes. That miss is modelled, not hidden: the fit and its residuals are in the
  table.

The key names what the table is valid for: model structure, machine, runtime, precision, threads,
batch. A table with another key is refused with the fields that differ.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from shrink.errors import ShrinkError

TABLE_FORMAT = "torch-shrink-latency-table"
TABLE_VERSION = 1
KEY_FIELDS = ("structure", "machine", "runtime", "precision", "threads", "batch")


@dataclass(frozen=True)
class TableKey:
    structure: str  # shrink.prune.space.structure_hash of the dense model and input shape
    machine: str  # fingerprint of the machine the layers were timed on (layer_timer.fingerprint)
    runtime: str  # cpu, cuda, tensorrt
    precision: str  # fp32, fp16, int8
    threads: int
    batch: int

    def differences(self, other: "TableKey", fields: tuple[str, ...] = KEY_FIELDS) -> list[str]:
        return [f"{name}: table {getattr(self, name)!r}, wanted {getattr(other, name)!r}"
                for name in fields if getattr(self, name) != getattr(other, name)]

    def cache_name(self) -> str:
        return f"{self.structure}-{self.machine}-{self.runtime}-{self.precision}-t{self.threads}-b{self.batch}.json"


@dataclass(frozen=True)
class LayerKind:
    """One subgraph shape, timed over a grid: ms[i][j] at c_in = cin[i], c_out = cout[j]."""

    kind: str
    ops: tuple[str, ...]  # the layer and its fused epilogue, as onnxruntime runs them
    cin: tuple[int, ...]
    cout: tuple[int, ...]
    ms: tuple[tuple[float, ...], ...]
    depthwise: bool = False  # c_in == c_out: only the diagonal is a real configuration (cin == cout grid)

    def cost(self, ci: int, co: int) -> float:
        if self.depthwise:
            return _interp1(self.cout, [self.ms[i][i] for i in range(len(self.cout))], co)
        rows = [_interp1(self.cout, row, co) for row in self.ms]
        return _interp1(self.cin, rows, ci)


@dataclass(frozen=True)
class TableLayer:
    name: str
    kind: str
    dense_cin: int
    dense_cout: int
    in_group: str | None
    in_share: int
    out_group: str | None
    out_share: int


@dataclass(frozen=True)
class Calibration:
    """whole = alpha * sum + beta, fitted on `points` (each: widths by group, sum_ms, whole_ms)."""

    alpha: float
    beta: float
    points: tuple[dict, ...]

    def residuals(self) -> list[float]:
        return [(self.alpha * p["sum_ms"] + self.beta) / p["whole_ms"] - 1.0 for p in self.points]


@dataclass(frozen=True)
class LatencyTable:
    key: TableKey
    groups: dict[str, int]  # group root -> dense channels
    layers: tuple[TableLayer, ...]
    kinds: dict[str, LayerKind]
    calibration: Calibration
    machine: dict[str, Any]  # the machine block of where the layers were timed
    notes: tuple[str, ...] = ()
    timing: dict[str, Any] = field(default_factory=dict)  # how it was timed (runs, rounds, seconds)

    # ------------------------------------------------------------------ prediction

    def layer_ms(self, layer: TableLayer, widths: Mapping[str, int]) -> float:
        ci = _axis(layer.dense_cin, layer.in_share, layer.in_group, self.groups, widths)
        co = _axis(layer.dense_cout, layer.out_share, layer.out_group, self.groups, widths)
        return self.kinds[layer.kind].cost(ci, co)

    def layer_sum(self, widths: Mapping[str, int]) -> float:
        return sum(self.layer_ms(layer, widths) for layer in self.layers)

    def predict(self, widths: Mapping[str, int] | None = None) -> float:
        """Predicted end-to-end ms; groups missing from `widths` keep their dense width."""
        return self.calibration.alpha * self.layer_sum(widths or {}) + self.calibration.beta

    def dense_ms(self) -> float:
        return self.predict({})

    def group_ms(self, widths: Mapping[str, int]) -> dict[str, float]:
        """Predicted ms of the layers each group writes (a layer no group writes: its input's group)."""
        out: dict[str, float] = {}
        for layer in self.layers:
            owner = layer.out_group or layer.in_group
            if owner:
                out[owner] = out.get(owner, 0.0) + self.calibration.alpha * self.layer_ms(layer, widths)
        return out

    def layers_of(self, group: str) -> list[TableLayer]:
        return [layer for layer in self.layers if group in (layer.in_group, layer.out_group)]

    # ------------------------------------------------------------------ checks

    def check_key(self, wanted: TableKey, fields: tuple[str, ...] = KEY_FIELDS) -> None:
        diffs = self.key.differences(wanted, fields)
        if diffs:
            raise ShrinkError("the latency table does not fit: " + "; ".join(diffs))

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "key": asdict(self.key),
            "machine": self.machine,
            "timing": self.timing,
            "notes": list(self.notes),
            "calibration": {"alpha": self.calibration.alpha, "beta": self.calibration.beta,
                            "points": list(self.calibration.points),
                            "residuals": [round(r, 4) for r in self.calibration.residuals()]},
            "groups": self.groups,
            "layers": [asdict(layer) for layer in self.layers],
            "kinds": {k: {**asdict(v), "ms": [[round(x, 5) for x in row] for row in v.ms]} for k, v in self.kinds.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LatencyTable":
        if d.get("format") != TABLE_FORMAT:
            raise ShrinkError(f"not a torch-shrink latency table (format {d.get('format')!r})")
        if d.get("version") != TABLE_VERSION:
            raise ShrinkError(f"latency table version {d.get('version')} is not supported (this is {TABLE_VERSION})")
        try:
            kinds = {}
            for name, k in d["kinds"].items():
                kinds[name] = LayerKind(k["kind"], tuple(k["ops"]), tuple(k["cin"]), tuple(k["cout"]),
                                        tuple(tuple(row) for row in k["ms"]), bool(k.get("depthwise", False)))
            cal = d["calibration"]
            return cls(
                key=TableKey(**d["key"]),
                groups={str(k): int(v) for k, v in d["groups"].items()},
                layers=tuple(TableLayer(**layer) for layer in d["layers"]),
                kinds=kinds,
                calibration=Calibration(float(cal["alpha"]), float(cal["beta"]), tuple(cal["points"])),
                machine=dict(d.get("machine", {})),
                notes=tuple(d.get("notes", ())),
                timing=dict(d.get("timing", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ShrinkError(f"latency table is incomplete or malformed: {exc!r}") from exc

    def save(self, path: str | Path) -> None:
        from shrink.fileio import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        from shrink.fileio import read_json

        if not Path(path).is_file():
            raise ShrinkError(f"latency table not found: {path}")
        return cls.from_dict(read_json(path, "latency table"))


def axis_width(dense: int, share: int, group_dense: int, group_now: int) -> int:
    """A layer axis's channels when its group keeps `group_now` of `group_dense` channels: the
    group's part of the axis shrinks in proportion, the rest of the axis (a concat) stays."""
    if not share or group_now == group_dense:
        return dense
    return dense - share + max(1, round(share * group_now / group_dense))


def _axis(dense: int, share: int, group: str | None, groups: Mapping[str, int], widths: Mapping[str, int]) -> int:
    if group is None or group not in widths:
        return dense
    return axis_width(dense, share, groups[group], widths[group])


def _interp1(xs, ys, x: float) -> float:
    """Piecewise-linear through (xs, ys), extended linearly past the ends (xs ascending)."""
    if len(xs) == 1:
        return float(ys[0]) * (x / xs[0] if xs[0] else 1.0)
    i = min(max(bisect.bisect_left(xs, x), 1), len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return float(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
