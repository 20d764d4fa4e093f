"""Recipes: YAML in and out, defaults, --set, and every kind of bad input as a one-line error."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from shrink.config_io import known_keys
from shrink.errors import ShrinkValueError
from shrink.recipe import (
    DEFAULT_RECIPE_FILE,
    Recipe,
    dataclass_defaults,
    load_recipe,
    override_layer,
    recipe_from_dict,
    yaml_value,
)

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "shrink" / "recipes").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "my.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def field_paths(cls=Recipe, prefix: str = "") -> list[str]:
    """Every dotted field path of a recipe (sections and their fields, recursively)."""
    out = []
    for key, inner in known_keys(cls).items():
        out.append(prefix + key)
        if inner is not None:
            out += field_paths(inner, f"{prefix}{key}.")
    return out


# ----------------------------------------------------------------------------- defaults and files


def test_default_recipe_is_the_reference_demo():
    recipe = load_recipe()
    assert recipe.name == "fmnist-resnet18"
    assert recipe.model.source == "fmnist_resnet18"  # the registry name: its weights ship in the package
    assert recipe.prune.ratio == 0.5
    assert recipe.recover.distill is not None and recipe.recover.train.epochs == 1
    assert recipe.quantize.mode == "auto"
    assert recipe.bench.provider == "cpu"
    # bounded work, so the demo fits in minutes on 2 cores
    assert recipe.data.eval_images <= 2000 and recipe.data.train_images <= 4096


def test_the_default_recipe_is_the_shipped_file():
    assert DEFAULT_RECIPE_FILE == REPO / "shrink" / "recipes" / "fmnist_resnet18.yaml"
    assert load_recipe(DEFAULT_RECIPE_FILE) == load_recipe()
    assert load_recipe("fmnist_resnet18") == load_recipe()  # a shipped example by name


def restated_defaults(layer, defaults, prefix=""):
    """Dotted paths where a recipe layer sets a field to the value its dataclass already defaults to."""
    out = []
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(defaults.get(key), dict):
            out += restated_defaults(value, defaults[key], f"{prefix}{key}.")
        elif key in defaults and defaults[key] == value:
            out.append(prefix + key)
    return out


def test_the_default_recipe_file_holds_only_choices():
    """A default lives in its dataclass alone: the file restating one could drift from it unseen."""
    layer = yaml_value(DEFAULT_RECIPE_FILE.read_text(encoding="utf-8"))
    assert restated_defaults(layer, dataclass_defaults()) == []
    assert restated_defaults({"prune": {"importance": "l2"}}, dataclass_defaults()) == ["prune.importance"]


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_example_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert recipe.to_yaml()


def test_synthetic_example_is_labeled_latency_only():
    recipe = load_recipe(REPO / "shrink" / "recipes" / "synthetic_latency.yaml")
    assert recipe.data.synthetic and recipe.recover is None
    assert recipe.quantize.force_random_calibration
    assert "LATENCY ONLY" in (REPO / "shrink" / "recipes" / "synthetic_latency.yaml").read_text()


def test_resolved_recipe_round_trips():
    recipe = load_recipe(overrides=["prune.ratio=0.3", "recover.distill=null", "quantize=null"])
    again = recipe_from_dict(yaml_value(recipe.to_yaml()))
    assert again == recipe


def test_a_file_overrides_the_defaults_field_by_field(tmp_path):
    path = write(tmp_path, "prune:\n  ratio: 0.25\nrecover:\n  train:\n    epochs: 3\n")
    recipe = load_recipe(path)
    assert recipe.name == "my"  # named after the file, never the default's run directory
    assert recipe.prune.ratio == 0.25 and recipe.prune.importance == "l2"
    assert recipe.recover.train.epochs == 3 and recipe.recover.train.batch_size == 64


def test_a_null_section_turns_a_stage_off(tmp_path):
    recipe = load_recipe(write(tmp_path, "recover: null\nquantize: null\n"))
    assert recipe.recover is None and recipe.quantize is None


# ----------------------------------------------------------------------------- --set


def test_set_values_are_yaml_typed():
    recipe = load_recipe(overrides=["prune.ratio=0.3", "recover.train=null", "recover.distill=null",
                                    "quantize.recipe.per_channel=false",
                                    "model.input_size=[8, 8]", "data.eval_images=null"])
    assert recipe.prune.ratio == 0.3
    assert recipe.recover.train is None
    assert recipe.quantize.recipe.per_channel is False
    assert recipe.model.input_size == (8, 8)
    assert recipe.data.eval_images is None


def test_set_reads_exponents_as_numbers():
    recipe = load_recipe(overrides=["prune.target_macs=1e8"])
    assert recipe.prune.target_macs == 1e8
    assert recipe.prune.ratio is None  # a target replaces the default ratio instead of clashing with it


def test_later_set_wins():
    assert override_layer(["prune.ratio=0.3", "prune.ratio=0.4"])["prune"]["ratio"] == 0.4


def test_set_needs_key_equals_value():
    with pytest.raises(ShrinkValueError, match="KEY=VALUE"):
        load_recipe(overrides=["prune.ratio"])


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text, message",
    [
        ("prun:\n  ratio: 0.3\n", r"unknown key 'prun'; did you mean prune\?"),
        ("prune:\n  ratoi: 0.3\n", r"unknown key 'prune.ratoi'; did you mean prune.ratio\?"),
        ("recover:\n  train:\n    epoch: 3\n", r"'recover.train.epoch'; did you mean recover.train.epochs\?"),
        ("quantize:\n  recipe:\n    per_chanel: true\n", r"did you mean quantize.recipe.per_channel\?"),
        ("data:\n  folder:\n    imagesize: 32\n", r"did you mean data.folder.image_size\?"),
    ],
)
def test_a_typo_names_the_closest_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ShrinkValueError, match=message) as info:
        load_recipe(path)
    assert str(path) in str(info.value)


def test_a_typo_in_set_names_the_closest_key():
    with pytest.raises(ShrinkValueError, match=r"--set: unknown key 'bench.min_run'; did you mean bench.min_runs\?"):
        load_recipe(overrides=["bench.min_run=5"])


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.1])
def test_a_ratio_outside_0_1_is_an_error(ratio):
    with pytest.raises(ShrinkValueError, match=r"prune: ratio must be in \(0, 1\)"):
        load_recipe(overrides=[f"prune.ratio={ratio}"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("prune.importance=l3", "unknown importance 'l3'"),
        ("recover.train.epochs=0", "epochs must be >= 1"),
        ("export.opset=12", "opset must be an integer from 17 to"),
        ("quantize.mode=fastest", "mode must be one of"),
        ("bench.batch=0", "batch must be a positive integer"),
        ("data.eval_images=0", "data.eval_images must be a positive integer"),
        ("model.source=3", "model.source must be"),
        ("name=../x", "recipe name must be a plain file name"),
    ],
)
def test_stage_configs_reject_bad_values_with_the_section_named(override, message):
    with pytest.raises(ShrinkValueError, match=re.escape(message)):
        load_recipe(overrides=[override])


def test_a_section_that_is_not_a_mapping(tmp_path):
    with pytest.raises(ShrinkValueError, match="prune must be a mapping"):
        load_recipe(write(tmp_path, "prune: 0.5\n"))


def test_invalid_yaml(tmp_path):
    with pytest.raises(ShrinkValueError, match="not valid YAML"):
        load_recipe(write(tmp_path, "prune: [\n"))


def test_a_missing_recipe_file(tmp_path):
    with pytest.raises(Exception, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_synthetic_data_cannot_recover_or_calibrate_by_accident():
    with pytest.raises(ShrinkValueError, match="recover: null"):
        load_recipe(overrides=["data.name=synthetic"])
    with pytest.raises(ShrinkValueError, match="force_random_calibration"):
        load_recipe(overrides=["data.name=synthetic", "recover=null"])
    recipe = load_recipe(overrides=["data.name=synthetic", "recover=null", "quantize.force_random_calibration=true"])
    assert recipe.data.synthetic


def test_recipes_are_frozen():
    recipe = load_recipe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.name = "x"


# ----------------------------------------------------------------------------- docs


def test_every_recipe_field_is_documented():
    docs = (REPO / "docs" / "recipes.md").read_text(encoding="utf-8")
    missing = [path for path in field_paths() if f"`{path}`" not in docs]
    assert not missing, f"docs/recipes.md does not document: {', '.join(missing)}"
