"""Hostile and faulty inputs against every command (issue 22): no input is ever overwritten, a file
the command did not write is never deleted, every failure is one line and exit 2 before any long
work, and nothing is left behind. Real commands in subprocesses wherever exit codes, stderr and
files on disk are the point; a real read-only or full file system in a private mount namespace."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.nn as nn
from cli_helpers import REPO, needs_mount_namespace, one_error_line, shrink, shrink_on_tmpfs, tmpfs_listing

from shipped_models import REFERENCE_RESNET18
from shrink.cli import main
from shrink.fileio import is_temporary_name, sha256_file
from shrink.models import LoadedModel, ModelSpec
from shrink.load import load_model


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trust")


@pytest.fixture(scope="module")
def pruned(work) -> Path:
    """A real `shrink prune` directory of the shipped reference model."""
    out = work / "pruned"
    assert main(["prune", str(REFERENCE_RESNET18), "--ratio", "0.5", "--no-verify", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def digits_onnx(work) -> Path:
    """A tiny fp32 classifier for 8x8 digits, exported and verified by `shrink.export`."""
    from shrink.export import ExportConfig, export

    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    loaded = LoadedModel(model=model, spec=ModelSpec(name="tiny", num_classes=10, in_chans=1, input_size=(8, 8)),
                         source="tiny")
    out = work / "digits.onnx"
    export(loaded, ExportConfig(exporter="torchscript"), out)
    return out


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob("*") if is_temporary_name(p.name) or p.name == ".shrink.lock"]


# ----------------------------------------------------------------------------- inputs are never overwritten


def test_export_refuses_to_write_over_its_weights(tmp_path):
    weights = tmp_path / "m.safetensors"
    shutil.copy(REFERENCE_RESNET18, weights)
    before = sha256_file(weights)
    result = shrink("export", "fmnist_resnet18", "--weights", weights, "--out", weights)
    one_error_line(result, r"is an input of this command")
    assert sha256_file(weights) == before


# plan.json is refused by the same input check as the weights (slow, for the fast suite's budget)
@pytest.mark.parametrize("name", ["pruned.safetensors", pytest.param("plan.json", marks=pytest.mark.slow)])
def test_export_refuses_to_write_into_the_pruned_dir_it_reads(pruned, tmp_path, name):
    shared = tmp_path / "pruned"
    shutil.copytree(pruned, shared)
    before = sha256_file(shared / name)
    one_error_line(shrink("export", shared, "--out", shared / name), r"is an input of this command")
    assert sha256_file(shared / name) == before
    assert load_model(str(shared)).spec.name == "fmnist_resnet18"  # still a loadable model


def test_export_keeps_a_data_file_it_did_not_write(tmp_path):
    data = tmp_path / "m.onnx.data"
    data.write_bytes(b"the user's own bytes")
    result = shrink("export", REFERENCE_RESNET18, "--out", tmp_path / "m.onnx")
    one_error_line(result, r"m\.onnx\.data exists, but no ONNX file at .* uses it")
    assert data.read_bytes() == b"the user's own bytes" and not (tmp_path / "m.onnx").exists()


def test_prune_refuses_to_write_over_the_weights_it_reads(tmp_path):
    weights = tmp_path / "pruned.safetensors"  # the name prune writes, in the directory it writes
    shutil.copy(REFERENCE_RESNET18, weights)
    card = json.loads(REFERENCE_RESNET18.with_suffix(".json").read_text())
    card["weights"] = weights.name
    (tmp_path / "pruned.json").write_text(json.dumps(card))
    before = sha256_file(weights)
    result = shrink("prune", weights, "--ratio", "0.5", "--force", "--out", tmp_path)
    one_error_line(result, r"is an input of this command")
    assert sha256_file(weights) == before and not (tmp_path / "plan.json").exists()


def test_finetune_refuses_to_write_over_its_teacher(pruned, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(pruned, teacher)
    before = sha256_file(teacher / "pruned.safetensors")
    result = shrink("finetune", pruned, "--data", "fmnist", "--epochs", "1", "--distill", "--teacher", teacher,
                    "--force", "--out", teacher)
    one_error_line(result, r"is an input of this command")
    assert sha256_file(teacher / "pruned.safetensors") == before


def test_run_refuses_a_recipe_inside_its_output_directory(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    recipe = out / "recipe.yaml"
    recipe.write_text("name: mine  # my own notes\nprune: {ratio: 0.3}\n")
    before = sha256_file(recipe)
    result = shrink("run", recipe, "--force", "--quiet", "--out", out)
    one_error_line(result, r"recipe\.yaml is an input of this run but lies inside its output directory")
    assert sha256_file(recipe) == before


def test_bench_refuses_an_output_directory_over_its_input(digits_onnx, tmp_path):
    from shrink.bench.output import check_output_dir
    from shrink.errors import ShrinkError

    victim = tmp_path / "bench.md"
    victim.write_bytes(digits_onnx.read_bytes())
    with pytest.raises(ShrinkError, match="is an input of this command"):
        check_output_dir(tmp_path, (victim,))


# ----------------------------------------------------------------------------- wrong answers with exit 0


def test_export_refuses_an_opset_it_cannot_write(tmp_path, capsys):
    assert main(["export", str(REFERENCE_RESNET18), "--opset", "999", "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "opset must be an integer from 17 to" in err and "\n" not in err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_eval_refuses_a_limit_below_one(limit, capsys):
    assert main(["eval", str(REFERENCE_RESNET18), "--data", "fmnist", "--limit", limit]) == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_eval_limit_is_exact(capsys):
    assert main(["eval", str(REFERENCE_RESNET18), "--data", "fmnist", "--limit", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 64


def test_models_without_a_match_is_an_error_on_stderr(capsys):
    assert main(["models", "zzz"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no model matches 'zzz'" in captured.err


# ----------------------------------------------------------------------------- one line, not a traceback


@needs_mount_namespace
# prune, export and run stay in the fast suite; the others share their check_writable path (budget)
@pytest.mark.parametrize("command", ["prune", "export", "run", *(pytest.param(c, marks=pytest.mark.slow)
                                                                  for c in ("train", "quantize", "bench", "finetune"))])
def test_a_read_only_output_directory_is_one_line_before_any_work(command, pruned, digits_onnx, tmp_path):
    mount = tmp_path / "ro"
    out = mount / "out"
    argv = {
        "prune": ["prune", REFERENCE_RESNET18, "--ratio", "0.5", "--out", out],
        "train": ["train", "fmnist_resnet18", "--data", "digits", "--epochs", "1", "--out", out],
        "export": ["export", REFERENCE_RESNET18, "--out", out / "m.onnx"],
        "quantize": ["quantize", digits_onnx, "--data", "digits", "--out", out / "m.int8.onnx"],
        "bench": ["bench", digits_onnx, "--out", out],
        "run": ["run", "--quiet", "--out", out],
        "finetune": ["finetune", pruned, "--data", "fmnist", "--epochs", "1", "--out", out],
    }[command]
    result = shrink_on_tmpfs(mount, "ro", *argv)
    one_error_line(result, r"Read-only file system")
    assert tmpfs_listing(result) == []


@needs_mount_namespace
def test_a_full_disk_during_prune_is_one_line_and_leaves_no_partial_file(tmp_path):
    mount = tmp_path / "full"
    result = shrink_on_tmpfs(mount, "size=1m", "prune", REFERENCE_RESNET18, "--ratio", "0.5", "--no-verify",
                             "--out", mount / "out")
    one_error_line(result, r"could not write .*pruned\.safetensors: .*No space left on device")
    assert tmpfs_listing(result) == []  # no partial weights, no temporary file, no empty directory


def test_a_batch_that_cannot_fit_is_refused_before_timing(digits_onnx):
    one_error_line(shrink("bench", digits_onnx, "--batch", "100000000", "--quiet"), r"more than half of the .* GiB")


def test_bench_out_that_is_a_file_is_refused_before_timing(digits_onnx, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = shrink("bench", digits_onnx, "--out", taken)  # progress lines would come first if it timed
    one_error_line(result, r"is a file, not a directory")
    assert taken.read_text() == "mine"


@pytest.mark.slow  # 11 s: two real bench runs to compare
def test_bench_compare_of_a_result_without_its_machine(digits_onnx, tmp_path):
    assert shrink("bench", digits_onnx, "--min-seconds", "0.2", "--min-runs", "5", "--warmup-seconds", "0",
                  "--no-memory", "--quiet", "--out", tmp_path / "b").returncode == 0
    record = json.loads((tmp_path / "b" / "bench.json").read_text())
    del record["machine"]
    (tmp_path / "edited.json").write_text(json.dumps(record))
    one_error_line(shrink("bench-compare", tmp_path / "b" / "bench.json", tmp_path / "edited.json"),
                   r"incomplete bench result .*missing or malformed machine")


def test_run_on_a_binary_file(tmp_path):
    binary = tmp_path / "r.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 64)
    one_error_line(shrink("run", binary, "--out", tmp_path / "run"), r"is not a text file")
    assert not (tmp_path / "run").exists()


def test_a_100_gb_weights_file(tmp_path):
    weights = tmp_path / "huge.safetensors"
    header = json.dumps({"conv1.weight": {"dtype": "F32", "shape": [25_000_000_000],
                                          "data_offsets": [0, 100_000_000_000]}}).encode()
    with open(weights, "wb") as f:  # sparse: 100 GB on paper, a few bytes on disk
        f.write(len(header).to_bytes(8, "little") + header)
        f.truncate(8 + len(header) + 100_000_000_000)
    one_error_line(shrink("eval", "fmnist_resnet18", "--weights", weights), r"huge\.safetensors")


# ----------------------------------------------------------------------------- checks before the work


def test_quantize_out_that_is_a_directory_is_refused_before_the_data_is_read(digits_onnx, tmp_path):
    # The data does not exist: had the output been checked after loading it, the error would say so.
    one_error_line(shrink("quantize", digits_onnx, "--data", "imagefolder:/nonexistent", "--out", tmp_path),
                   r"is a directory")


def test_a_prune_refused_for_a_bad_value_leaves_no_directory(tmp_path):
    out = tmp_path / "never"
    one_error_line(shrink("prune", REFERENCE_RESNET18, "--ratio", "1.5", "--out", out), r"ratio")
    assert not out.exists()


# ----------------------------------------------------------------------------- leftovers


def _wait_for(predicate, timeout_s: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_during_quantize_leaves_nothing_behind(digits_onnx, tmp_path):
    out = tmp_path / "q"
    process = subprocess.Popen([sys.executable, "-m", "shrink", "quantize", str(digits_onnx), "--data", "digits",
                                "--bench-seconds", "30", "--out", str(out / "m.int8.onnx")],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: out.is_dir() and any(p.name.endswith(".scratch") for p in out.iterdir()),
                  what="the quantize scratch folder beside the output")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "terminated by signal" in err.strip().splitlines()[-1]
    assert _leftovers(out) == [] and not (out / "m.int8.onnx").exists()
