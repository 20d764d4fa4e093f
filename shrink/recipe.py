"""Recipes: one YAML file that says what `shrink run` does, validated into the stages' own configs.

A recipe has one section per stage. Every field is optional: a field a recipe leaves out takes the
value of the default recipe (the dataclass defaults with shrink/recipes/fmnist_resnet18.yaml, the
Fashion-MNIST reference run's choices, over them). Sections
reuse the stage configs (PruneConfig, RecoverConfig, ExportConfig, QuantizeConfig, BenchConfig), so
a recipe can say anything the stages accept, and nothing else: an unknown key is an error that
names the closest known key. `--set section.key=value` overrides single fields (YAML-typed).

Relative paths in a recipe file (model.source, model.weights, model.code, data.dir, an
imagefolder:DIR) are relative to the recipe file, so a recipe runs the same from any directory;
paths given with --set are relative to the current directory, like every other argument. The
resolved recipe a run writes holds absolute paths. See docs/recipes.md for every field.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from shrink.bench.config import BenchConfig
from shrink.data.imagefolder import FolderOptions
from shrink.config_io import OMIT_IF_NONE, Record, check_keys, plain
from shrink.errors import ShrinkError, ShrinkValueError
from shrink.export.config import ExportConfig
from shrink.prune.config import PruneConfig
from shrink.quantize.config import QuantizeConfig
from shrink.recover.config import RecoverConfig
from shrink.run.gate import GateConfig

RECIPE_FILE = "recipe.yaml"
# Keys of which a recipe gives at most one; a layer that sets one drops the others from below it.
PRUNE_TARGETS = ("ratio", "target_macs", "target_params", "target_latency")

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"  # example recipes, shipped as package data
DEFAULT_RECIPE_FILE = RECIPES_DIR / "fmnist_resnet18.yaml"  # the default recipe: its choices over the dataclass defaults


@dataclass(frozen=True)
class ModelSection(Record):
    """The trained model to shrink: a weights file with its card, a registry name (tv:NAME,
    timm:NAME, path/file.py:factory) with optional weights and architecture overrides."""

    LABEL = "model keys"

    source: str = "fmnist_resnet18"
    weights: str | None = None
    code: str | None = None  # the Python file a card's file.py:factory architecture needs (shrink.models.code)
    num_classes: int | None = None  # registry names only: architecture overrides
    in_chans: int | None = None
    input_size: tuple[int, int] | None = None
    cifar_stem: bool | None = None
    # What a file.py:factory model predicts (shrink.tasks); tvseg:/tvdet: names imply theirs. Left out
    # of the record when unset, so classifier recipes stay as they were.
    task: str | None = field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ShrinkValueError(f"model.source must be a model name or path, got {self.source!r}")
        if self.weights is not None and not isinstance(self.weights, str):
            raise ShrinkValueError(f"model.weights must be a path, got {self.weights!r}")
        if self.code is not None and not isinstance(self.code, str):
            raise ShrinkValueError(f"model.code must be the path of a Python file, got {self.code!r}")
        if self.input_size is not None:
            object.__setattr__(self, "input_size", tuple(self.input_size))

    def spec_overrides(self) -> dict[str, Any]:
        names = ("num_classes", "in_chans", "input_size", "cifar_stem", "task")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass(frozen=True)
class DataSection(Record):
    """Where the images come from and how many of them each kind of work sees."""

    LABEL = "data keys"

    name: str = "fmnist"  # fmnist | digits | imagefolder:DIR | synthetic (latency only)
    dir: str | None = None  # directory holding the dataset files (Fashion-MNIST IDX)
    eval_images: int | None = 1000  # test images for accuracy (seeded random subset); None: all
    train_images: int | None = 2048  # training images for recovery and calibration; None: all
    # Training images held out of recovery (never the test set) to choose the step that ships; at
    # most a fifth of the training images; 0: none (the last step ships, and the gate says so).
    select_images: int = 500
    seed: int = 0  # draws every subset
    folder: FolderOptions = field(default_factory=FolderOptions)  # imagefolder:DIR only

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ShrinkValueError(f"data.name must be fmnist, digits, imagefolder:DIR or synthetic, got {self.name!r}")
        for name in ("eval_images", "train_images"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ShrinkValueError(f"data.{name} must be a positive integer or null (all), got {value!r}")
        if isinstance(self.select_images, bool) or not isinstance(self.select_images, int) or self.select_images < 0:
            raise ShrinkValueError(f"data.select_images must be an integer >= 0, got {self.select_images!r}")
        if self.seed < 0:
            raise ShrinkValueError(f"data.seed must be >= 0, got {self.seed}")

    @property
    def synthetic(self) -> bool:
        return self.name == "synthetic" or self.name.startswith("synthetic:")


@dataclass(frozen=True)
class Recipe:
    name: str
    model: ModelSection
    data: DataSection
    prune: PruneConfig
    recover: RecoverConfig | None  # None: no recovery at all (latency-only runs)
    export: ExportConfig
    quantize: QuantizeConfig | None  # None: ship fp32, no int8 search
    bench: BenchConfig
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ShrinkValueError(f"recipe name must be a plain file name, got {self.name!r}")
        if self.data.synthetic:
            self._check_synthetic()

    def _check_synthetic(self) -> None:
        """A synthetic run is latency-only: nothing may learn from, or calibrate on, random data by
        accident (caught here, before any work)."""
        if self.recover is not None:
            raise ShrinkValueError("data.name synthetic is for latency only: set recover: null (random images "
                                   "cannot recover accuracy)")
        if self.quantize is not None and not self.quantize.force_random_calibration:
            raise ShrinkValueError("data.name synthetic: int8 would be calibrated on random data; set "
                                   "quantize.force_random_calibration: true (the report flags it) or quantize: null")
        if self.prune.needs_batches:
            raise ShrinkValueError(f"prune.importance {self.prune.importance} needs labeled real data, not synthetic")

    def to_dict(self) -> dict[str, Any]:
        return plain({
            "name": self.name,
            "model": self.model,
            "data": self.data,
            "prune": self.prune,
            "recover": self.recover,
            "export": self.export,
            "quantize": _quantize_dict(self.quantize),
            "bench": self.bench,
            "gate": self.gate,
        })

    def to_yaml(self) -> str:
        header = ("# Resolved recipe: every field, defaults filled in. `shrink run` on this file repeats the run.\n"
                  "# Every field is documented in docs/recipes.md of the torch-shrink source; `shrink recipes fmnist_resnet18`\n"
                  "# prints the default recipe with a comment on each field.\n")
        return header + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False, width=100)


def _quantize_dict(config: QuantizeConfig | None) -> dict[str, Any] | None:
    if config is None:
        return None
    d = config.to_dict()
    d["recipe"].pop("name", None)  # derived from the other fields; not an input
    return d


# ----------------------------------------------------------------------------- merging


def merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """`layer` over `base`, recursively for mappings; a key the layer sets to null becomes null."""
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    _keep_one_prune_target(out, layer)
    return out


def _keep_one_prune_target(merged: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """ratio, target_macs and target_params exclude each other: the layer's choice wins."""
    chosen = layer.get("prune") if isinstance(layer.get("prune"), Mapping) else {}
    given = [k for k in PRUNE_TARGETS if chosen.get(k) is not None]
    if given and isinstance(merged.get("prune"), Mapping):
        merged["prune"] = {**merged["prune"], **{k: None for k in PRUNE_TARGETS if k not in given}}


