"""PruneConfig validation: bad input is a ShrinkValueError (a ValueError) that says what is valid."""

import pytest

from shrink.errors import ShrinkValueError
from shrink.prune import IMPORTANCE_NAMES, PruneConfig
from shrink.prune.config import ROUND_TO_BY_TARGET, resolve_round_to


def test_defaults():
    config = PruneConfig()
    assert config.ratio == 0.5 and config.target_kind == "ratio"
    assert config.importance == "l2" and config.scope == "uniform"


def test_round_to_defaults_to_this_machines_granule():
    from shrink.bench.granule import granule
    from shrink.bench.machine import simd_block

    assert PruneConfig().round_to == granule("cpu", "fp32") == resolve_round_to("machine")
    assert granule("cpu", "fp32", cpu_flags=("avx2", "avx512f")) == simd_block(("avx512f",)) == 16
    assert granule("cpu", "fp32", cpu_flags=("avx2",)) == 8
    assert granule("cpu", "int8") == 16 and granule("tensorrt", "int8") == 32 and granule("tensorrt", "fp16") == 8
    with pytest.raises(ValueError, match="no granule for runtime 'tpu'"):
        granule("tpu", "fp32")


def test_latency_budget_is_a_fraction_or_milliseconds():
    assert PruneConfig(target_latency=0.25).latency_budget == (0.25, None)
    assert PruneConfig(target_latency="12ms").latency_budget == (None, 12.0)
    assert PruneConfig(target_latency=0.25).target_kind == "latency"
    assert PruneConfig.from_dict(PruneConfig(target_latency="12ms").to_dict()).target_latency == "12ms"
    for bad, message in ((1.5, "must be in \\(0, 1\\)"), (0, "must be in"), (-0.2, "must be in"),
                         ("0ms", "milliseconds must be a number > 0"), ("fast", "give a fraction")):
        with pytest.raises(ValueError, match=message):
            PruneConfig(target_latency=bad)
    with pytest.raises(ValueError, match="give one of ratio, target_macs, target_params, target_latency"):
        PruneConfig(ratio=0.5, target_latency=0.5)
    with pytest.raises(ValueError, match="planned in one step"):
        PruneConfig(target_latency=0.5, steps=2)


def test_round_trips_through_dict():
    config = PruneConfig(importance="taylor", scope="global", target_macs=1e9, ignore=["layer4*"], steps=3)
    assert PruneConfig.from_dict(config.to_dict()) == config
    assert config.ignore == ("layer4*",)


def test_unknown_importance_lists_valid_names():
    with pytest.raises(ValueError, match="unknown importance 'l3'; valid names: l1, l2, taylor"):
        PruneConfig(importance="l3")
    assert "hessian" in IMPORTANCE_NAMES


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scope": "local"}, "unknown scope 'local'; valid names: uniform, global"),
        ({"attention": "all"}, "unknown attention 'all'"),
        ({"ratio": 1.2}, r"ratio must be in \(0, 1\)"),
        ({"ratio": 0.0}, r"ratio must be in \(0, 1\)"),
        ({"ratio": 0.5, "target_macs": 1e9}, "give one of ratio, target_macs, target_params"),
        ({"target_params": -5}, "target_params must be positive"),
        ({"ratio": 0.95}, "exceeds max_layer_ratio 0.9"),
        ({"max_layer_ratio": 1.0}, r"max_layer_ratio must be in \(0, 1\)"),
        ({"round_to": 0}, "round_to must be >= 1"),
        ({"round_to": "avx1024"}, "unknown round-to target 'avx1024'"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"ignore": ("",)}, "non-empty module-name globs"),
    ],
)
def test_invalid_values(kwargs, message):
    with pytest.raises(ShrinkValueError, match=message):
        PruneConfig(**kwargs)


def test_global_scope_may_exceed_max_layer_ratio_overall():
    assert PruneConfig(scope="global", ratio=0.95).ratio == 0.95  # the cap applies per group


def test_round_to_targets():
    assert resolve_round_to("avx512") == 16 and resolve_round_to("AVX2") == 8 and resolve_round_to("12") == 12
    assert PruneConfig(round_to="tensorcore-int8").round_to == ROUND_TO_BY_TARGET["tensorcore-int8"] == 16


def test_unknown_keys_rejected():
    with pytest.raises(ShrinkValueError, match="unknown prune config keys"):
        PruneConfig.from_dict({"ratio": 0.5, "sparsity": 0.3})
