"""`shrink sweep`: one recipe at several pruning ratios (and fp32 and/or int8), then one interleaved
latency run over every resulting file, a Pareto table and plot of accuracy, latency and size.

Reused across points: the model and data are loaded once; the dense model is evaluated and
exported once (DIR/dense/), and every point calibrates int8 on the same training images. Each point
is a normal run directory (DIR/ratio-0.50/) stopped after verify, so a rerun reuses its steps.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from shrink.candidates import Candidate
from shrink.dirlock import directory_lock
from shrink.errors import ShrinkError, ShrinkValueError
from shrink.fileio import write_json_atomic
from shrink.pipeline import DEFAULT_RUNS_DIR, RunOptions, RunResult, run
from shrink.recipe import Recipe
from shrink.run.inputs import load_inputs, model_identity
from shrink.run.progress import Reporter
from shrink.run.rundir import check_inputs_outside, check_out_dir

PRECISIONS = ("fp32", "int8")
DENSE = Candidate.DENSE_FP32.value


@dataclass(frozen=True)
class SweepOptions:
    ratios: tuple[float, ...] = (0.3, 0.5, 0.7)
    precisions: tuple[str, ...] = PRECISIONS
    out: Path | None = None  # default: runs/<recipe name>-sweep
    force: bool = False
    quiet: bool = False
    inputs: tuple[Path, ...] = ()  # files read to make the recipe (the recipe file): never written over

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", tuple(sorted(set(float(r) for r in self.ratios))))
        if not self.ratios:
            raise ShrinkValueError("a sweep needs at least one ratio")
        bad = [r for r in self.ratios if not 0.0 < r < 1.0]
        if bad:
            raise ShrinkValueError(f"every ratio must be in (0, 1); got {', '.join(map(str, bad))}")
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or not self.precisions:
            raise ShrinkValueError(f"precisions must be fp32 and/or int8; got {', '.join(self.precisions) or 'none'}")


@dataclass(frozen=True)
class SweepPoint:
    name: str  # "dense fp32", "r0.50 fp32", "r0.50 int8"
    ratio: float | None  # None for the dense model
    precision: str
    file: str | None  # relative to the sweep directory; None when the file was not made
    macs: int
    size_bytes: int | None = None
    accuracy: float | None = None  # top-1 %, onnxruntime
    p50_ms: float | None = None
    p90_ms: float | None = None
    ci_low_ms: float | None = None
    ci_high_ms: float | None = None
    speedup: float | None = None  # against the dense model
    frontier: bool = False
    note: str | None = None


@dataclass(frozen=True)
class SweepResult:
    sweep_dir: Path
    points: tuple[SweepPoint, ...]
    summary: tuple[str, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"sweep_dir": str(self.sweep_dir), "report": str(self.sweep_dir / "sweep.md"),
                "points": [dataclasses.asdict(p) for p in self.points], "summary": list(self.summary),
                "seconds": round(self.seconds, 2)}


# ----------------------------------------------------------------------------- Pareto


def dominates(a: SweepPoint, b: SweepPoint) -> bool:
    """a is at least as good as b on accuracy, latency and size, and better on one. Without
    accuracy (synthetic data) only latency and size count."""
    acc_a, acc_b = a.accuracy or 0.0, b.accuracy or 0.0
    ge = acc_a >= acc_b and a.p50_ms <= b.p50_ms and a.size_bytes <= b.size_bytes
    gt = acc_a > acc_b or a.p50_ms < b.p50_ms or a.size_bytes < b.size_bytes
    return ge and gt


def mark_frontier(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """Points with a file and measurements are on the frontier when nothing dominates them."""
    measured = [p for p in points if p.file and None not in (p.p50_ms, p.size_bytes)]
    return [dataclasses.replace(p, frontier=p in measured and not any(dominates(q, p) for q in measured if q is not p))
            for p in points]


# ----------------------------------------------------------------------------- running


def point_recipe(recipe: Recipe, ratio: float, precisions: tuple[str, ...]) -> Recipe:
    prune = dataclasses.replace(recipe.prune, ratio=ratio, target_macs=None, target_params=None)
    quantize = recipe.quantize if "int8" in precisions else None
    return dataclasses.replace(recipe, name=f"{recipe.name}-r{ratio:.2f}", prune=prune, quantize=quantize)


def point_dir(root: Path, ratio: float) -> Path:
    return root / f"ratio-{ratio:.2f}"


def _check_dirs(root: Path, recipes: dict[float, Recipe], force: bool) -> None:
    """Every directory the sweep will write is usable, before any work."""
    if root.exists() and not root.is_dir():
        raise ShrinkError(f"output path {root} is a file, not a directory; choose another --out")
    for ratio, recipe in recipes.items():
        check_out_dir(point_dir(root, ratio), recipe.to_yaml(), force)


def sweep(recipe: Recipe, options: SweepOptions) -> SweepResult:
    start = time.perf_counter()
    if "int8" in options.precisions and recipe.quantize is None:
        raise ShrinkValueError("the recipe has quantize: null, so there is no int8 to sweep; use --precisions fp32")
    root = Path(options.out) if options.out else DEFAULT_RUNS_DIR / f"{recipe.name}-sweep"
    recipes = {r: point_recipe(recipe, r, options.precisions) for r in options.ratios}
    _check_dirs(root, recipes, options.force)
    reporter = Reporter(options.quiet)
    with directory_lock(root, "sweep", on_stale=reporter.line):  # one sweep per directory
        check_inputs_outside(root, [*options.inputs, *model_identity(recipe.model)["files"]], "")
        return _sweep_locked(recipe, options, root, recipes, reporter, start)


def _sweep_locked(recipe: Recipe, options: SweepOptions, root: Path, recipes: dict[float, Recipe],
                  reporter: Reporter, start: float) -> SweepResult:
    inputs = load_inputs(recipe)
    runs = {}
    for i, (ratio, point) in enumerate(recipes.items(), start=1):
        reporter.line(f"== sweep point {i}/{len(recipes)}: ratio {ratio:.2f}")
        runs[ratio] = run(point, RunOptions(out=point_dir(root, ratio), force=options.force, quiet=options.quiet,
                                            dense_dir=root / "dense", last_stage="verify", inputs=options.inputs),
                          inputs=inputs)
    reporter.line(f"== timing {DENSE} and every point interleaved")
    points, bench = _measure(root, runs, options.precisions, recipe, reporter)
    points = mark_frontier(points)
    from shrink.report import sweep_report, write_report

    title, blocks = sweep_report.build(recipe.name, points, bench, inputs.data, options.precisions,
                                       metric=inputs.dense.spec.predicts.metric)
    files = write_report(root, "sweep", title, blocks)
    write_json_atomic(root / "sweep.json", {"recipe": recipe.to_dict(), "ratios": list(options.ratios),
                                            "precisions": list(options.precisions),
                                            "points": [dataclasses.asdict(p) for p in points], "bench": bench,
                                            "files": files})
    summary = _summary(root, points)
    return SweepResult(root, tuple(points), tuple(summary), time.perf_counter() - start)


def point_name(ratio: float, precision: str) -> str:
    """How the sweep's table, plot and bench name a point: "r0.50 int8"."""
    return f"r{ratio:.2f} {precision}"


