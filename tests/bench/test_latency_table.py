"""Latency tables as data: the key, the refusal of another key, JSON, and the calibration fit."""

import dataclasses
import json

import pytest

from shrink.bench import layer_timer
from shrink.bench.latency_table import TABLE_FORMAT, TABLE_VERSION, Calibration, LatencyTable, LayerKind, TableKey, TableLayer
from shrink.bench.latency_table import fit_calibration
from shrink.errors import ShrinkError

KEY = TableKey("abc", "m1", "cpu", "fp32", 2, 1)


def small_table(**changes) -> LatencyTable:
    kind = LayerKind("k", ("Conv", "Relu"), (16, 32), (16, 32), ((1.0, 2.0), (2.0, 4.0)))
    layer = TableLayer("conv", "k", 32, 32, "g1", 32, "g2", 32, 100, 100)
    table = LatencyTable(KEY, {"g1": 32, "g2": 32}, (layer,), {"k": kind}, Calibration(1.0, 0.5, 0.0, ()), {"cpu_model": "x"})
    return dataclasses.replace(table, **changes)


def test_the_key_names_every_field_that_differs():
    other = dataclasses.replace(KEY, machine="m2", threads=1)
    assert KEY.differences(other) == ["machine: table 'm1', wanted 'm2'", "threads: table 2, wanted 1"]
    with pytest.raises(ShrinkError, match="does not fit: machine: table 'm1', wanted 'm2'; threads: table 2, wanted 1"):
        small_table().check_key(other)
    small_table().check_key(dataclasses.replace(KEY, machine="m2"), fields=("structure", "threads"))  # device tables
    assert KEY.cache_name() != dataclasses.replace(KEY, precision="int8").cache_name()


def test_interpolation_is_bilinear_and_joint():
    table = small_table()
    assert table.predict() == pytest.approx(4.0 + 0.5)  # dense: 32 in, 32 out
    assert table.predict({"g1": 16, "g2": 16}) == pytest.approx(1.0 + 0.5)
    assert table.predict({"g1": 24, "g2": 32}) == pytest.approx(3.0 + 0.5)  # halfway on c_in only
    assert table.predict({"g1": 24, "g2": 24}) == pytest.approx(2.25 + 0.5)  # between grid points on both axes


def test_json_round_trip_and_bad_files(tmp_path):
    table = small_table()
    path = tmp_path / "table.json"
    table.save(path)
    assert LatencyTable.load(path) == dataclasses.replace(table, kinds=LatencyTable.load(path).kinds)
    assert LatencyTable.load(path).predict({"g1": 16}) == pytest.approx(table.predict({"g1": 16}))
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(ShrinkError, match="not a torch-shrink latency table"):
        LatencyTable.load(tmp_path / "other.json")
    with pytest.raises(ShrinkError, match="latency table not found"):
        LatencyTable.load(tmp_path / "missing.json")


def test_the_standalone_timer_writes_the_format_this_package_reads():
    assert layer_timer.TABLE_FORMAT == TABLE_FORMAT and layer_timer.TABLE_VERSION == TABLE_VERSION


def test_the_calibration_keeps_the_model_that_predicts_left_out_points_best():
    # Whole = sum - 1 ms exactly (each subgraph's call overhead), plus noise that the three-term
    # model would fit: the affine model predicts the points it did not see better, and is kept.
    points = [{"sum_ms": s, "activations": a, "whole_ms": s - 1.0 + n}
              for s, a, n in [(20, 5, 0.1), (12, 4, -0.2), (6, 3, 0.15), (4, 2.5, -0.1), (15, 4.5, 0.05), (9, 3.2, 0.0)]]
    alpha, beta, gamma = fit_calibration(points)
    assert alpha == pytest.approx(1.0, abs=0.05) and beta == pytest.approx(-1.0, abs=0.4) and gamma == 0.0
    exact = [{"sum_ms": s, "activations": a, "whole_ms": 0.8 * s + 0.3 * a + 0.5} for s, a in [(20, 5), (12, 2), (6, 4), (4, 1), (15, 6)]]
    assert fit_calibration(exact) == pytest.approx((0.8, 0.5, 0.3), abs=1e-6)
