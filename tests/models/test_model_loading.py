import json
import shutil

import pytest
import torch

from shipped_models import REFERENCE_MOBILENETV2, REFERENCE_RESNET18
from shrink.errors import ShrinkError
from shrink.fileio import sha256_file
from shrink.models import load_model, read_card


@pytest.mark.parametrize("weights", [REFERENCE_RESNET18, REFERENCE_MOBILENETV2])
def test_shipped_reference_cards_are_complete_and_match(weights):
    card = read_card(weights.with_suffix(".json"))
    assert card.sha256 == sha256_file(weights)
    assert card.dataset == "fmnist" and card.test_accuracy >= 93.5
    assert card.training_command.startswith(f"shrink train {card.architecture.name} --data fmnist")
    assert card.seed is not None


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
