"""A latency table: what each layer costs on one runtime as a function of its widths, as data.

Built by shrink.bench.layers (here, or on the device with the export kit), read by the latency
allocator (shrink.prune.budget), which never times anything itself. The table predicts a width
configuration's end-to-end latency as

    sum over layers of [alpha * T_kind(c_in, c_out) + gamma * activations(c_in, c_out)] + beta

- T_kind is measured on a grid of widths (granule multiples) and interpolated bilinearly between
  grid points; layers with the same shapes share one kind.
- alpha, gamma and beta are fitted to whole-model timings of a few width configurations. The sum
  of isolated layers misses what the whole model adds or saves: each isolated subgraph pays a run
  call and layout reorders at its ends (which scale with its activations: gamma, usually
  negative), while the whole model adds pooling, LayerNorm and transposes that are not part of a
  layer, and the layers no group changes (beta). That miss is modelled, not hidden: the fit and its
  residuals are in the table.

The key names what the table is valid for: model structure, machine, runtime, precision, threads,
batch. A table with another key is refused with the fields that differ.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from shrink.config_io import check_format
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
    in_pixels: int = 1  # positions per channel of the input (H*W; tokens for a Linear)
    out_pixels: int = 1

    def activations(self, ci: int, co: int) -> float:
        """Millions of values read and written: what the reorders at a subgraph's ends move."""
        return (ci * self.in_pixels + co * self.out_pixels) / 1e6


