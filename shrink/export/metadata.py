"""What a deployer needs to know, stored in the ONNX file's metadata_props.

Keys (all values are strings; lists and shapes are JSON):
  input_name, input_shape, input_layout     how to feed the model ("batch" marks a dynamic axis)
  preprocessing                             the deployment contract (shrink.data.preprocessing) as JSON:
                                            resize, crop, colour, scale, mean, std, layout, dtype
  mean, std, classes                        normalization (also in preprocessing) and labels, when known
  source_model, plan_hash, macs, params     provenance (plan_hash only for pruned models)
  precision, exporter, opset, shrink_version
  task, output_names, architecture          a segmenter's or detector's (shrink.tasks): what its
                                            outputs are, in order, and the registry architecture whose
                                            post-processing decodes them; a classifier has one "logits"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shrink import __version__
from shrink.data.preprocessing import PREPROCESSING_KEY, Preprocessing
from shrink.errors import ShrinkError
from shrink.export.config import BATCH_DIM, INPUT_NAME
from shrink.models.dense import output_names
from shrink.param_count import count_params

INPUT_LAYOUT = "NCHW"


@dataclass(frozen=True)
class ModelProvenance:
    """Where a model came from and how big it is; copied into the file's metadata."""

    source: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    params: int
    macs: int | None = None
    plan_hash: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None
    dataset: str | None = None
    preprocessing: Preprocessing | None = None  # what every accuracy figure used
    task: str | None = None  # None: a classifier (shrink.tasks.Task values otherwise)
    output_names: tuple[str, ...] | None = None  # a dense model's outputs, in graph order
    architecture: str | None = None  # a dense model's registry name (its decoding is rebuilt from it)
    architecture_sha256: str | None = None  # a file.py:factory architecture's code: decoding checks it


def count_macs(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> int | None:
    """Multiply-accumulates for one image, counted by torch-pruning's op counter (None if it fails)."""
    try:
        import torch_pruning as tp

        macs, _ = tp.utils.count_ops_and_params(model, torch.zeros(1, *input_shape))
        return int(macs)
    except Exception:  # an op the counter does not know: MACs are informative, not required
        return None


def _plan_fields(source: str) -> dict[str, Any]:
    """plan hash / MACs / params from a pruned run directory's plan.json, when there is one."""
    plan = Path(source) / "plan.json"
    if not plan.is_file():
        return {}
    try:
        data = json.loads(plan.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ShrinkError(f"cannot read {plan}: {exc}") from exc
    fields: dict[str, Any] = {}
    for key in ("plan_hash", "hash", "sha256"):
        if isinstance(data.get(key), str):
            fields["plan_hash"] = data[key]
            break
    after = data.get("after") if isinstance(data.get("after"), dict) else data
    for key in ("macs", "params"):
        if isinstance(after.get(key), int):
            fields[key] = after[key]
    return fields


def provenance_for(loaded, info=None) -> ModelProvenance:
    """Provenance of a shrink.models.LoadedModel. The preprocessing is that of `info` (the DataInfo
    of the real images the file is checked on: what its figures use) or else of the model's card;
    labels come from the card, else from `info`."""
    card = loaded.card
    plan = _plan_fields(loaded.source)
    shape = tuple(loaded.input_shape)
    contract = info.contract if info is not None else (card.contract if card else None)
    return ModelProvenance(
        source=str(loaded.source),
        input_shape=shape,
        params=plan.get("params", count_params(loaded.model)),
        macs=plan.get("macs", count_macs(loaded.model, shape)),
        plan_hash=plan.get("plan_hash"),
        mean=contract.mean if contract else None,
        std=contract.std if contract else None,
        classes=tuple(card.classes) if card else (tuple(info.classes) if info else None),
        dataset=info.name if info is not None else (card.dataset if card else None),
        preprocessing=contract,
        task=loaded.spec.task,
        output_names=output_names(loaded.model),
        architecture=loaded.spec.name if loaded.spec.task else None,
        architecture_sha256=loaded.spec.code_sha256 if loaded.spec.task else None,
    )


def export_metadata(provenance: ModelProvenance, *, precision: str, exporter: str, opset: int,
                    dynamic_batch: bool) -> dict[str, str]:
    batch: Any = BATCH_DIM if dynamic_batch else 1
    meta = {
        "input_name": INPUT_NAME,
        "input_shape": json.dumps([batch, *provenance.input_shape]),
        "input_layout": INPUT_LAYOUT,
        "source_model": provenance.source,
        "params": str(provenance.params),
        "precision": precision,
        "exporter": exporter,
        "opset": str(opset),
        "shrink_version": __version__,
    }
    optional = {
        "macs": provenance.macs,
        "plan_hash": provenance.plan_hash,
        "mean": list(provenance.mean) if provenance.mean is not None else None,
        "std": list(provenance.std) if provenance.std is not None else None,
        "classes": list(provenance.classes) if provenance.classes is not None else None,
        "dataset": provenance.dataset,
        PREPROCESSING_KEY: provenance.preprocessing.to_json() if provenance.preprocessing else None,
        "task": provenance.task,
        "output_names": list(provenance.output_names) if provenance.output_names else None,
        "architecture": provenance.architecture,
        "architecture_sha256": provenance.architecture_sha256,
    }
    for key, value in optional.items():
        if value is not None:
            meta[key] = value if isinstance(value, str) else json.dumps(value)
    return meta
