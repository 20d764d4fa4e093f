"""`shrink run` as a new user runs it: their own `my_model.py:factory`, trained weights with a card,
and a folder of real PNG images whose size is not the model's input. The report's deploy section,
followed by a script that knows nothing of torch-shrink, gives the top-1 the report claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from own_model_fixtures import INPUT_SIZE, RESIZE, user_directory

from shrink.cli import main

CLIENT = Path(__file__).parent / "data" / "contract_client.py"

RECIPE = """
name: own
model: {{source: trained/model.safetensors, code: my_model.py}}
data:
  name: imagefolder:images
  eval_images: null
  train_images: 150
  select_images: 30
  folder: {{image_size: {size}, resize: {resize}, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], num_workers: 0}}
prune: {{ratio: 0.5, round_to: 4}}
recover:
  reconstruct_images: 100
  train: {{epochs: 1, batch_size: 32}}
export: {{eval_limit: 32, exporter: torchscript}}
quantize: null  # the int8 search has its own tests; here the contract of what ships
bench: {{min_seconds: 0.3, min_runs: 10, warmup_runs: 3, warmup_seconds: 0.1}}
"""


@pytest.fixture(scope="module")
def own_run(tmp_path_factory, fmnist_dir):
    """A user's directory (model code, images, trained weights, recipe) and a run from elsewhere."""
    home = tmp_path_factory.mktemp("user")
    user_directory(home, fmnist_dir, epochs=2)
    recipe = home / "own.yaml"
    recipe.write_text(RECIPE.format(size=INPUT_SIZE, resize=RESIZE), encoding="utf-8")
    out = tmp_path_factory.mktemp("elsewhere") / "run"
    # Run from another directory: the recipe's relative paths are relative to the recipe file.
    done = subprocess.run([sys.executable, "-m", "shrink", "run", str(recipe), "--quiet", "--out", str(out)],
                          cwd=tmp_path_factory.mktemp("cwd"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return home, out


def test_the_report_deploy_section_reproduces_the_reported_top1(own_run):
    home, out = own_run
    manifest = json.loads((out / "manifest.json").read_text())
    shipped = next(c for c in manifest["candidates"] if c["shipped"])
    assert manifest["inputs"]["data"]["eval_images"] == 90  # every val image: the script sees the same ones
    follow = subprocess.run([sys.executable, str(CLIENT), str(out / shipped["file"]), str(home / "images" / "val"),
                             "--from-report", str(out / "report.md")], capture_output=True, text=True, check=True)
    deployed = json.loads(follow.stdout)
    assert deployed["total"] == 90
    assert abs(deployed["accuracy"] - shipped["accuracy_onnx"]) <= 0.5, (deployed, shipped["accuracy_onnx"])


def test_the_contract_is_complete_and_the_same_everywhere(own_run):
    from shrink.data.onnx_contract import read_contract

    _, out = own_run
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["preprocessing"]["record"]
    assert {"color", "resize", "interpolation", "crop", "scale", "mean", "std", "layout", "dtype"} <= set(record)
    assert (record["resize"], record["crop"], record["color"]) == (RESIZE, [INPUT_SIZE, INPUT_SIZE], "RGB")
    for c in manifest["candidates"]:
        if c["file"]:
            assert read_contract(out / c["file"]).preprocessing.to_dict() == record
    report = (out / "report.md").read_text()
    assert f"shorter side is {RESIZE} px" in report and f"crop the centre {INPUT_SIZE}x{INPUT_SIZE}" in report


def test_the_run_records_absolute_paths_and_a_copy_of_the_model_code(own_run):
    home, out = own_run
    recipe = (out / "recipe.yaml").read_text()
    assert f"source: {home / 'trained' / 'model.safetensors'}" in recipe
    assert f"imagefolder:{home / 'images'}" in recipe
    copy = out / "model_code" / "my_model.py"
    assert copy.read_bytes() == (home / "my_model.py").read_bytes()
    # The pruned model reloads from any directory with the copy the run kept.
    assert main(["eval", str(out), "--model-code", str(copy), "--data", f"imagefolder:{home / 'images'}",
                 "--limit", "8"]) == 0


def test_the_report_code_prepares_an_image_exactly_as_the_record_does(own_run):
    import re

    import numpy as np
    from PIL import Image

    from shrink.data.preprocessing import Preprocessing

    home, out = own_run
    report = (out / "report.md").read_text()
    code = re.search(r"```python\n(.*?)```", report[report.index("## Deploying"):], re.S).group(1)
    namespace: dict = {}
    exec(code[:code.index("import onnxruntime")], namespace)  # the report's preprocess(), as printed
    record = Preprocessing.from_dict(json.loads((out / "manifest.json").read_text())["preprocessing"]["record"])
    image = sorted((home / "images" / "val" / "bag").iterdir())[0]
    np.testing.assert_array_equal(namespace["preprocess"](image)[0], record.apply(Image.open(image)))


def test_a_recipe_without_data_folder_reads_the_images_by_the_model_card(own_run):
    """A model trained by `shrink train` carries its record on its card: a recipe that leaves
    data.folder out reads the folder by it (and says so), instead of at 224 px with ImageNet's crop."""
    from shrink.models import read_card
    from shrink.recipe import load_recipe
    from shrink.run.inputs import load_inputs

    home, _ = own_run
    recipe = home / "bare.yaml"
    recipe.write_text("model: {source: trained/model.safetensors, code: my_model.py}\n"
                      "data: {name: 'imagefolder:images', eval_images: 8, train_images: 16, select_images: 0}\n",
                      encoding="utf-8")
    inputs = load_inputs(load_recipe(recipe))
    assert inputs.info.contract == read_card(home / "trained" / "model.json").preprocessing
    assert any("read by the preprocessing record on the model's card" in note for note in inputs.notes)
