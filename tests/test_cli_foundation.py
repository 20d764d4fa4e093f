"""The CLI's foundation commands and its error paths: one line on stderr, exit 2, no traceback."""

import re
import shutil
import subprocess
import sys

import pytest

from shipped_models import REFERENCE_MOBILENETV2, REFERENCE_RESNET18
from shrink.cli import build_parser, main
from shrink.models import read_card


def _one_error_line(capsys, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    assert re.search(pattern, err[0]), err[0]


def test_python_dash_m_and_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "shrink", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("models", "train", "eval"):
        assert command in out


def test_every_subcommand_help_ends_with_an_example():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert subparsers.choices
    for name, sub in subparsers.choices.items():
        assert re.search(r"example:\n  shrink \S+.*\Z", sub.format_help().rstrip()), name


def test_models_lists_matches(capsys):
    assert main(["models", "mobilenet"]) == 0
    assert capsys.readouterr().out.split() == [
        "fmnist_mobilenetv2", "tv:mobilenet_v2", "tv:mobilenet_v3_large", "tv:mobilenet_v3_small",
        "tvseg:deeplabv3_mobilenet_v3_large", "tvseg:lraspp_mobilenet_v3_large", "tvdet:ssdlite320_mobilenet_v3_large",
        "tvdet:fasterrcnn_mobilenet_v3_large_320_fpn", "tvdet:fasterrcnn_mobilenet_v3_large_fpn"]


def test_eval_reference_on_a_subset(capsys):
    assert main(["eval", str(REFERENCE_MOBILENETV2), "--data", "fmnist", "--limit", "500", "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["total"] == 500 and result["accuracy"] > 90.0 and not result["synthetic"]


@pytest.mark.slow
@pytest.mark.parametrize("weights", [REFERENCE_RESNET18, REFERENCE_MOBILENETV2])
def test_eval_reference_matches_its_card(capsys, weights):
    assert main(["eval", str(weights), "--data", "fmnist", "--json"]) == 0
    import json

    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    assert abs(accuracy - read_card(weights.with_suffix(".json")).test_accuracy) <= 0.1


def test_missing_file(capsys):
    assert main(["eval", "/nonexistent/model.safetensors"]) == 2
    _one_error_line(capsys, r"^shrink eval: error: weights file not found")


def test_corrupt_checkpoint(tmp_path, capsys):
    shutil.copy(REFERENCE_MOBILENETV2.with_suffix(".json"), tmp_path / "fmnist_mobilenetv2.json")
    (tmp_path / "fmnist_mobilenetv2.safetensors").write_bytes(REFERENCE_MOBILENETV2.read_bytes()[:1000])
    assert main(["eval", "fmnist_mobilenetv2", "--weights", str(tmp_path / "fmnist_mobilenetv2.safetensors")]) == 2
    _one_error_line(capsys, r"truncated or corrupt")


def test_checkpoint_for_another_architecture(capsys):
    assert main(["eval", "fmnist_resnet18", "--weights", str(REFERENCE_MOBILENETV2)]) == 2
    _one_error_line(capsys, r"does not match the architecture: missing \d+: .*unexpected \d+")


def test_unknown_model_name(capsys):
    assert main(["eval", "fmnist_resnet19"]) == 2
    _one_error_line(capsys, r"unknown model 'fmnist_resnet19'; did you mean: fmnist_resnet18")


def test_data_dir_without_idx_files(tmp_path, capsys):
    assert main(["eval", str(REFERENCE_MOBILENETV2), "--data-dir", str(tmp_path)]) == 2
    _one_error_line(capsys, r"does not hold the Fashion-MNIST IDX files")


def test_imagefolder_without_images(tmp_path, capsys):
    (tmp_path / "val" / "a").mkdir(parents=True)
    assert main(["eval", "tv:resnet18", "--data", f"imagefolder:{tmp_path}"]) == 2
    _one_error_line(capsys, r"holds no images")


def test_zero_epochs(tmp_path, capsys):
    assert main(["train", "fmnist_resnet18", "--epochs", "0", "--out", str(tmp_path / "run")]) == 2
    _one_error_line(capsys, r"epochs must be >= 1, got 0")
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback():
    with pytest.raises(Exception, match="unknown model"):
        main(["--debug", "eval", "fmnist_resnet19"])


def test_train_never_overwrites_existing_weights(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"precious")
    assert main(["train", "fmnist_resnet18", "--data", "digits", "--epochs", "1", "--out", str(out)]) == 2
    _one_error_line(capsys, r"already exists; use another --out or --force")
    assert (out / "model.safetensors").read_bytes() == b"precious"


TINY_NET = """
import torch.nn as nn
def tiny(num_classes, in_chans):
    return nn.Sequential(nn.Conv2d(in_chans, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, num_classes))
"""


def test_train_digits_end_to_end(tmp_path, capsys):
    """A real (small) training run: weights and a card whose accuracy eval reproduces."""
    (tmp_path / "net.py").write_text(TINY_NET)
    out = tmp_path / "digits"
    model = f"{tmp_path}/net.py:tiny"
    args = ["train", model, "--data", "digits", "--epochs", "4", "--lr", "0.05",
            "--batch-size", "64", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    card = read_card(out / "model.json")
    assert card.dataset == "digits" and card.architecture.input_size == (8, 8)
    assert card.training_command.startswith(f"shrink train {model} --data digits --epochs 4")
    assert card.test_accuracy > 40.0  # ten classes: chance is 10%
    capsys.readouterr()
    # The card names net.py: it runs only when the user hands the file over.
    assert main(["eval", str(out / "model.safetensors"), "--data", "digits", "--json"]) == 2
    _one_error_line(capsys, r"names the Python code .*net.py:tiny.*--model-code .*net.py")
    assert main(["eval", str(out / "model.safetensors"), "--data", "digits", "--json",
                 "--model-code", str(tmp_path / "net.py")]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(card.test_accuracy, abs=0.01)