@dataclass(frozen=True)
class Calibration:
    """whole = alpha * sum_ms + gamma * activations + beta, fitted on `points` (each: widths by
    group, sum_ms, activations in millions, whole_ms)."""

    alpha: float
    beta: float
    gamma: float
    points: tuple[dict, ...]

    def residuals(self) -> list[float]:
        return [(self.alpha * p["sum_ms"] + self.gamma * p["activations"] + self.beta) / p["whole_ms"] - 1.0
                for p in self.points]


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

    def widths_of(self, layer: TableLayer, widths: Mapping[str, int]) -> tuple[int, int]:
        ci = _axis(layer.dense_cin, layer.in_share, layer.in_group, self.groups, widths)
        co = _axis(layer.dense_cout, layer.out_share, layer.out_group, self.groups, widths)
        return ci, co

    def raw_ms(self, layer: TableLayer, widths: Mapping[str, int]) -> float:
        """The layer's subgraph as timed alone (interpolated on its grid)."""
        return self.kinds[layer.kind].cost(*self.widths_of(layer, widths))

    def layer_ms(self, layer: TableLayer, widths: Mapping[str, int]) -> float:
        """The layer's share of the whole model's latency: calibrated."""
        ci, co = self.widths_of(layer, widths)
        cal = self.calibration
        return cal.alpha * self.kinds[layer.kind].cost(ci, co) + cal.gamma * layer.activations(ci, co)

    def layer_sum(self, widths: Mapping[str, int]) -> float:
        return sum(self.raw_ms(layer, widths) for layer in self.layers)

    def activations(self, widths: Mapping[str, int]) -> float:
        return sum(layer.activations(*self.widths_of(layer, widths)) for layer in self.layers)

    def predict(self, widths: Mapping[str, int] | None = None) -> float:
        """Predicted end-to-end ms; groups missing from `widths` keep their dense width."""
        widths = widths or {}
        return sum(self.layer_ms(layer, widths) for layer in self.layers) + self.calibration.beta

    def dense_ms(self) -> float:
        return self.predict({})

    def group_ms(self, widths: Mapping[str, int]) -> dict[str, float]:
        """Predicted ms of the layers each group writes (a layer no group writes: its input's group)."""
        out: dict[str, float] = {}
        for layer in self.layers:
            owner = layer.out_group or layer.in_group
            if owner:
                out[owner] = out.get(owner, 0.0) + self.layer_ms(layer, widths)
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
            "calibration": {"alpha": self.calibration.alpha, "beta": self.calibration.beta, "gamma": self.calibration.gamma,
                            "points": list(self.calibration.points),
                            "residuals": [round(r, 4) for r in self.calibration.residuals()]},
            "groups": self.groups,
            "layers": [asdict(layer) for layer in self.layers],
            "kinds": {k: {**asdict(v), "ms": [[round(x, 5) for x in row] for row in v.ms]} for k, v in self.kinds.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LatencyTable":
        check_format(d, TABLE_FORMAT, TABLE_VERSION, "latency table")
        try:
            kinds = {}
            for name, k in d["kinds"].items():
                kinds[name] = LayerKind(k["kind"], tuple(k["ops"]), tuple(k["cin"]), tuple(k["cout"]),
                                        tuple(tuple(row) for row in k["ms"]), bool(k.get("depthwise", False)))
            cal = d["calibration"]
            table = cls(
                key=TableKey(**d["key"]),
                groups={str(k): int(v) for k, v in d["groups"].items()},
                layers=tuple(TableLayer(**layer) for layer in d["layers"]),
                kinds=kinds,
                calibration=Calibration(float(cal.get("alpha", 1.0)), float(cal.get("beta", 0.0)),
                                        float(cal.get("gamma", 0.0)), tuple(cal["points"])),
                machine=dict(d.get("machine", {})),
                notes=tuple(d.get("notes", ())),
                timing=dict(d.get("timing", {})),
            )
            return table if "alpha" in cal else table.calibrated()
        except (KeyError, TypeError, ValueError) as exc:
            raise ShrinkError(f"latency table is incomplete or malformed: {exc!r}") from exc

    def calibrated(self) -> "LatencyTable":
        """The table with its calibration fitted on its points (each: widths and whole_ms); what
        the layer timer writes has the points only."""
        points = tuple({**p, "sum_ms": self.layer_sum(p["widths"]), "activations": self.activations(p["widths"])}
                       for p in self.calibration.points)
        alpha, beta, gamma = fit_calibration(list(points))
        return dataclasses.replace(self, calibration=Calibration(alpha, beta, gamma, points))

    def save(self, path: str | Path) -> None:
        from shrink.fileio import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        from shrink.fileio import read_json

        if not Path(path).is_file():
            raise ShrinkError(f"latency table not found: {path}")
        return cls.from_dict(read_json(path, "latency table"))


def fit_calibration(points: list[dict]) -> tuple[float, float, float]:
    """(alpha, beta, gamma) of whole = alpha * sum_ms + gamma * activations + beta, least squares
    on relative error (each point weighs alike). gamma and beta may be negative: each isolated
    subgraph pays a run call and reorders at its ends that the whole model does not.

    Three models are tried (all three terms; alpha and beta; alpha alone) and the one with the
    smallest leave-one-out error is kept: with a handful of noisy points, more terms can fit the
    noise, and leaving each point out shows it."""
    sums = np.array([p["sum_ms"] for p in points], dtype=float)
    acts = np.array([p["activations"] for p in points], dtype=float)
    whole = np.array([p["whole_ms"] for p in points], dtype=float)
    ones = np.ones_like(sums)
    models = {"full": [sums, acts, ones], "affine": [sums, ones], "proportional": [sums]}
    best, best_error = (float((sums * whole).sum() / (sums**2).sum()), 0.0, 0.0), float("inf")
    for name, cols in models.items():
        if len(points) < len(cols) + 2:
            continue
        errors = []
        for out in range(len(points)):
            keep = np.arange(len(points)) != out
            coef = _lstsq([c[keep] for c in cols], whole[keep])
            errors.append(float(np.dot(coef, [c[out] for c in cols])) / whole[out] - 1)
        error = float(np.sqrt(np.mean(np.square(errors))))
        coef = _lstsq(cols, whole)
        if coef[0] > 0 and error < best_error:
            full = dict(zip(("alpha", "beta", "gamma"), (0.0, 0.0, 0.0)))
            full.update(dict(zip({"full": ("alpha", "gamma", "beta"), "affine": ("alpha", "beta"),
                                  "proportional": ("alpha",)}[name], coef)))
            best, best_error = (full["alpha"], full["beta"], full["gamma"]), error
    return tuple(float(x) for x in best)


def _lstsq(cols: list[np.ndarray], whole: np.ndarray) -> np.ndarray:
    weights = 1.0 / whole
    return np.linalg.lstsq(np.stack([c * weights for c in cols], axis=1), whole * weights, rcond=None)[0]


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
