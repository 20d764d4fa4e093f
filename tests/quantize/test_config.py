"""QuantizeConfig / QuantRecipe validation and JSON round trips."""

from __future__ import annotations

import json

import pytest

from shrink.errors import ShrinkValueError
from shrink.quantize import QuantizeConfig, QuantRecipe
from shrink.quantize.search import matmul_heavy, search_space


def test_round_trip():
    config = QuantizeConfig(mode="static", recipe=QuantRecipe(exclude=("a", "b"), op_types=("Conv",)), budget_pt=0.2)
    assert QuantizeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "fast"}, "mode must be one of"), ({"budget_pt": -1}, "budget_pt"), ({"min_speedup": 0.9}, "min_speedup"),
    ({"calibration_images": 0}, "calibration_images"), ({"eval_limit": 0}, "eval_limit"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ShrinkValueError, match=match):
        QuantizeConfig(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "mse"}, "method must be one of minmax, entropy, percentile"), ({"activation_type": "s16"}, "activation_type"),
    ({"quant_format": "onnx"}, "quant_format"), ({"op_types": ()}, "op_types"),
    ({"kind": "dynamic", "activation_type": "s8"}, "dynamic"),
])
def test_recipe_validation(kwargs, match):
    with pytest.raises(ShrinkValueError, match=match):
        QuantRecipe(**kwargs)


def test_unknown_keys_are_errors():
    with pytest.raises(ShrinkValueError, match="unknown quantize config keys: bogus"):
        QuantizeConfig.from_dict({"bogus": 1})


def test_dynamic_mode_makes_the_recipe_dynamic():
    assert QuantizeConfig(mode="dynamic").recipe.kind == "dynamic"


def test_search_space_changes_one_axis_at_a_time():
    space = search_space(QuantRecipe(), {"Conv": 20, "Gemm": 1})
    names = [r.name for r in space]
    assert names[0] == "static-qdq-u8s8-pc-minmax" and len(set(names)) == len(names)
    assert {"static-qdq-u8s8-pt-minmax", "static-qdq-u8s8-pc-minmax-rr", "static-qoperator-u8s8-pc-minmax",
            "static-qdq-s8s8-pc-minmax"} <= set(names)
    assert all(r.why for r in space) and not any(r.kind == "dynamic" for r in space)
    vit = search_space(QuantRecipe(), {"Conv": 1, "MatMul": 48, "Gemm": 2})
    assert matmul_heavy({"Conv": 1, "MatMul": 48}) and any(r.kind == "dynamic" for r in vit)