def parse_override(text: str) -> tuple[list[str], Any]:
    """'prune.ratio=0.3' -> (['prune', 'ratio'], 0.3); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ShrinkValueError(f"--set takes KEY=VALUE (e.g. prune.ratio=0.3), got {text!r}")
    try:
        value = yaml_value(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ShrinkValueError(f"--set {text!r}: the value is not valid YAML: {exc}") from exc
    return [part.strip() for part in key.split(".")], value


def override_layer(overrides: Sequence[str]) -> dict[str, Any]:
    """--set arguments as one nested mapping, in order (a later --set wins)."""
    layer: dict[str, Any] = {}
    for text in overrides:
        path, value = parse_override(text)
        nested: Any = value
        for part in reversed(path):
            nested = {part: nested}
        layer = merge(layer, nested)
    return layer


# ----------------------------------------------------------------------------- building


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads 1e8 as a string; a recipe means the number (YAML 1.2 floats)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def yaml_value(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml_value(text)
    except yaml.YAMLError as exc:
        raise ShrinkValueError(f"{origin} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ShrinkValueError(f"{origin} must be a mapping of sections (model, data, prune, ...), got {type(data).__name__}")
    return data


def example_recipe(name: str) -> str:
    """The text of a shipped example recipe, by name (file stem)."""
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        raise ShrinkValueError(f"no example recipe {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
                               + f" (shipped: {', '.join(names)})")
    return (RECIPES_DIR / f"{name}.yaml").read_text(encoding="utf-8")


def default_recipe_text() -> str:
    return DEFAULT_RECIPE_FILE.read_text(encoding="utf-8")


def dataclass_defaults() -> dict[str, Any]:
    """Every section at its dataclass defaults (no name): what the default recipe file is read over,
    so a default lives in its dataclass alone and the file holds only the demo's own choices."""
    base = Recipe(name="defaults", model=ModelSection(), data=DataSection(), prune=PruneConfig(),
                  recover=RecoverConfig(), export=ExportConfig(), quantize=QuantizeConfig(), bench=BenchConfig())
    return {key: value for key, value in base.to_dict().items() if key != "name"}


