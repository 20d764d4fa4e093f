"""A pruned model is saved as plan.json + pruned.safetensors and loads back bit-identically,
rebuilt from the registry (no pickled code)."""

import json

import pytest
import torch

from shrink.errors import ShrinkError
from shrink.models import create_model, default_spec
from shrink.load import load_model
from shrink.prune import PruneConfig, apply, plan
from shrink.prune.saving import load_pruned, read_plan, save_pruned, torch_pruning_history
from shrink.prune.unstructured import magnitude_prune


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = default_spec("fmnist_resnet18")
    model = create_model(spec).eval()
    x = torch.randn(2, *spec.input_shape)
    result = plan(model, x, PruneConfig(ratio=0.5, steps=2))
    pruned = apply(model, result)
    with torch.no_grad():  # weights that differ from a fresh init, as after fine-tuning
        for p in pruned.parameters():
            p.add_(0.01)
    directory = save_pruned(tmp_path_factory.mktemp("pruned") / "run", pruned, result, spec, source="fmnist_resnet18")
    return directory, pruned, result, x


def test_round_trip_is_bit_identical(pruned_dir):
    directory, pruned, result, x = pruned_dir
    loaded = load_pruned(directory)
    assert loaded.spec.name == "fmnist_resnet18" and loaded.source == str(directory)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), pruned.eval()(x))
    assert read_plan(directory) == result


def test_load_model_dispatches_to_the_pruned_directory(pruned_dir):
    directory, pruned, _, x = pruned_dir
    loaded = load_model(str(directory))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), pruned(x))


def test_plan_json_is_readable(pruned_dir):
    directory, _, result, _ = pruned_dir
    document = json.loads((directory / "plan.json").read_text())
    assert document["model"]["name"] == "fmnist_resnet18"
    assert document["after"] == {"macs": result.after.macs, "params": result.after.params}
    assert len(document["plan_hash"]) == 64
    history = document["torch_pruning_history"]
    assert history == torch_pruning_history(result) and history[0][1] is True
    assert len(history) == len(result.groups)


def test_refuses_a_non_empty_directory(pruned_dir):
    directory, pruned, result, _ = pruned_dir
    with pytest.raises(ShrinkError, match="is not empty; choose another or pass --force"):
        save_pruned(directory, pruned, result, default_spec("fmnist_resnet18"))


def test_corrupt_weights_are_detected(pruned_dir, tmp_path):
    directory, pruned, result, _ = pruned_dir
    copy = save_pruned(tmp_path / "copy", pruned, result, default_spec("fmnist_resnet18"))
    with open(copy / "pruned.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ShrinkError, match="does not match the sha256"):
        load_pruned(copy)


def test_unstructured_round_trip(tmp_path):
    torch.manual_seed(0)
    spec = default_spec("fmnist_resnet18")
    model = create_model(spec).eval()
    sparse, report = magnitude_prune(model, 0.5)
    save_pruned(tmp_path / "sparse", sparse, report, spec)
    loaded = load_pruned(tmp_path / "sparse")
    x = torch.randn(2, *spec.input_shape)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), sparse(x))
    assert json.loads((tmp_path / "sparse" / "plan.json").read_text())["mode"] == "unstructured"


def test_shipped_reference_keeps_its_card(tmp_path):
    from shipped_models import REFERENCE_RESNET18

    from shrink.cli import main

    if not REFERENCE_RESNET18.is_file():
        pytest.skip("shrink/references/fmnist_resnet18.safetensors is not shipped in this checkout")
    out = tmp_path / "r18"
    assert main(["prune", str(REFERENCE_RESNET18), "--ratio", "0.5", "--out", str(out), "--no-verify"]) == 0
    loaded, dense = load_model(str(out)), load_model(str(REFERENCE_RESNET18))
    assert loaded.card == dense.card and loaded.card.classes[0] == "T-shirt/top"
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), apply(dense.model, read_plan(out))(x))
