"""The preprocessing round trip: a model trained on real PNG files, exported, and measured twice on
the same files, once by `shrink eval` and once by a deployer's script that reads only the file's
written contract (tests/data/contract_client.py: PIL, numpy and onnxruntime, no torch-shrink)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from own_model_fixtures import INPUT_SIZE, RESIZE, user_directory

from shrink.cli import main

CLIENT = Path(__file__).with_name("contract_client.py")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fmnist_dir):
    """(images root, model.onnx) for a small CNN trained 4 epochs on the PNG folder."""
    root = tmp_path_factory.mktemp("own")
    images, code = user_directory(root, fmnist_dir, epochs=4)
    onnx_path = root / "model.onnx"
    assert main(["export", str(root / "trained" / "model.safetensors"), "--model-code", str(code),
                 "--data", f"imagefolder:{images}", "--exporter", "torchscript", "--out", str(onnx_path)]) == 0
    return images, onnx_path


def _client(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(CLIENT), *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_written_contract_reproduces_shrink_eval(exported, capsys):
    images, onnx_path = exported
    capsys.readouterr()
    assert main(["eval", str(onnx_path), "--data", f"imagefolder:{images}", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    deployed = _client(str(onnx_path), str(images / "val"))
    assert measured["total"] == deployed["total"] == 90
    assert measured["accuracy"] > 60.0  # a trained model, so agreement is not agreement on noise
    assert abs(measured["accuracy"] - deployed["accuracy"]) <= 0.5


def test_the_card_and_the_file_carry_the_resize_and_crop(exported):
    from shrink.data.onnx_contract import read_contract
    from shrink.models import read_card

    images, onnx_path = exported
    card = read_card(onnx_path.parent / "trained" / "model.json")
    record = read_contract(onnx_path).preprocessing
    assert record == card.preprocessing
    assert (record.resize, record.crop, record.color) == (RESIZE, (INPUT_SIZE, INPUT_SIZE), "RGB")


def test_eval_refuses_options_that_contradict_the_file(exported, capsys):
    images, onnx_path = exported
    assert main(["eval", str(onnx_path), "--data", f"imagefolder:{images}", "--resize", "40"]) == 2
    assert "sets resize (resize 28)" in capsys.readouterr().err
