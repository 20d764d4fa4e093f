"""Exporting segmenters and detectors: each output the model returns becomes a named ONNX output,
and parity is checked on every one of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from shrink.errors import ShrinkError
from shrink.export import ExportConfig, export, read_metadata
from shrink.export import parity as parity_module
from shrink.models import LoadedModel, ModelSpec
from shrink.models.registry import create_model
from shrink.ort_session import create_session


class TwoHeads(nn.Module):
    """A one-stage detector's shape in miniature: a trunk and two heads, returned as a tuple."""

    output_names = ("boxes", "scores")

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.boxes, self.scores = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 5, 1)

    def forward(self, x):
        f = self.trunk(x)
        return self.boxes(f).flatten(2).transpose(1, 2), self.scores(f).flatten(2).transpose(1, 2)


def _two_heads() -> LoadedModel:
    torch.manual_seed(0)
    spec = ModelSpec(name="tests/two_heads.py:build", num_classes=5, input_size=(16, 16), task="detection")
    return LoadedModel(model=TwoHeads().eval(), spec=spec, source="two_heads")


def test_every_output_is_named_and_matches_pytorch(tmp_path):
    loaded = _two_heads()
    result = export(loaded, ExportConfig(), tmp_path / "det.onnx")
    session = create_session(tmp_path / "det.onnx", "cpu")
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores"]
    x = torch.randn(3, 3, 16, 16)
    got = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        want = loaded.model(x)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)
    assert "on every output (boxes, scores)" in " ".join(result.checks)
    meta = read_metadata(tmp_path / "det.onnx")
    assert meta["task"] == "detection" and json.loads(meta["output_names"]) == ["boxes", "scores"]


def test_parity_fails_when_one_output_of_several_is_off(tmp_path, monkeypatch):
    real = parity_module._ort_outputs

    def second_output_off(session, x):
        outputs = real(session, x)
        return [outputs[0], outputs[1] + 0.01]

    monkeypatch.setattr(parity_module, "_ort_outputs", second_output_off)
    with pytest.raises(ShrinkError, match="parity with PyTorch failed: batch 1: outputs differ"):
        export(_two_heads(), ExportConfig(), tmp_path / "det.onnx")
    assert not (tmp_path / "det.onnx").exists()


@pytest.mark.slow  # 12 s: the fast suite's export coverage is the two-head model above
def test_a_torchvision_segmenter_exports_its_logits_with_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(name="tvseg:lraspp_mobilenet_v3_large", num_classes=6, input_size=(64, 64))
    loaded = LoadedModel(model=create_model(spec).eval(), spec=spec, source=spec.name)
    result = export(loaded, ExportConfig(), tmp_path / "seg.onnx")
    assert result.input_shape == ("batch", 3, 64, 64)
    session = create_session(tmp_path / "seg.onnx", "cpu")
    assert [o.name for o in session.get_outputs()] == ["logits"]
    assert session.run(None, {"input": np.zeros((2, 3, 64, 64), np.float32)})[0].shape == (2, 6, 64, 64)
    assert read_metadata(tmp_path / "seg.onnx")["task"] == "segmentation"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tvdet:ssdlite320_mobilenet_v3_large", "tvdet:fcos_resnet50_fpn",
                                  "tvdet:retinanet_resnet50_fpn", "tvseg:deeplabv3_mobilenet_v3_large",
                                  "tvseg:fcn_resnet50", "tvseg:deeplabv3_resnet50",
                                  "tvdet:fasterrcnn_mobilenet_v3_large_320_fpn"])
def test_the_support_table_exports_with_parity(tmp_path, name):
    torch.manual_seed(0)
    spec = ModelSpec(name=name, num_classes=11, input_size=(128, 128))
    loaded = LoadedModel(model=create_model(spec).eval(), spec=spec, source=spec.name)
    result = export(loaded, ExportConfig(), tmp_path / "model.onnx")
    assert result.parity.passed
    names = [o.name for o in create_session(tmp_path / "model.onnx", "cpu").get_outputs()]
    assert names == list(getattr(loaded.model, "output_names"))