@dataclass(frozen=True)
class SweepFile:
    """One file the sweep times: the dense model, or a point at one precision."""

    name: str
    ratio: float | None  # None for the dense model
    precision: str
    path: Path | None  # None when the point's file was not made (int8 measured not worth it)
    verified: dict[str, Any]  # the verify step's entry for the file (size, accuracy)


def _files(root: Path, runs: dict[float, RunResult], precisions) -> list[SweepFile]:
    """The dense model and every point's file at every precision."""
    first = next(iter(runs.values()))
    dense_entry = next(f for f in first.records["verify"].result["files"] if f["candidate"] == DENSE)
    rows = [SweepFile(DENSE, None, "fp32", root / "dense" / "dense.onnx", dense_entry)]
    for ratio, result in runs.items():
        verified = {f["candidate"]: f for f in result.records["verify"].result["files"]}
        for precision in precisions:
            entry = verified.get(Candidate.pruned(precision))
            path = result.run_dir / entry["file"] if entry else None
            rows.append(SweepFile(point_name(ratio, precision), ratio, precision, path, entry or {}))
    return rows


def _measure(root: Path, runs: dict[float, RunResult], precisions, recipe: Recipe, reporter: Reporter):
    from shrink.bench import OnnxCandidate, run_bench

    rows = _files(root, runs, precisions)
    candidates = [OnnxCandidate(str(row.path), row.name) for row in rows if row.path is not None]
    bench = run_bench(candidates, recipe.bench, progress=reporter.detail).to_dict()
    write_json_atomic(root / "bench.json", bench)
    timed = {c["label"]: c for c in bench["candidates"]}
    macs = {ratio: r.records["prune"].result["plan"]["after"]["macs"] for ratio, r in runs.items()}
    dense_macs = next(iter(runs.values())).records["prune"].result["plan"]["before"]["macs"]
    points = []
    for row in rows:
        point = SweepPoint(row.name, row.ratio, row.precision, None, dense_macs if row.ratio is None else macs[row.ratio])
        if row.path is None:
            quantize = runs[row.ratio].records["quantize"].result
            points.append(dataclasses.replace(point, note=f"int8 not shipped: {quantize['reason']}"))
            continue
        lat = timed[row.name]["latency"]
        points.append(dataclasses.replace(
            point, file=str(row.path.relative_to(root)), size_bytes=row.verified["size_bytes"],
            accuracy=row.verified["accuracy"], p50_ms=lat["p50_ms"], p90_ms=lat["p90_ms"],
            ci_low_ms=lat["median_ci_low_ms"], ci_high_ms=lat["median_ci_high_ms"],
            speedup=(timed[row.name].get("speedup") or {}).get("ratio", 1.0)))
    return points, bench


def _summary(root: Path, points: list[SweepPoint]) -> list[str]:
    frontier = [p.name for p in points if p.frontier]
    return [f"report: {root / 'sweep.md'}",
            f"{sum(1 for p in points if p.file)} points measured; Pareto frontier: {', '.join(frontier) or 'none'}"]
