"""A latency table built end to end on a tiny model with real onnxruntime timing: the structure of
the result is asserted, never a timing. Also the kit in an environment with only onnxruntime and
numpy, and the closed loop."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from shrink.bench.config import BenchConfig
from shrink.bench.latency_table import LatencyTable
from shrink.bench.layers import TableTarget, build_table, cache_path, local_fingerprint, prepare_kit
from shrink.errors import ShrinkError
from shrink.prune import PruneConfig, plan
from shrink.prune.planner import width_space_of
from shrink.prune.space import structure_hash

# Short timing: the structure is under test here, not the figures.
FAST = TableTarget(threads=1, grid_points=2, rounds=1, warmup_runs=1, warmup_seconds=0.0, min_runs=3,
                   min_seconds=0.002, whole_seconds=0.02, calibration_random=1)
CONFIG = PruneConfig(round_to=8)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(32, 48, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(48), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(48, 48, 3, padding=1, groups=48, bias=False), nn.BatchNorm2d(48), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(48, 32, 1, bias=False), nn.BatchNorm2d(32))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.down(self.stem(x))
        x = self.pw(self.dw(x))
        return self.head(x.mean((2, 3)))


def reachable(model, x, t) -> float:
    """A budget halfway between the narrowest widths the table predicts and dense: a tiny model's
    latency is mostly fixed per-run cost, so a fixed fraction could be out of reach."""
    floors = {g.root: g.channels[0] for g in width_space_of(model, x, CONFIG).groups}
    return round(0.5 * (1 + t.predict(floors) / t.dense_ms()), 3)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Tiny().eval(), torch.randn(1, 3, 32, 32)


@pytest.fixture(scope="module")
def table(tiny, tmp_path_factory):
    model, x = tiny
    lines = []
    built = build_table(model, x, FAST, CONFIG, cache_dir=tmp_path_factory.mktemp("cache"), progress=lines.append, quiet=True)
    return built, lines


def test_the_table_covers_every_group_and_layer(tiny, table):
    model, x = tiny
    t, lines = table
    space = width_space_of(model, x, CONFIG)
    assert t.key.structure == structure_hash(model, tuple(x.shape)) and t.key.machine == local_fingerprint()[0]
    assert (t.key.runtime, t.key.precision, t.key.threads, t.key.batch) == ("cpu", "fp32", 1, 1)
    assert t.groups == {g.root: g.width for g in space.groups}
    assert {layer.name for layer in t.layers} == {"stem.0", "down.0", "dw.0", "pw.0", "head"}
    dw = next(layer for layer in t.layers if layer.name == "dw.0")
    down = next(layer for layer in t.layers if layer.name == "down.0")
    assert t.kinds[dw.kind].depthwise and dw.in_group == dw.out_group == down.out_group  # one group: down's outputs
    assert t.kinds[dw.kind].ops == ("Conv", "Clip")  # ReLU6 runs fused with its conv: timed together
    head = next(layer for layer in t.layers if layer.name == "head")
    assert head.in_group == "pw.0" and head.out_group is None  # the classifier keeps its outputs
    for kind in t.kinds.values():
        assert len(kind.cin) * len(kind.cout) >= 2 and all(ms > 0 for i, row in enumerate(kind.ms) for j, ms in enumerate(row)
                                           if not kind.depthwise or i == j)
    assert len(t.calibration.points) == 5  # dense, three uniform shares, one random configuration
    assert all(p["whole_ms"] > 0 and p["sum_ms"] > 0 for p in t.calibration.points)
    assert t.predict() > 0 and t.timing["subgraphs"] == sum(
        len(k.cout) if k.depthwise else len(k.cin) * len(k.cout) for k in t.kinds.values())
    assert any("subgraphs" in line for line in lines)


def test_a_second_build_comes_from_the_cache_and_a_changed_key_does_not(tiny, table, tmp_path):
    model, x = tiny
    t, _ = table
    cache = tmp_path / "cache"
    path = cache_path(t.key, CONFIG, cache)
    t.save(path)
    lines = []
    assert build_table(model, x, FAST, CONFIG, cache_dir=cache, progress=lines.append) == LatencyTable.load(path)
    assert lines == [f"latency table from the cache: {path}"]
    assert cache_path(t.key, PruneConfig(round_to=16), cache) != path  # another width space is another table
    assert cache_path(dataclasses.replace(t.key, threads=2), CONFIG, cache) != path


def test_a_plan_for_a_budget_records_the_table_and_its_prediction(tiny, table):
    model, x = tiny
    t, _ = table
    budget = reachable(model, x, t)
    p = plan(model, x.expand(2, -1, -1, -1), PruneConfig(round_to=8, target_latency=budget), latency_table=t)
    record = p.latency
    assert record.table_key["structure"] == t.key.structure and record.requested == budget
    assert record.budget_ms == pytest.approx(budget * t.dense_ms()) and record.predicted_ms <= record.budget_ms
    assert set(record.groups_ms) <= set(t.groups) and p.after.macs < p.before.macs
    assert type(p).from_json(p.to_json()).latency == record


def test_a_table_for_another_model_or_no_table_is_refused(tiny, table):
    model, x = tiny
    t, _ = table
    other = Tiny().eval()
    other.head = nn.Linear(32, 7)
    with pytest.raises(ShrinkError, match="made for another model or input shape"):
        plan(other, x.expand(2, -1, -1, -1), PruneConfig(round_to=8, target_latency=0.5), latency_table=t)
    with pytest.raises(ShrinkError, match="target_latency needs a latency table"):
        plan(model, x.expand(2, -1, -1, -1), PruneConfig(round_to=8, target_latency=0.5))


def test_the_kit_runs_with_only_onnxruntime_and_numpy(tiny, tmp_path):
    """What a user copies to the device: the subgraphs and one script, run by a Python that has
    onnxruntime and numpy and nothing else (no torch, no torch-shrink)."""
    import numpy
    import onnxruntime

    model, x = tiny
    kit = tmp_path / "kit"
    prepare_kit(model, x, FAST, CONFIG, kit)
    env = tmp_path / "device-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    only = tmp_path / "only-ort-numpy"
    only.mkdir()
    for package in (numpy, onnxruntime):
        root = Path(package.__file__).parent
        (only / root.name).symlink_to(root)
        libs = root.with_name(root.name + ".libs")
        if libs.is_dir():
            (only / libs.name).symlink_to(libs)
    site = next((env / "lib").glob("python*/site-packages"))
    (site / "only.pth").write_text(str(only) + "\n")
    python = env / "bin" / "python"
    for absent in ("torch", "shrink", "onnx"):
        probe = subprocess.run([str(python), "-c", f"import {absent}"], cwd=tmp_path, capture_output=True)
        assert probe.returncode != 0, f"{absent} must not be importable in the device environment"
    done = subprocess.run([str(python), str(kit / "layer_timer.py"), str(kit), "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = LatencyTable.load(kit / "table.json")  # the calibration is fitted on load
    assert table.key.structure == structure_hash(model, tuple(x.shape)) and table.machine["onnxruntime_version"]
    assert table.calibration.alpha > 0 and len(table.calibration.points) == 5
    assert json.loads((kit / "kit.json").read_text())["entries"]


def test_the_closed_loop_measures_each_round_against_dense(tiny, table):
    from shrink.latency_budget import prune_to_latency

    model, x = tiny
    t, _ = table
    bench = BenchConfig(threads=1, processes=1, min_runs=5, min_seconds=0.02, warmup_runs=1, warmup_seconds=0.0,
                        measure_memory=False)
    config = PruneConfig(round_to=8, target_latency=reachable(model, x, t))
    result, rounds = prune_to_latency(model, x.expand(2, -1, -1, -1), config, t,
                                      bench=bench, max_replans=1)
    assert 1 <= len(rounds) <= 2 and [r.index for r in rounds] == list(range(1, len(rounds) + 1))
    for r in rounds:
        assert r.dense_ms > 0 and r.pruned_ms > 0 and r.ratio == pytest.approx(r.pruned_ms / r.dense_ms, rel=0.5)
        assert r.ratio_ci[0] <= r.ratio <= r.ratio_ci[1]
    measured = result.latency.measured
    assert len(measured) == len(rounds) and sum(m["shipped"] for m in measured) == 1
    assert all(not r.within for r in rounds[:-1])  # it stops at the first round within the window
