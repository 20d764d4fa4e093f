"""`shrink prune` through shrink.cli.main: writes plan + weights + a summary; errors are one line."""

import json

import pytest
import torch

from shrink.cli import main
from shrink.load import load_model


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line, no traceback
    return err[0]


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(["prune", "fmnist_resnet18", "--ratio", "0.5", "--importance", "l2", "--out", str(out)])
    return code, out


def test_prune_writes_plan_weights_and_summary(pruned_run, capsys):
    code, out = pruned_run
    assert code == 0
    assert (out / "plan.json").is_file() and (out / "pruned.safetensors").is_file()
    document = json.loads((out / "plan.json").read_text())
    assert document["verification"]["passed"] and document["verification"]["kind"] == "exact"
    loaded = load_model(str(out))
    assert loaded.model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_summary_table(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["prune", "fmnist_resnet18", "--target-params", "3M", "--round-to", "avx2", "--out", str(out), "--no-verify"]) == 0
    text = capsys.readouterr().out
    assert "layer" in text and "->" in text and "MACs:" in text and "params:" in text
    after = json.loads((out / "plan.json").read_text())["after"]["params"]
    assert abs(after - 3e6) / 3e6 <= 0.01


def test_refuses_non_empty_output(pruned_run, capsys):
    _, out = pruned_run
    assert main(["prune", "fmnist_resnet18", "--out", str(out)]) == 2
    assert "is not empty; choose another or pass --force" in _error_line(capsys)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--importance", "l3"], "unknown importance 'l3'; valid names: l1, l2"),
        (["--importance", "taylor"], "--importance taylor needs labeled batches: add --data"),
        (["--scope", "local"], "unknown scope 'local'"),
        (["--ratio", "0.95"], "exceeds max_layer_ratio"),
        (["--ignore", "layer9"], "'layer9' matches no module"),
        (["--round-to", "avx9"], "unknown round-to target 'avx9'"),
    ],
)
def test_error_paths(tmp_path, capsys, args, message):
    assert main(["prune", "fmnist_resnet18", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in _error_line(capsys)


def test_unknown_model(tmp_path, capsys):
    assert main(["prune", "tv:resnet5", "--out", str(tmp_path / "x")]) == 2
    assert "unknown model 'tv:resnet5'" in _error_line(capsys)


def test_pruned_directory_is_refused(pruned_run, tmp_path, capsys):
    _, out = pruned_run
    assert main(["prune", str(out), "--out", str(tmp_path / "again")]) == 2
    assert "already a pruned model" in _error_line(capsys)


def test_argument_errors(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["prune", "fmnist_resnet18", "--ratio", "0.5", "--target-macs", "1G", "--out", str(tmp_path)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["prune", "fmnist_resnet18", "--target-macs", "lots", "--out", str(tmp_path)])


def test_unstructured_mode(tmp_path, capsys):
    out = tmp_path / "sparse"
    assert main(["prune", "fmnist_resnet18", "--unstructured", "0.5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "unstructured magnitude pruning" in text and "sparsity 50.0%" in text
    assert "dense runtimes run exactly as fast" in text
    assert json.loads((out / "plan.json").read_text())["mode"] == "unstructured"


def test_help_ends_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    assert capsys.readouterr().out.rstrip().endswith("shrink prune tv:resnet50 --ratio 0.5 --importance l2 --out runs/resnet50-p50")
