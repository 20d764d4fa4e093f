"""Provenance and metadata without exporting: pruned-run fields, card fields, JSON values."""

from __future__ import annotations

import json

import onnx
from export_fixtures import tiny_loaded

from shrink.export.metadata import export_metadata, provenance_for
from shrink.models import LoadedModel
from shrink.onnxio.metadata import read_metadata, set_metadata


def test_pruned_run_fields_come_from_plan_json(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(
        {"plan_hash": "abc123", "before": {"macs": 900, "params": 90}, "after": {"macs": 300, "params": 30}}))
    loaded = tiny_loaded()
    pruned = LoadedModel(loaded.model, loaded.spec, str(tmp_path))
    prov = provenance_for(pruned)
    assert (prov.plan_hash, prov.macs, prov.params) == ("abc123", 300, 30)
    meta = export_metadata(prov, precision="fp32", exporter="dynamo", opset=18, dynamic_batch=True)
    assert meta["plan_hash"] == "abc123" and meta["macs"] == "300" and meta["params"] == "30"
    assert "mean" not in meta  # unknown preprocessing is left out, not guessed


def test_static_batch_and_metadata_round_trip():
    prov = provenance_for(tiny_loaded())
    meta = export_metadata(prov, precision="fp16", exporter="torchscript", opset=17, dynamic_batch=False)
    assert json.loads(meta["input_shape"]) == [1, 1, 12, 12]
    proto = onnx.ModelProto()
    proto.metadata_props.add(key="precision", value="old")
    set_metadata(proto, meta)
    assert read_metadata(proto) == meta  # replaced, not duplicated
