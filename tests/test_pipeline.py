"""`shrink run` end to end on a tiny model (8x8 digits), reruns, bad input, a full disk, a sweep.

One module-scoped run does the expensive work once; the tests read its run directory or copy it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the digits dataset ships with scikit-learn (a dev dependency)

from shrink.cli import main  # noqa: E402
from shrink.errors import ShrinkError  # noqa: E402
from shrink.fileio import sha256_file  # noqa: E402
from shrink.pipeline import STAGES, RunOptions, run  # noqa: E402
from shrink.quantize import stage as quantize_stage  # noqa: E402
from shrink.quantize.result import Decision  # noqa: E402
from shrink.recipe import load_recipe  # noqa: E402
from shrink.sweep import SweepOptions, sweep  # noqa: E402

TINY_MODEL = '''
import torch.nn as nn


def tiny_cnn(num_classes=10, in_chans=1):
    return nn.Sequential(
        nn.Conv2d(in_chans, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))
'''

TINY_RECIPE = """
name: tiny
model: {source: "MODEL:tiny_cnn", num_classes: 10, in_chans: 1, input_size: [8, 8]}
data: {name: digits, eval_images: 200, train_images: 300}
prune: {ratio: 0.5}
recover:
  bn_recal_images: 200
  train: {epochs: 1, batch_size: 32}
export: {eval_limit: 64, exporter: torchscript}  # seconds instead of dynamo's tens; export has its own tests
quantize: {calibration_images: 32, bench_seconds: 0.2, bench_min_runs: 10, bench_warmup_seconds: 0.1,
           per_layer_sqnr: false}
