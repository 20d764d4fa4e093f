"""The one codec of configs and records (shrink/config_io.py) and the flags made from config fields
(shrink/config_flags.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

import pytest

from shrink.config_flags import add_config_flag, config_default
from shrink.config_io import OMIT_IF_NONE, Record, check_format, from_dict, to_dict
from shrink.errors import ShrinkValueError
from shrink.models.card import ModelCard
from shrink.prune.config import PruneConfig
from shrink.quantize.config import QuantizeConfig
from shrink.recipe import load_recipe, recipe_from_dict
from shrink.recover.config import RecoverConfig, TrainConfig


@dataclass(frozen=True)
class Inner(Record):
    LABEL = "inner keys"

    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer(Record):
    LABEL = "outer keys"

    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    note: str | None = field(default=None, metadata=OMIT_IF_NONE)
    pair: tuple[int, int] = (3, 4)


def test_round_trip_restores_tuples_and_nested_records():
    value = Outer(name="y", inner=Inner((5, 6, 7)), maybe=Inner((8,)), note="n", pair=(9, 10))
    data = json.loads(json.dumps(value.to_dict()))  # lists, as JSON holds them
    assert data["inner"] == {"sizes": [5, 6, 7]} and data["pair"] == [9, 10]
    assert Outer.from_dict(data) == value


def test_a_none_field_marked_omit_if_none_is_left_out():
    assert "note" not in Outer().to_dict()
    assert "maybe" in Outer().to_dict()  # an unmarked None stays, as null


def test_unknown_keys_name_the_closest_known_key():
    with pytest.raises(ShrinkValueError, match=r"unknown outer keys: nmae; did you mean name\?; known: name, inner"):
        Outer.from_dict({"nmae": "z"})
    with pytest.raises(ShrinkValueError, match=r"unknown inner keys: size; did you mean sizes\?"):
        Outer.from_dict({"inner": {"size": [1]}})


def test_a_record_must_be_a_mapping():
    with pytest.raises(ShrinkValueError, match="expected a mapping of outer keys, got list"):
        from_dict(Outer, [1, 2], "outer keys")


@pytest.mark.parametrize("config", [PruneConfig(ratio=0.3, ignore=("fc",)), QuantizeConfig(), TrainConfig(epochs=3),
                                    RecoverConfig(distill=None)])
def test_stage_configs_round_trip_through_json(config):
    again = type(config).from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_the_default_recipe_round_trips():
    recipe = load_recipe()
    assert recipe_from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_a_card_written_without_preprocessing_has_no_key_for_it(tmp_path):
    from shipped_models import REFERENCE_RESNET18
    from shrink.models import read_card

    card = read_card(REFERENCE_RESNET18.with_suffix(".json"))
    plain = dataclasses.replace(card, preprocessing=None).to_dict()
    assert "preprocessing" not in plain
    assert ModelCard.from_dict(plain) == dataclasses.replace(card, preprocessing=None)


def test_check_format_refuses_another_kind_and_another_version():
    check_format({"format": "f", "version": 2}, "f", 2, "thing")
    with pytest.raises(ShrinkValueError, match="not a torch-shrink thing"):
        check_format({"format": "g", "version": 2}, "f", 2, "thing")
    with pytest.raises(ShrinkValueError, match="thing version 1 is not supported"):
        check_format({"format": "f", "version": 1}, "f", 2, "thing")


def test_to_dict_of_a_plain_dataclass_uses_the_codec_too():
    @dataclass
    class Plain:
        values: tuple[float, ...] = (0.5,)

    assert to_dict(Plain()) == {"values": [0.5]}


def test_a_flag_takes_its_default_and_type_from_the_config_field():
    parser = argparse.ArgumentParser()
    add_config_flag(parser, PruneConfig, "max_layer_ratio", "no group loses more than this")
    add_config_flag(parser, TrainConfig, "augment", "crop and flip")
    defaults = parser.parse_args([])
    assert defaults.max_layer_ratio == config_default(PruneConfig, "max_layer_ratio") == PruneConfig().max_layer_ratio
    assert defaults.augment is TrainConfig().augment
    given = parser.parse_args(["--max-layer-ratio", "0.7", "--no-augment"])
    assert given.max_layer_ratio == 0.7 and given.augment is False
    assert f"(default {PruneConfig().max_layer_ratio})" in parser.format_help()


def test_the_prune_command_defaults_are_the_config_defaults():
    from shrink.cli import build_parser

    args = build_parser().parse_args(["prune", "fmnist_resnet18", "--out", "x"])
    for name in ("importance", "scope", "max_layer_ratio", "steps", "attention", "calibration_batches", "seed"):
        assert getattr(args, name) == getattr(PruneConfig(), name), name


def test_the_quantize_and_export_command_defaults_are_the_config_defaults():
    from shrink.cli import build_parser
    from shrink.export.config import ExportConfig
    from shrink.quantize.commands import config_from_args
    from shrink.quantize.recipe import QuantRecipe

    parser = build_parser()
    quantize = config_from_args(parser.parse_args(["quantize", "m.onnx", "--data", "fmnist", "--out", "q.onnx"]))
    assert quantize == QuantizeConfig(recipe=QuantRecipe())
    export = parser.parse_args(["export", "fmnist_resnet18", "--out", "m.onnx"])
    assert (export.exporter, export.opset, export.provider) == (ExportConfig().exporter, ExportConfig().opset,
                                                               ExportConfig().provider)
