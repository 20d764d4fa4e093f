import json
import shutil

import pytest
import torch

from shipped_models import REFERENCE_LRASPP, REFERENCE_MOBILENETV2, REFERENCE_RESNET18, REFERENCE_SSDLITE
from shrink.errors import ShrinkError
from shrink.fileio import sha256_file
from shrink.models import read_card
from shrink.load import load_model


@pytest.mark.parametrize("weights", [REFERENCE_RESNET18, REFERENCE_MOBILENETV2])
def test_shipped_reference_cards_are_complete_and_match(weights):
    card = read_card(weights.with_suffix(".json"))
    assert card.sha256 == sha256_file(weights)
    assert card.dataset == "fmnist" and card.test_accuracy >= 93.5
    assert card.training_command.startswith(f"shrink train {card.architecture.name} --data fmnist")
    assert card.seed is not None


@pytest.mark.parametrize("weights, dataset, task, floor", [
    (REFERENCE_LRASPP, "fmnist-seg", "segmentation", 50.0),  # test mIoU, %
    (REFERENCE_SSDLITE, "fmnist-det", "detection", 60.0),  # test mAP@[.5:.95], %
], ids=["lraspp", "ssdlite"])
def test_shipped_segmenter_and_detector_cards_are_complete_and_match(weights, dataset, task, floor):
    card = read_card(weights.with_suffix(".json"))
    assert card.sha256 == sha256_file(weights)
    assert card.dataset == dataset and card.architecture.task == task
    assert card.test_accuracy >= floor
    assert card.training_command.startswith(f"shrink train {card.architecture.name} --data {dataset} ")
    assert "--num-classes 11 --input-size 128x128" in card.training_command
    loaded = load_model(weights.stem)  # the registry name loads the shipped weights
    assert loaded.spec.predicts.value == task and not loaded.untrained


def test_reference_model_loads_from_weights_or_card():
    a = load_model(str(REFERENCE_RESNET18))
    b = load_model(str(REFERENCE_RESNET18.with_suffix(".json")))
    assert a.spec.name == "fmnist_resnet18" and a.input_shape == (1, 28, 28)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x))


def test_weights_without_card_ask_for_the_architecture(tmp_path):
    shutil.copy(REFERENCE_MOBILENETV2, tmp_path / "w.safetensors")
    with pytest.raises(ShrinkError, match="no model card w.json .* NAME --weights"):
        load_model(str(tmp_path / "w.safetensors"))
    loaded = load_model("fmnist_mobilenetv2", weights=str(tmp_path / "w.safetensors"))
    assert loaded.spec.name == "fmnist_mobilenetv2"


def test_card_checksum_mismatch(tmp_path):
    shutil.copy(REFERENCE_MOBILENETV2, tmp_path / "m.safetensors")
    card = json.loads(REFERENCE_MOBILENETV2.with_suffix(".json").read_text())
    card["weights"] = "m.safetensors"
    card["sha256"] = "0" * 64
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ShrinkError, match="does not match the sha256 on its card"):
        load_model(str(tmp_path / "m.json"))


def test_a_reference_name_loads_its_shipped_trained_weights():
    from shrink.load import load_model

    by_name, by_file = load_model("fmnist_resnet18"), load_model(str(REFERENCE_RESNET18))
    assert not by_name.untrained and by_name.card == by_file.card and by_name.card.test_accuracy > 90
    for a, b in zip(by_name.model.state_dict().values(), by_file.model.state_dict().values()):
        assert torch.equal(a, b)


def test_untrained_weights_are_said_on_every_measuring_command(tmp_path, capsys):
    """A tv: model without --weights is random: eval, export and prune say so on stderr."""
    from shrink.cli import main

    common = ["--num-classes", "10", "--in-chans", "1", "--input-size", "28"]
    assert main(["eval", "tv:resnet18", *common, "--data", "fmnist", "--limit", "8", "--device", "cpu"]) == 0
    assert "tv:resnet18 has untrained weights (random init" in capsys.readouterr().err
    assert main(["export", "tv:resnet18", *common, "--exporter", "torchscript", "--out", str(tmp_path / "m.onnx")]) == 0
    assert "untrained weights" in capsys.readouterr().err
    assert main(["prune", "tv:resnet18", *common, "--ratio", "0.5", "--no-verify", "--out", str(tmp_path / "p")]) == 0
    assert "untrained weights" in capsys.readouterr().err
    # Trained weights: no warning.
    assert main(["eval", "fmnist_resnet18", "--data", "fmnist", "--limit", "8", "--device", "cpu"]) == 0
    assert "untrained" not in capsys.readouterr().err


def test_architecture_flags_that_contradict_a_card_are_refused():
    from shrink.errors import ShrinkError
    from shrink.load import load_model

    with pytest.raises(ShrinkError, match=r"fixes its architecture \(num_classes 10\); leave out --num-classes"):
        load_model(str(REFERENCE_RESNET18), num_classes=3)
    assert load_model(str(REFERENCE_RESNET18), num_classes=10).spec.num_classes == 10  # agreeing is fine
