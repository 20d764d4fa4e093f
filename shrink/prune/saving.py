"""Saving and loading pruned models without pickled code.

A pruned model directory holds:
- plan.json: the plan (JSON), the ModelSpec that rebuilds the dense architecture from the
  registry, the model card (mean/std/classes) when there was one, the exactness report, and a
  torch-pruning-compatible pruning history;
- pruned.safetensors: the pruned weights.

Loading rebuilds the dense architecture from the registry, replays the plan (no tracing), checks
every width, and loads the weights with the safe loader (safetensors; never unpickling code).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch.nn as nn

from shrink.errors import ShrinkError
from shrink.fileio import check_not_inputs, check_writable, read_json, sha256_file, write_json_atomic
from shrink.models import LoadedModel, ModelCard, ModelSpec, apply_state_dict, create_model, load_state_dict, save_state_dict
from shrink.models.code import ModelCode, code_for_record
from shrink.models.loading import absolute_source
from shrink.prune.apply import ChannelTracker, apply, check_widths
from shrink.prune.plan import PLAN_FORMAT, PLAN_VERSION, PrunePlan
from shrink.prune.unstructured import SparsityReport
from shrink.pruned_files import PLAN_FILE, WEIGHTS_FILE



def check_output_dir(directory: str | Path, force: bool = False, inputs: tuple[str | Path, ...] = ()) -> Path:
    """Refuse, before any work and without creating anything, an output directory that is a file,
    is not empty (unless `force`), cannot be written, or would put plan.json or the weights over an
    input."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ShrinkError(f"output path {directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ShrinkError(f"output directory {directory} is not empty; choose another or pass --force")
    check_writable(directory, directory=True)
    check_not_inputs([directory / PLAN_FILE, directory / WEIGHTS_FILE], inputs)
    return directory


def torch_pruning_history(plan: PrunePlan) -> list[list[Any]]:
    """[root name, True, root channels in the numbering of that moment] per group, in order: the
    format of torch-pruning's DependencyGraph.load_pruning_history."""
    tracker, history = ChannelTracker(), []
    for step in plan.steps:
        for group in step.groups:
            key = (group.root, "out")
            history.append([group.root, True, tracker.to_current(key, group.removed)])
            for layer in group.layers:
                tracker.remove((layer.name, layer.axis), layer.removed)
    return history


def save_pruned(
    directory: str | Path,
    model: nn.Module,
    result: PrunePlan | SparsityReport,
    spec: ModelSpec,
    *,
    card: ModelCard | None = None,
    source: str = "",
    source_weights: str | Path | None = None,
    verification: dict[str, Any] | None = None,
    force: bool = False,
    inputs: tuple[str | Path, ...] = (),
) -> Path:
    """Write plan.json and pruned.safetensors into `directory` (atomically, never over `inputs`).
    `source_weights`, the dense weights a registry-named `source` was loaded with, is recorded
    (absolute, with its sha256) so the dense model can be rebuilt later as the teacher."""
    directory = check_output_dir(directory, force, inputs)
    created = not directory.exists()
    weights = directory / WEIGHTS_FILE
    try:
        save_state_dict(model, weights)
        document = _document(result, spec, card, source, verification)
        if source_weights is not None:
            document["source_weights"] = str(Path(source_weights).resolve())
            document["source_weights_sha256"] = sha256_file(source_weights)
        document["weights"] = WEIGHTS_FILE
        document["weights_sha256"] = sha256_file(weights)
        write_json_atomic(directory / PLAN_FILE, document)  # last: until it exists, nothing loads from here
    except BaseException:
        if created:  # a directory this call made holds no half of a model afterwards
            weights.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    return directory


def _document(result, spec, card, source, verification) -> dict[str, Any]:
    head = {"model": spec.to_dict(), "card": card.to_dict() if card else None, "source": absolute_source(source)}
    if isinstance(result, PrunePlan):
        body = result.to_dict()
        body["plan_hash"] = result.digest()
        body["torch_pruning_history"] = torch_pruning_history(result)
    else:
        body = {"format": PLAN_FORMAT, "version": PLAN_VERSION, **result.to_dict()}
    return {**body, **head, "verification": verification}


def read_plan(directory: str | Path) -> PrunePlan:
    return PrunePlan.from_dict(read_json(Path(directory) / PLAN_FILE, "prune plan"))


def load_pruned(directory: str | Path, *, code: ModelCode | None = None) -> LoadedModel:
    """Rebuild a pruned model from its directory: registry architecture + plan replay + weights.
    A plan whose model is built by Python code needs that code from the user (`code`, checked
    against the sha256 the plan recorded); the plan alone never makes code run."""
    directory = Path(directory)
    document = read_json(directory / PLAN_FILE, "prune plan")
    if document.get("format") != PLAN_FORMAT:
        raise ShrinkError(f"{directory / PLAN_FILE} is not a torch-shrink prune plan")
    try:
        spec = ModelSpec.from_dict(document["model"])
        card = ModelCard.from_dict(document["card"]) if document.get("card") else None
    except (KeyError, TypeError) as exc:
        raise ShrinkError(f"{directory / PLAN_FILE} lacks the model spec needed to rebuild it: {exc!r}") from exc
    weights = directory / document.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise ShrinkError(f"weights file {weights} named by {directory / PLAN_FILE} not found")
    if document.get("weights_sha256") and sha256_file(weights) != document["weights_sha256"]:
        raise ShrinkError(f"{weights} does not match the sha256 in {PLAN_FILE} (corrupt or replaced?)")
    code = code_for_record(f"the pruned model {directory}", spec.name, spec.code_sha256, code)
    model = create_model(spec, code=code).eval()
    if document.get("mode", "structured") == "structured":
        plan = PrunePlan.from_dict(document)
        model = apply(model, plan)
        check_widths(model, plan, "after")
    apply_state_dict(model, load_state_dict(weights), source=str(weights))
    files = (directory / PLAN_FILE, weights) + ((code.path,) if code is not None else ())
    return LoadedModel(model=model.eval(), spec=spec, source=str(directory), card=card, code=code, files=files)
