"""`shrink prune --target-latency`: bad input is one line and exit 2, before any table is built."""

import dataclasses

import pytest
import torchvision

from shrink.bench.latency_table import Calibration, LatencyTable, TableKey
from shrink.bench.layers import local_fingerprint
from shrink.cli import main
from shrink.prune.space import structure_hash


def run(args, capsys):
    code = main(["prune", "tv:resnet18", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("budget, message", [
    ("1.5", r"must be in \(0, 1\)"), ("0", r"must be in \(0, 1\)"), ("-0.3", r"must be in \(0, 1\)"),
    ("0ms", "milliseconds must be a number > 0"), ("fast", "give a fraction of dense like 0.25"),
])
def test_a_bad_budget_is_one_line(budget, message, capsys, tmp_path):
    code, err = run([f"--target-latency={budget}", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("shrink prune: error: target_latency") and __import__("re").search(message, err)
    assert not (tmp_path / "out" / "plan.json").exists()


def test_a_runtime_onnxruntime_lacks_lists_the_ones_it_has(capsys, tmp_path):
    code, err = run(["--target-latency", "0.5", "--runtime", "tensorrt", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "provider 'tensorrt' is not available" in err and "available: " in err
    assert "CPUExecutionProvider" in err


def _table(**key_changes) -> LatencyTable:
    model = torchvision.models.resnet18()
    key = TableKey(structure_hash(model, (1, 3, 224, 224)), local_fingerprint()[0], "cpu", "fp32", 2, 1)
    return LatencyTable(dataclasses.replace(key, **key_changes), {}, (), {}, Calibration(1.0, 0.0, 0.0, ()), {})


@pytest.mark.parametrize("changes, message", [
    ({"threads": 4}, "threads: table 4, wanted 2"),
    ({"precision": "int8"}, "precision: table 'int8', wanted 'fp32'"),
    ({"structure": "0123456789abcdef"}, "structure: table '0123456789abcdef'"),
    ({"machine": "another-cpu"}, "machine: table 'another-cpu'.*needs --table-from-device"),
])
def test_a_table_with_another_key_is_refused_naming_the_fields(changes, message, capsys, tmp_path):
    path = tmp_path / "table.json"
    _table(**changes).save(path)
    code, err = run(["--target-latency", "0.5", "--threads", "2", "--latency-table", str(path), "--out",
                     str(tmp_path / "out")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err


def test_a_device_table_needs_the_file(capsys, tmp_path):
    code, err = run(["--target-latency", "0.5", "--table-from-device", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "--table-from-device needs --latency-table FILE" in err