def default_recipe_dict() -> dict[str, Any]:
    return merge(dataclass_defaults(), _read_yaml(default_recipe_text(), "the default recipe"))


def _is_path_like(value: str) -> bool:
    """A recipe value that names a file or directory (not a registry name such as tv:resnet50)."""
    from shrink.models.source import ModelSource

    return ModelSource.parse(value).names_file


def anchor_paths(layer: dict[str, Any], base: Path) -> dict[str, Any]:
    """The paths of a recipe layer made absolute against `base` (the recipe file's directory):
    model.source (when it is a path or file.py:factory), weights, code; data.dir; imagefolder:DIR."""
    from shrink.models.loading import anchor_path

    layer = {k: dict(v) if isinstance(v, Mapping) else v for k, v in layer.items()}
    model, data = layer.get("model"), layer.get("data")
    if isinstance(model, dict):
        source = model.get("source")
        if isinstance(source, str) and _is_path_like(source):
            model["source"] = anchor_path(source, base)
        for key in ("weights", "code"):
            if isinstance(model.get(key), str):
                model[key] = anchor_path(model[key], base)
    if isinstance(data, dict):
        if isinstance(data.get("dir"), str):
            data["dir"] = anchor_path(data["dir"], base)
        name = data.get("name")
        if isinstance(name, str) and name.startswith("imagefolder:"):
            data["name"] = "imagefolder:" + anchor_path(name.split(":", 1)[1], base)
    return layer


def _section(origin: str, name: str, build, value):
    """Build one section, prefixing any error with where it came from."""
    try:
        return build(value)
    except (ShrinkValueError, TypeError, ValueError) as exc:
        message = str(exc).replace("__init__() got an ", "")
        raise ShrinkValueError(f"{origin}: {name}: {message}") from exc


def _optional(build):
    """A section that may be null (the stage is off)."""
    return lambda value: None if value is None else build(value)


def recipe_from_dict(data: Mapping[str, Any], origin: str = "recipe") -> Recipe:
    """A complete, validated Recipe from a full recipe mapping (defaults already merged in)."""
    check_keys(data, Recipe, origin)
    missing = [f.name for f in dataclasses.fields(Recipe) if f.name not in data]
    if missing:
        raise ShrinkValueError(f"{origin}: missing sections {', '.join(missing)}")
    sections = {
        "model": ModelSection.from_dict,
        "data": lambda v: DataSection.from_dict({**v, "folder": v.get("folder") or {}}),
        "prune": PruneConfig.from_dict,
        "recover": _optional(RecoverConfig.from_dict),
        "export": ExportConfig.from_dict,
        "quantize": _optional(QuantizeConfig.from_dict),
        "bench": BenchConfig.from_dict,
        "gate": GateConfig.from_dict,
    }
    built = {name: _section(origin, name, build, data[name]) for name, build in sections.items()}
    return _section(origin, "recipe", lambda _: Recipe(name=str(data["name"]), **built), None)


def load_recipe(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Recipe:
    """The default recipe, with the file at `path` over it (if given), with `overrides` over that."""
    resolved = default_recipe_dict()
    origin = "the default recipe"
    if path is not None:
        path = Path(path)
        if not path.is_file() and not path.suffix and (RECIPES_DIR / f"{path}.yaml").is_file():
            path = RECIPES_DIR / f"{path}.yaml"  # a shipped example by name: `shrink run synthetic_latency`
        if not path.is_file():
            raise ShrinkError(f"recipe file not found: {path} (`shrink recipes` lists the shipped examples)")
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ShrinkError(f"recipe {path} is not a text file (not UTF-8 at byte {exc.start}); give a YAML "
                              "recipe") from exc
        except OSError as exc:
            raise ShrinkError(f"cannot read recipe {path}: {exc.strerror or exc}") from exc
        layer = _read_yaml(text, origin)
        check_keys(layer, Recipe, origin)
        layer = anchor_paths(layer, path.resolve().parent)
        layer.setdefault("name", path.stem)  # a file's own run never lands in the default's run dir
        resolved = merge(resolved, layer)
    if overrides:
        layer = override_layer(overrides)
        check_keys(layer, Recipe, "--set")
        layer = anchor_paths(layer, Path.cwd())  # typed paths are relative to where they were typed
        resolved = merge(resolved, layer)
        origin = f"{origin} with --set"
    return recipe_from_dict(resolved, origin)
