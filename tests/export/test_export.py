"""The export stage: parity, metadata, dynamic batch, exporter choice, fp16, slim."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
import torch

from shrink.errors import ShrinkError, ShrinkValueError
from shrink.export import ExportConfig, export, read_metadata
from shrink.export import exporters as exporters_module
from shrink.ort_session import create_session

from export_fixtures import CLASSES, SHAPE, tiny_loaded, tiny_split


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    return export(tiny_loaded(), ExportConfig(), out, eval_split=tiny_split()), out


def test_export_passes_parity_on_eval_set(exported):
    result, out = exported
    assert out.is_file()
    assert result.exporter == "dynamo" and result.fallback_reason is None
    assert result.parity.passed and not result.parity.failures
    assert [b.batch for b in result.parity.batches] == [1, 3]
    assert all(b.max_tolerance_ratio <= 1.0 for b in result.parity.batches)
    assert result.parity.eval_images == 64 and result.parity.top1_agreement == 1.0
    assert any("onnx.checker" in c for c in result.checks)


def test_export_writes_metadata(exported):
    result, out = exported
    meta = read_metadata(out)
    assert meta == result.metadata
    assert meta["input_name"] == "input" and meta["input_layout"] == "NCHW"
    assert json.loads(meta["input_shape"]) == ["batch", *SHAPE]
    assert json.loads(meta["mean"]) == [0.5] and json.loads(meta["std"]) == [0.25]
    assert json.loads(meta["classes"]) == [f"c{i}" for i in range(CLASSES)]
    assert meta["source_model"] == "tiny" and int(meta["params"]) > 0 and int(meta["macs"]) > 0
    assert meta["shrink_version"] and meta["opset"] == "18"
    assert onnx.load(str(out)).opset_import[0].version == 18


@pytest.mark.parametrize("batch", [1, 2, 5, 17])
def test_export_has_dynamic_batch(exported, batch):
    _, out = exported
    session = create_session(out, "cpu")
    assert isinstance(session.get_inputs()[0].shape[0], str)
    x = np.random.default_rng(0).standard_normal((batch, *SHAPE)).astype(np.float32)
    assert session.run(None, {"input": x})[0].shape == (batch, CLASSES)


def test_export_does_not_change_the_model(tmp_path):
    loaded = tiny_loaded()
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    export(loaded, ExportConfig(precision="fp16"), tmp_path / "m16.onnx")
    after = loaded.model.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items() if v.is_floating_point())


def test_fp16_export_reports_sqnr_and_agreement(tmp_path):
    result = export(tiny_loaded(), ExportConfig(precision="fp16"), tmp_path / "m16.onnx", eval_split=tiny_split())
    assert result.precision == "fp16" and result.parity.passed
    assert result.parity.eval_sqnr_db > 35 and result.parity.top1_agreement >= 0.99
    session = create_session(tmp_path / "m16.onnx", "cpu")
    assert session.get_inputs()[0].type == "tensor(float)"  # fp32 I/O: a drop-in for the fp32 file
    inits = onnx.load(str(tmp_path / "m16.onnx")).graph.initializer
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in inits)


def test_slim_is_verified_again(tmp_path):
    result = export(tiny_loaded(), ExportConfig(slim=True), tmp_path / "slim.onnx", eval_split=tiny_split(16))
    assert result.slim is not None
    assert any(c.startswith("after onnxslim: parity") for c in result.checks)
    assert read_metadata(tmp_path / "slim.onnx")["input_layout"] == "NCHW"


def test_torchscript_fallback_is_logged_with_reason(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated dynamo failure")

    monkeypatch.setattr(exporters_module, "_dynamo", broken)
    with caplog.at_level(logging.WARNING):
        result = export(tiny_loaded(), ExportConfig(), tmp_path / "ts.onnx", eval_split=tiny_split(16))
    assert result.exporter == "torchscript"
    assert "simulated dynamo failure" in result.fallback_reason
    assert "simulated dynamo failure" in caplog.text
    assert result.parity.passed and isinstance(result.input_shape[0], str)


def test_named_exporter_does_not_fall_back(tmp_path, monkeypatch):
    monkeypatch.setattr(exporters_module, "_dynamo", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("nope")))
    with pytest.raises(ShrinkError, match="dynamo exporter failed: RuntimeError: nope"):
        export(tiny_loaded(), ExportConfig(exporter="dynamo"), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_eval_split_of_the_wrong_shape_is_refused(tmp_path):
    from shrink.data import load_data

    with pytest.raises(ShrinkError, match="takes inputs of shape"):
        export(tiny_loaded(), ExportConfig(), tmp_path / "x.onnx", eval_split=load_data("synthetic:3x8x8", "test"))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"opset": 16}, "opset"), ({"exporter": "jit"}, "exporter"), ({"precision": "int8"}, "precision"),
     ({"eval_limit": 0}, "eval_limit")],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ShrinkValueError, match=match):
        ExportConfig(**kwargs)


def test_config_round_trips():
    config = ExportConfig(precision="fp16", slim=True, eval_limit=100)
    assert ExportConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ShrinkValueError, match="unknown export config keys: bogus"):
        ExportConfig.from_dict({"bogus": 1})
