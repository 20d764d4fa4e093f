"""The run directory: what is in it, when it may be written, and the step cache.

Every step leaves a record in stages/<step>.json: a key (the sha256 of everything its result
depends on: configs, input artifacts' sha256, the torch-shrink version), the sha256 of each file it
wrote, its JSON result and its duration. A rerun reuses a step whose key is unchanged and whose
files are still there, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from shrink import __version__
from shrink.dirlock import LOCK_FILE
from shrink.errors import ShrinkError
from shrink.fileio import check_writable, is_temporary_name, read_json, sha256_file, write_json_atomic
from shrink.pruned_files import PLAN_FILE, WEIGHTS_FILE

RECORD_FORMAT = "torch-shrink/run-step"
DENSE_STEP = "model"  # the one step whose record and files live in the dense directory


@dataclass(frozen=True)
class RunPaths:
    """Where everything of one run goes. `dense` holds the dense baseline: the run directory
    itself, or a directory that several runs share (a sweep exports the dense model once)."""

    root: Path
    dense: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def log(self) -> Path:
        return self.root / "logs" / "run.log"

    @property
    def dense_onnx(self) -> Path:
        return self.dense / "dense.onnx"

    @property
    def plan(self) -> Path:
        return self.root / PLAN_FILE

    @property
    def weights(self) -> Path:
        return self.root / WEIGHTS_FILE

    @property
    def onnx(self) -> Path:
        return self.root / "model.onnx"

    @property
    def int8(self) -> Path:
        return self.root / "model.int8.onnx"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    def base(self, step: str) -> Path:
        return self.dense if step == DENSE_STEP else self.root

    def record(self, step: str) -> Path:
        return self.base(step) / "stages" / f"{step}.json"


# ----------------------------------------------------------------------------- may we write here?


def _contents(root: Path) -> list[Path]:
    """What is in `root`, but for its lock and the temporaries of processes that are gone."""
    return [p for p in root.iterdir() if p.name != LOCK_FILE and not is_temporary_name(p.name)]


def check_out_dir(root: Path, recipe_yaml: str, force: bool) -> str:
    """Whether the run may write into `root`: 'new', 'rerun' (the same recipe: unchanged steps are
    reused) or 'replace' (--force over another recipe's run). Raises before any work otherwise."""
    check_writable(root, directory=True)
    if not root.exists() or not _contents(root):
        return "new"
    recipe = root / "recipe.yaml"
    if recipe.is_file() and recipe.read_bytes() == recipe_yaml.encode("utf-8"):
        return "rerun"
    if not force:
        what = "a run of another recipe" if recipe.is_file() else "files that are not a shrink run"
        raise ShrinkError(f"output directory {root} holds {what}; pass --force to replace it, or choose another --out")
    return "replace"


def check_inputs_outside(root: Path, inputs: Iterable[str | Path], recipe_yaml: str) -> None:
    """Refuse an input file inside the run directory: the run writes there (and --force replaces
    it). The one exception is a rerun of the run's own recipe.yaml, which the run rewrites byte for
    byte."""
    root = root.resolve()
    for named in inputs:
        path = Path(named)
        if not path.is_file() or not path.resolve().is_relative_to(root):
            continue
        if path.resolve() == root / "recipe.yaml" and path.read_bytes() == recipe_yaml.encode("utf-8"):
            continue
        raise ShrinkError(f"{path} is an input of this run but lies inside its output directory {root}, which the run "
                          "writes; move it, or choose another --out")


# ----------------------------------------------------------------------------- the step cache


@dataclass(frozen=True)
class StepRecord:
    step: str
    key: str
    outputs: dict[str, str]  # file name (relative to the step's directory) -> sha256
    result: dict[str, Any]
    seconds: float
    finished_utc: str
    cpu_seconds: float | None = None  # process CPU time, all threads: wall >> cpu / cores means a busy machine
    format: str = RECORD_FORMAT


def step_key(step: str, material: dict[str, Any]) -> str:
    """sha256 of what the step's result depends on, in canonical JSON."""
    canonical = json.dumps({"step": step, "torch-shrink": __version__, **material}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_record(path: Path) -> StepRecord | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path, "step record")
        if data.get("format") != RECORD_FORMAT:
            return None
        return StepRecord(**data)
    except (ShrinkError, TypeError, AttributeError):  # unreadable: the step simply runs again
        return None


def reusable(record: StepRecord | None, key: str, base: Path) -> bool:
    """The record is for these inputs and every file it wrote is still there, unchanged."""
    if record is None or record.key != key:
        return False
    return all((base / name).is_file() and sha256_file(base / name) == digest for name, digest in record.outputs.items())


def write_record(path: Path, record: StepRecord) -> None:
    write_json_atomic(path, asdict(record))


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def hash_outputs(base: Path, names: tuple[str, ...]) -> dict[str, str]:
    """sha256 of the outputs a step wrote (an optional output it did not write is left out)."""
    return {name: sha256_file(base / name) for name in names if (base / name).is_file()}