bench: {min_seconds: 0.3, min_runs: 10, warmup_runs: 3, warmup_seconds: 0.1}
"""

BUNDLE = ("recipe.yaml", "plan.json", "pruned.safetensors", "dense.onnx", "model.onnx", "model.int8.onnx",
          "manifest.json", "report.md", "report.html", "latency.png", "accuracy_latency.png", "widths.png")


def ship_first_int8(fp32, candidates, *args, **kwargs):
    """Whether int8 is faster depends on the host; the test forces the int8 path to cover it."""
    produced = next(c for c in candidates if not c.error)
    return Decision(produced.name, True, f"int8 {produced.name}: forced by the test", ())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    model = base / "tiny_model.py"
    model.write_text(TINY_MODEL, encoding="utf-8")
    recipe = base / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.replace("MODEL", str(model)), encoding="utf-8")
    out = base / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(quantize_stage, "decide", ship_first_int8)
        mp.setattr(quantize_stage, "confirm", lambda decision, alone, min_speedup: decision)  # keep it forced
        result = run(load_recipe(recipe), RunOptions(out=out, quiet=True))
    return SimpleNamespace(base=base, recipe=recipe, out=out, result=result)


def copy_run(tiny, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(tiny.out, target)
    return target


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- the bundle


def test_run_writes_the_bundle(tiny):
    for name in BUNDLE:
        assert (tiny.out / name).is_file(), name
    assert (tiny.out / "logs" / "run.log").is_file()
    assert sorted(p.stem for p in (tiny.out / "stages").glob("*.json")) == sorted(STAGES)
    leftovers = [p.name for p in tiny.out.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_manifest_hashes_match_the_files(tiny):
    artifacts = manifest(tiny.out)["artifacts"]
    assert set(BUNDLE) - {"manifest.json"} <= set(artifacts)
    for name, entry in artifacts.items():
        assert sha256_file(tiny.out / name) == entry["sha256"], name
        assert (tiny.out / name).stat().st_size == entry["bytes"], name


def test_the_manifest_is_a_run_summary_key_for_key(tiny):
    from shrink.run.summary import RunSummary

    data = manifest(tiny.out)
    body = {k: v for k, v in data.items() if k != "artifacts"}
    assert json.dumps(RunSummary.from_dict(data).to_dict()) == json.dumps(body)


def test_manifest_says_what_was_measured_and_where(tiny):
    m = manifest(tiny.out)
    assert m["shipped"] == {"file": "model.int8.onnx", "int8": True, "reason": m["shipped"]["reason"]}
    assert [c["name"] for c in m["candidates"]] == ["dense fp32", "pruned fp32", "pruned int8"]
    for c in m["candidates"]:
        assert c["latency"]["p50_ms"] > 0 and c["accuracy_onnx"] is not None and c["size_bytes"] > 0
    assert m["candidates"][1]["macs"] < m["candidates"][0]["macs"]
    assert m["inputs"]["data"]["eval_images"] == 200 and not m["inputs"]["data"]["synthetic"]
    # The tiny model has no weights: random init, said in the manifest and the report's notes.
    assert m["inputs"]["model"]["untrained"] and m["inputs"]["model"]["weights"].startswith("untrained weights")
    assert any("untrained weights" in note for note in m["notes"])
    record = m["preprocessing"]["record"]  # the deployment contract, as the shipped files carry it
    assert len(m["labels"]) == 10 and len(record["mean"]) == 1 and record["color"] == "L"
    assert record["crop"] == [8, 8] and record["resize"] is None and m["preprocessing"]["steps"]
    assert m["measurement"]["machine"]["cpu_model"]
    assert m["measurement"]["latency"]["threads"] >= 1
    assert "CPUExecutionProvider" in m["measurement"]["accuracy"]["onnxruntime_providers"]
    shipped = next(c for c in m["candidates"] if c["shipped"])
    assert shipped["runtime_specific_ops"] == [] and "ai.onnx" in shipped["domains"]  # standard ONNX only
    assert shipped["checked_on"][0].startswith("onnxruntime ")
    latency = m["measurement"]["latency"]
    assert latency["method"] == "processes" and latency["processes"] >= 2 and latency["spinning"] is True
    # One int8 pair, as every stage measured it, each with its method; the verdict is recorded.
    figures = m["int8_speedup"]["figures"]
    assert [f["figure"] for f in figures][-1] == "bench stage" and figures[0]["figure"] == "quantize search"
    assert all(f["ci_low"] <= f["ci_high"] and f["ratio"] > 0 and "worker processes" in f["method"] for f in figures)
    assert isinstance(m["int8_speedup"]["agree"], bool)


def test_report_says_where_each_number_was_measured(tiny):
    text = (tiny.out / "report.md").read_text()
    assert "200 of the 359 test images" in text
    assert "thread(s)" in text and "CPUExecutionProvider" in text and "synthetic inputs" in text
    assert "| **pruned int8** (shipped) |" in text
    html = (tiny.out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "http://" not in html and "https://" not in html  # opens offline


def test_closing_summary_is_short_and_names_the_report(tiny):
    assert tiny.result.summary[0] == f"report: {tiny.out / 'report.md'}"
    assert 2 <= len(tiny.result.summary) <= 5


def test_the_shipped_files_run(tiny):
    import onnxruntime as ort

    from shrink.data import BatchOptions, load_data
    from shrink.models import ModelCode
    from shrink.load import load_model

    x, _ = next(iter(load_data("digits", "test").batches(BatchOptions(batch_size=4))))
    session = ort.InferenceSession(str(tiny.out / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": x.numpy().astype(np.float32)})[0].shape == (4, 10)
    # plan.json + pruned.safetensors: a loadable pruned model, given the model code it names
    pruned = load_model(str(tiny.out), code=ModelCode.read(tiny.base / "tiny_model.py"))
    assert pruned.model(x).shape == (4, 10)


# ----------------------------------------------------------------------------- reruns


def test_a_rerun_reuses_every_stage(tiny, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (tiny.out / "stages").iterdir()}
    code, out, _ = cli(capsys, "run", tiny.recipe, "--out", tiny.out, "--json")
    assert code == 0
    result = json.loads(out)
    assert [s["reused"] for s in result["stages"]] == [True] * len(STAGES)
    assert {p.name: p.stat().st_mtime_ns for p in (tiny.out / "stages").iterdir()} == before


def test_a_changed_field_needs_force_and_reruns_only_what_depends_on_it(tiny, tmp_path, capsys):
    out = copy_run(tiny, tmp_path)
    code, _, err = cli(capsys, "run", tiny.recipe, "--out", out, "--set", "bench.min_runs=12")
    assert code == 2 and "holds a run of another recipe" in err and "--force" in err
    code, stdout, _ = cli(capsys, "run", tiny.recipe, "--out", out, "--set", "bench.min_runs=12", "--force", "--json")
    assert code == 0
    result = json.loads(stdout)
    reused = {s["name"]: s["reused"] for s in result["stages"]}
    assert reused == {**{name: True for name in STAGES[:6]}, "bench": False, "report": False}
    # --json carries the numbers, not only sentences: the shipped file, accuracy, latency, speedup.
    numbers, manifest = result["numbers"], json.loads((out / "manifest.json").read_text())
    shipped = next(c for c in manifest["candidates"] if c["shipped"])
    assert numbers["shipped"]["file"] == shipped["file"] and numbers["accuracy"]["shipped"] == shipped["accuracy_onnx"]
    assert numbers["speedup"]["ratio"] == shipped["speedup"]["ratio"]
    assert numbers["latency"]["shipped"]["ci_low_ms"] <= numbers["latency"]["shipped"]["p50_ms"]
    assert numbers["untrained"] is True and isinstance(numbers["caveats"], list)
    assert "min_runs: 12" in (out / "recipe.yaml").read_text()


def test_a_full_disk_leaves_no_half_written_file(tiny, tmp_path, monkeypatch):
    out = copy_run(tiny, tmp_path)
    (out / "report.md").unlink()  # so the report stage runs again
    real_write = Path.write_bytes

    def full_disk(self, data):
        if "report.html" in self.name:
            real_write(self, data[: len(data) // 2])  # half of it reached the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(ShrinkError, match="No space left on device"):
        run(load_recipe(tiny.recipe), RunOptions(out=out, quiet=True))
    assert not (out / "report.html").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    monkeypatch.undo()
    run(load_recipe(tiny.recipe), RunOptions(out=out, quiet=True))  # a rerun completes the run
    assert sha256_file(out / "report.html") == manifest(out)["artifacts"]["report.html"]["sha256"]


# ----------------------------------------------------------------------------- the ship gate


@pytest.fixture(scope="module")
def trained_tiny(tiny):
    """The tiny model trained on digits by `shrink train`: weights and a card that names its code."""
    out = tiny.base / "trained"
    assert main(["train", f"{tiny.base / 'tiny_model.py'}:tiny_cnn", "--data", "digits", "--epochs", "6",
                 "--lr", "0.05", "--batch-size", "64", "--device", "cpu", "--out", str(out)]) == 0
    return out / "model.safetensors"


def test_a_recovery_step_that_hurts_does_not_ship_and_strict_fails(tiny, trained_tiny, tmp_path, capsys):
    out = tmp_path / "hurt"
    # A learning rate this large wrecks the distilled weights: the BN-recalibrated step must ship.
    code, stdout, err = cli(capsys, "run", tiny.recipe, "--set", f"model.source={trained_tiny}",
                            "--model-code", tiny.base / "tiny_model.py", "--set", "model.num_classes=null",
                            "--set", "model.in_chans=null", "--set", "model.input_size=null",
                            "--set", "recover.reconstruct_images=0", "--set", "recover.bn_recal=true",
                            "--set", "recover.train.lr=50", "--set", "quantize=null", "--quiet", "--strict",
                            "--out", out)
    assert code == 3, err
    assert "--strict: the ship gate has" in err
    warnings = [line for line in stdout.splitlines() if line.startswith("WARNING: ")]
    assert any("recovery step distilled made the model worse on the held-out training images" in w for w in warnings)
    m = manifest(out)
    assert m["recovery"]["shipped_step"] == "bn-recal" and m["recovery"]["selection_images"] > 0
    assert [s["step"] for s in m["recovery"]["selection"]] == ["pruned", "bn-recal", "distilled"]
    assert m["gate"]["warnings"] and m["gate"]["max_drop_pt"] == 3.0
    assert "> **Warning: recovery step distilled made the model worse" in (out / "report.md").read_text()


def test_a_healthy_run_has_no_gate_warning(tiny):
    m = manifest(tiny.out)
    assert m["gate"]["warnings"] == [] and m["inputs"]["data"]["select_images"] > 0
    assert m["recovery"]["shipped_step"] == m["recovery"]["selection"][-1]["step"]


# ----------------------------------------------------------------------------- one run per directory


@pytest.mark.slow  # 9 s: the lock itself is covered by tests/test_dirlock.py
def test_a_second_run_into_a_running_directory_is_refused_with_the_first_ones_pid(tiny, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from cli_helpers import REPO, one_error_line, shrink

    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "shrink", "run", str(tiny.recipe), "--out", str(out)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = out / ".shrink.lock"
        deadline = time.monotonic() + 120
        while not (lock.is_file() and f'"pid": {first.pid}' in lock.read_text()):
            assert time.monotonic() < deadline and first.poll() is None, "the first run never took its lock"
            time.sleep(0.05)
        second = shrink("run", tiny.recipe, "--quiet", "--out", out)
        one_error_line(second, rf"is in use by PID {first.pid} on .*`shrink run`")
        first.send_signal(signal.SIGTERM)  # the first run unwinds: its lock and temporaries go
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert not [p.name for p in out.rglob(".*")], "the terminated run left its lock or temporaries"


# ----------------------------------------------------------------------------- bad input, before any work


def test_an_output_path_that_is_a_file(tiny, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    code, _, err = cli(capsys, "run", tiny.recipe, "--out", target)
    assert code == 2 and "is a file" in err
    assert target.read_text() == "not a directory"


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.input_size=[16, 16]", "takes inputs of shape 1x16x16 but digits images are 1x8x8"),
        ("model.num_classes=5", "5 outputs but digits has 10 classes"),
    ],
)
def test_data_that_does_not_match_the_model(tiny, tmp_path, capsys, override, message):
    out = tmp_path / "never"
    code, _, err = cli(capsys, "run", tiny.recipe, "--out", out, "--set", override)
    assert code == 2 and message in err
    assert not out.exists()


def test_a_recipe_typo_on_the_command_line(tiny, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny.recipe.read_text().replace("prune: {ratio", "prune: {ratoi"))
    code, _, err = cli(capsys, "run", bad, "--out", tmp_path / "never")
    assert code == 2 and "did you mean prune.ratio?" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_run_and_sweep_help_end_with_an_example(capsys):
    for command in ("run", "sweep"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example:\n  shrink " + command in capsys.readouterr().out


# ----------------------------------------------------------------------------- sweep


def test_sweep_bad_options_are_errors_before_work():
    with pytest.raises(ShrinkError, match=r"every ratio must be in \(0, 1\)"):
        SweepOptions(ratios=(0.3, 1.2))
    with pytest.raises(ShrinkError, match="precisions must be fp32 and/or int8"):
        SweepOptions(precisions=("fp16",))


def test_sweep_shares_the_dense_baseline_and_marks_the_frontier(tiny, tmp_path):
    recipe = load_recipe(tiny.recipe, ["quantize=null", "recover.train=null", "recover.distill=null"])
    result = sweep(recipe, SweepOptions(ratios=(0.3, 0.6), precisions=("fp32",), out=tmp_path, quiet=True))
    for name in ("sweep.md", "sweep.html", "pareto.png", "sweep.json", "bench.json", "dense/dense.onnx"):
        assert (tmp_path / name).is_file(), name
    assert [p.name for p in result.points] == ["dense fp32", "r0.30 fp32", "r0.60 fp32"]
    assert any(p.frontier for p in result.points)
    assert not (tmp_path / "ratio-0.30" / "dense.onnx").exists()  # one dense export, shared
    log = (tmp_path / "ratio-0.60" / "logs" / "run.log").read_text()
    assert "model: unchanged since the last run, reused" in log
    assert "Pareto frontier" in (tmp_path / "sweep.md").read_text()
