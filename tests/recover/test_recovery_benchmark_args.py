"""benchmarks/recovery.py reads recipe overrides as `shrink run --set` does: --set KEY=VALUE
changes a field like its flag, --variant runs comma-separated --set items, and a bad key or value
stops the parent with one line. Parsing only: nothing is trained."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "recovery.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("recovery_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _recipe(bench, args) -> dict:
    return {name: getattr(args, name) for name in bench.RECIPE_FIELDS}


@pytest.mark.parametrize("flags, overrides", [
    (["--lr", "0.02"], ["lr=0.02"]),
    (["--augment", "1"], ["augment=1"]),
    (["--augment", "0"], ["augment=false"]),
    (["--epochs", "7", "--seed", "3"], ["epochs=7", "seed=3"]),
    (["--kd-lr", "1e-3", "--ema-epochs", "1"], ["kd_lr=1e-3", "ema_epochs=1"]),
    (["--optimizer", "adamw", "--warmup-epochs", "1"], ["optimizer=adamw", "warmup_epochs=1"]),
])
def test_set_changes_a_field_as_its_flag_does(bench, flags, overrides):
    by_flag = bench.parse_args(flags)
    by_set = bench.parse_args([arg for item in overrides for arg in ("--set", item)])
    assert _recipe(bench, by_set) == _recipe(bench, by_flag)
    assert all(type(getattr(by_set, k)) is type(getattr(by_flag, k)) for k in bench.RECIPE_FIELDS)


def test_a_variant_is_set_items_over_the_set_overrides(bench):
    args = bench.parse_args(["--set", "lr=0.05", "--set", "temperature=4", "--variant", "lr=0.1,augment=1",
                             "--variant", ""])
    assert args.variant == ["lr=0.1,augment=1", ""]
    first, second = (bench.with_overrides(args, bench.variant_overrides(v)) for v in args.variant)
    assert (first.lr, first.augment, first.temperature) == (0.1, True, 4.0)
    assert (second.lr, second.augment, second.temperature) == (0.05, False, 4.0)
    ft, kd = bench.recipes(first, "fmnist_resnet18")
    assert ft.train.lr == kd.train.lr == 0.1 and kd.distill.temperature == 4.0


def test_quick_still_caps_what_set_gives(bench):
    args = bench.parse_args(["--quick", "--set", "epochs=5", "--set", "batch_size=256"])
    assert (args.epochs, args.batch_size) == (2, 64)


@pytest.mark.parametrize("argv, message", [
    (["--set", "lrr=0.1"], r"--set: unknown key 'lrr'; did you mean lr\?"),
    (["--variant", "lr=0.1,epochz=3"], r"--variant 'lr=0.1,epochz=3': unknown key 'epochz'; did you mean epochs\?"),
    (["--set", "lr=abc"], r"lr must be float, got 'abc'"),
    (["--set", "augment=2"], r"augment must be bool, got 2"),
    (["--set", "seed=1.5"], r"seed must be int, got 1.5"),
    (["--variant", "optimizer=adam"], r"optimizer must be one of sgd, adamw"),
    (["--set", "lr"], r"--set takes KEY=VALUE"),
])
def test_a_bad_override_stops_the_parent_with_one_line(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        bench.parse_args(argv)
    assert stop.value.code == 2
    assert re.search(message, capsys.readouterr().err.strip().splitlines()[-1])
