"""Turn what a user types (a name, a weights file, a card, a pruned directory) into a model."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch.nn as nn

from shrink.errors import ShrinkError
from shrink.fileio import sha256_file
from shrink.models.card import ModelCard, card_path_for, read_card
from shrink.models.code import ModelCode, code_for_record, is_code_name, split_code_name
from shrink.models.references import reference_card
from shrink.models.registry import create_model, default_spec
from shrink.models.source import WEIGHT_SUFFIXES
from shrink.models.spec import ModelSpec
from shrink.models.weights import apply_state_dict, load_state_dict



@dataclass
class LoadedModel:
    model: nn.Module  # in eval mode, on the CPU
    spec: ModelSpec
    source: str  # what the user named
    card: ModelCard | None = None  # preprocessing, labels and provenance, when known
    code: ModelCode | None = None  # the user's model code that built it (file.py:factory models)
    files: tuple[Path, ...] = ()  # every file read to load it: no output may overwrite one
    untrained: bool = False  # a registry architecture without weights: random init, says so everywhere

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.spec.input_shape


UNTRAINED_NOTE = "untrained weights (random init: no --weights given)"


def warn_if_untrained(loaded: LoadedModel, what: str) -> None:
    """One line on stderr before a command measures or ships a model that was never trained."""
    if loaded.untrained:
        print(f"warning: {loaded.source} has {UNTRAINED_NOTE}; {what} means nothing. Give --weights FILE, or a "
              "weights file with its card", file=sys.stderr)


def anchor_path(value: str, base: Path) -> str:
    """A path, or the file of `file.py:factory`, made absolute against `base` (unchanged if absolute)."""
    if is_code_name(value):
        path, factory = split_code_name(value)
        return f"{anchor_path(str(path), base)}:{factory}"
    path = Path(value).expanduser()
    return value if path.is_absolute() else str((base / path).resolve())


def absolute_source(source: str) -> str:
    """A model source that names a file (a weights file or card, a pruned directory, the file of
    `file.py:factory`) with an absolute path, so a record of it reads the same from any directory;
    a registry name (tv:resnet50, fmnist_resnet18) unchanged."""
    return anchor_path(source, Path.cwd()) if is_code_name(source) or Path(source).expanduser().exists() else source


def check_overrides(loaded: LoadedModel, overrides: dict) -> LoadedModel:
    """--num-classes & co. on a model whose card or plan fixes the architecture must agree with it."""
    differ = {k: v for k, v in overrides.items() if getattr(loaded.spec, k) != (tuple(v) if k == "input_size" else v)}
    if differ:
        said = ", ".join(f"{k} {getattr(loaded.spec, k)}" for k in differ)
        raise ShrinkError(f"{loaded.source} fixes its architecture ({said}); leave out "
                          + ", ".join(f"--{k.replace('_', '-')}" for k in differ))
    return loaded


def load_dense_model(name_or_path: str, weights: str | None = None, *, code: ModelCode | None = None,
                     **spec_overrides) -> LoadedModel:
    """A model that is not a pruned directory (shrink.load.load_model reads those): a weights file
    (.safetensors/.pt) or its .json card, a folder with a card, or a registry name with optional
    `weights` (see `shrink models`). `code` is the model code the user trusts."""
    path = Path(name_or_path)
    if path.is_dir():
        for candidate in ("model.json", "pruned.json"):
            if (path / candidate).is_file():
                return check_overrides(_from_card(path / candidate, name_or_path, code), spec_overrides)
        raise ShrinkError(f"{path} is a directory without plan.json or model.json: not a model directory")
    if path.suffix == ".json":
        return check_overrides(_from_card(path, name_or_path, code), spec_overrides)
    reference = reference_card(name_or_path) if weights is None else None
    if reference is not None:  # a built-in name: its trained weights ship with the package
        return check_overrides(_from_card(reference, name_or_path, code), spec_overrides)
    if path.suffix in WEIGHT_SUFFIXES:
        if weights is not None:
            raise ShrinkError("give either a weights file as MODEL or a name with --weights, not both")
        if not path.is_file():
            raise ShrinkError(f"weights file not found: {path}")
        card = card_path_for(path)
        if not card.is_file():
            raise ShrinkError(
                f"no model card {card.name} next to {path}; name the architecture instead: "
                f"NAME --weights {path} (see `shrink models`)"
            )
        return check_overrides(_from_card(card, name_or_path, code), spec_overrides)
    if path.suffix == ".onnx":
        raise ShrinkError(f"{path} is an ONNX file; this command needs a PyTorch model")
    spec = default_spec(name_or_path, **spec_overrides)
    if is_code_name(spec.name) and code is not None:
        spec = replace(spec, code_sha256=code.sha256)  # recorded, so a plan or card can ask for the same file
    model = create_model(spec, code=code)
    files = [code.path] if code is not None else []
    if weights is not None:
        apply_state_dict(model, load_state_dict(weights), source=str(weights))
        files.append(Path(weights))
    return LoadedModel(model=model.eval(), spec=spec, source=name_or_path, code=code, files=tuple(files),
                       untrained=weights is None)


def _from_card(card_path: Path, source: str, code: ModelCode | None) -> LoadedModel:
    card = read_card(card_path)
    weights = card_path.parent / card.weights
    if not weights.is_file():
        raise ShrinkError(f"weights file {weights} named by card {card_path} not found")
    if card.sha256 and sha256_file(weights) != card.sha256:
        raise ShrinkError(f"{weights} does not match the sha256 on its card {card_path} (corrupt or replaced?)")
    spec = card.architecture
    code = code_for_record(f"model card {card_path}", spec.name, spec.code_sha256, code)
    model = create_model(spec, code=code)
    apply_state_dict(model, load_state_dict(weights), source=str(weights))
    files = (card_path, weights) + ((code.path,) if code is not None else ())
    return LoadedModel(model=model.eval(), spec=spec, source=source, card=card, code=code, files=files)
