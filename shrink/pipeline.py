"""`run(recipe) -> RunResult`: model -> prune -> recover -> export -> quantize -> verify -> bench ->
report, into one run directory.

The pipeline only chains the steps of shrink.run.steps (each a plain call into a stage package)
and skips a step whose record says it already ran on the same inputs (see shrink.run.rundir).
Everything that can be wrong with the input (recipe, output directory, model/data mismatch) is
found before the first step starts; every file is written atomically.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shrink.dirlock import directory_lock
from shrink.fileio import check_writable, sweep_stale_temporaries, write_bytes_atomic, write_text_atomic
from shrink.models import UNTRAINED_NOTE
from shrink.recipe import Recipe
from shrink.run.inputs import RunInputs, load_inputs, model_identity
from shrink.run.progress import Reporter, ReporterHandler
from shrink.run.rundir import (
    RunPaths,
    StepRecord,
    check_inputs_outside,
    check_out_dir,
    hash_outputs,
    now_utc,
    read_record,
    reusable,
    step_key,
    write_record,
)
from shrink.run.steps import STEPS, Step, StepContext

STAGES = tuple(STEPS)
DEFAULT_RUNS_DIR = Path("runs")
SHRINK_PACKAGE_DIR = str(Path(__file__).resolve().parent)
MODEL_CODE_DIR = "model_code"  # a copy of the user's model code, byte for byte, in the run directory


@dataclass(frozen=True)
class RunOptions:
    out: Path | None = None  # default: runs/<recipe name>
    force: bool = False  # replace a run directory that holds another recipe's run
    quiet: bool = False
    dense_dir: Path | None = None  # where the dense baseline lives; a sweep shares one
    last_stage: str = "report"  # stop after this stage
    inputs: tuple[Path, ...] = ()  # files read to make the recipe (the recipe file): never written over

    def __post_init__(self) -> None:
        if self.last_stage not in STAGES:
            raise ValueError(f"last_stage must be one of {', '.join(STAGES)}, got {self.last_stage!r}")


@dataclass(frozen=True)
class StageRun:
    name: str
    seconds: float  # in this invocation (near 0 when reused)
    reused: bool
    summary: str


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    stages: tuple[StageRun, ...]
    summary: tuple[str, ...]  # the closing lines (report path first)
    seconds: float
    records: dict[str, StepRecord] = field(repr=False, default_factory=dict)

    @property
    def report(self) -> Path:
        return self.run_dir / "report.md"

    @property
    def warnings(self) -> tuple[str, ...]:
        """The ship gate's warnings (shrink.run.gate): what `--strict` fails on."""
        return tuple(self.records["report"].result.get("gate_warnings", [])) if "report" in self.records else ()

    def to_dict(self) -> dict[str, Any]:
        done = "report" in self.records
        return {
            "run_dir": str(self.run_dir),
            "report": str(self.report) if done else None,
            "report_html": str(self.run_dir / "report.html") if done else None,
            "manifest": str(self.run_dir / "manifest.json") if done else None,
            "seconds": round(self.seconds, 2),
            "stages": [{"name": s.name, "seconds": round(s.seconds, 2), "reused": s.reused, "summary": s.summary}
                       for s in self.stages],
            "summary": list(self.summary),
            "numbers": self.records["report"].result.get("numbers") if done else None,
            "warnings": list(self.warnings),
        }


def run_paths(recipe: Recipe, options: RunOptions) -> RunPaths:
    root = Path(options.out) if options.out is not None else DEFAULT_RUNS_DIR / recipe.name
    return RunPaths(root=root, dense=Path(options.dense_dir) if options.dense_dir else root)


def run(recipe: Recipe, options: RunOptions = RunOptions(), *, inputs: RunInputs | None = None) -> RunResult:
    """Run `recipe` (see the module docstring). `inputs` lets a sweep load the model and data once."""
    start = time.perf_counter()
    paths = run_paths(recipe, options)
    recipe_yaml = recipe.to_yaml()
    check_writable(paths.root, directory=True)  # before the lock creates the directory
    reporter = Reporter(options.quiet)
    # One run per directory: a second one is refused with the first one's PID.
    with directory_lock(paths.root, "run", on_stale=reporter.line):
        return _run_locked(recipe, options, paths, recipe_yaml, reporter, inputs, start)


def _run_locked(recipe: Recipe, options: RunOptions, paths: RunPaths, recipe_yaml: str, reporter: Reporter,
                inputs: RunInputs | None, start: float) -> RunResult:
    mode = check_out_dir(paths.root, recipe_yaml, options.force)  # before any work
    read = [*options.inputs, *model_identity(recipe.model)["files"]]  # the recipe file, weights, card, code
    for directory in {paths.root, paths.dense}:
        check_inputs_outside(directory, read, recipe_yaml)
        sweep_stale_temporaries(directory)  # what a killed run left behind
    reporter.line(f"shrink run: recipe {recipe.name} -> {paths.root}" + {
        "new": "", "rerun": " (rerun: unchanged stages are reused)", "replace": " (--force: replacing another run)"}[mode])
    if inputs is None:
        reporter.say(f"loading {recipe.model.source} and {recipe.data.name}, checking that they match")
        inputs = load_inputs(recipe)  # model/data mismatches are errors here, before any write
    if inputs.dense.untrained:
        reporter.line(f"warning: {recipe.model.source} has {UNTRAINED_NOTE}; the report's accuracy means nothing "
                      "(set model.weights)")
    paths.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths.recipe, recipe_yaml)
    if inputs.dense.code is not None:  # the run reloads from anywhere: --model-code DIR/model_code/FILE
        write_bytes_atomic(paths.root / MODEL_CODE_DIR / inputs.dense.code.path.name, inputs.dense.code.source)
    reporter.attach_log(paths.log)
    logger, handler = logging.getLogger("shrink"), ReporterHandler(reporter)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False  # shown once, by the reporter, and logged
    try:
        stages, records = _run_steps(StepContext(recipe, paths, inputs, reporter), options.last_stage)
        summary = _closing(paths, records)
        for line in summary:  # the caller prints these; the log keeps them too
            reporter.log_only(line)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        reporter.close()
    return RunResult(paths.root, tuple(stages), tuple(summary), time.perf_counter() - start, records)


def _run_steps(ctx: StepContext, last_stage: str) -> tuple[list[StageRun], dict[str, StepRecord]]:
    stages, records = [], {}
    names = STAGES[: STAGES.index(last_stage) + 1]
    for index, name in enumerate(names, start=1):
        step = STEPS[name](ctx, records)
        t0 = time.perf_counter()
        record, reused = _execute(step, ctx, index, len(names))
        seconds = time.perf_counter() - t0
        summary = step.summary(record.result)
        ctx.reporter.say(f"{summary}" + ("" if reused else f"  ({seconds:.1f} s)"))
        records[name] = record
        stages.append(StageRun(name, seconds, reused, summary))
    return stages, records


def _execute(step: Step, ctx: StepContext, index: int, total: int) -> tuple[StepRecord, bool]:
    """The step's record: reused when its key and files are unchanged, else computed and written."""
    key = step_key(step.name, step.material)
    record_path = ctx.paths.record(step.name)
    base = ctx.paths.base(step.name)
    previous = read_record(record_path)
    if reusable(previous, key, base):
        ctx.reporter.stage(index, total, step.name, "unchanged since the last run, reused")
        return previous, True
    ctx.reporter.stage(index, total, step.name, step.what)
    t0, cpu0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = step.compute()
    result = {**result, "warnings": _report_warnings(caught, ctx.reporter)}
    record = StepRecord(step=step.name, key=key, outputs=hash_outputs(base, step.outputs), result=result,
                        seconds=time.perf_counter() - t0, finished_utc=now_utc(),
                        cpu_seconds=time.process_time() - cpu0)
    write_record(record_path, record)
    return record, False


def _report_warnings(caught: list[warnings.WarningMessage], reporter: Reporter) -> list[str]:
    """Warnings raised by torch-shrink itself are shown and kept in the step record; the ones from
    libraries (torch.onnx deprecations and the like) go to the log only."""
    ours = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if str(w.filename).startswith(SHRINK_PACKAGE_DIR) and issubclass(w.category, UserWarning):
            reporter.say(f"warning: {w.message}")
            ours.append(str(w.message))
        else:
            reporter.log_only(text.splitlines()[0])
    return list(dict.fromkeys(ours))


def _closing(paths: RunPaths, records: dict[str, StepRecord]) -> list[str]:
    if "report" not in records:
        return [f"run directory: {paths.root} (stopped before the report)"]
    return [f"report: {paths.report_md}", *records["report"].result["summary"]]
