"""`shrink run` end to end on the shipped segmenter and detector references, bounded to minutes:
the report, the closing lines and the manifest speak the task's metric, say that the scenes are
composed from Fashion-MNIST, and a detector's deploy section decodes outside the graph."""

from __future__ import annotations

import json

import pytest

from shrink.pipeline import RunOptions, run
from shrink.recipe import load_recipe

SMALL = ("data.eval_images=48", "data.train_images=96", "data.select_images=16", "recover.reconstruct_images=32",
         "recover.train.epochs=1", "recover.train.batch_size=16", "export.eval_limit=8",
         "quantize=null",  # int8's decision has its own tests; this is the task's way through the run
         "bench.min_seconds=0.3", "bench.min_runs=10", "bench.warmup_runs=3", "bench.warmup_seconds=0.1")


@pytest.mark.slow
@pytest.mark.parametrize("recipe, metric", [("fmnist_lraspp", "mIoU"), ("fmnist_ssdlite", "mAP@[.5:.95]")])
def test_a_segmenter_and_a_detector_go_through_shrink_run(tmp_path, recipe, metric):
    result = run(load_recipe(recipe, overrides=SMALL), RunOptions(out=tmp_path / "run", quiet=True))
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    report = (result.run_dir / "report.md").read_text()
    assert manifest["inputs"]["model"]["spec"]["task"] in ("segmentation", "detection")
    assert f"{metric} onnxruntime" in report and "top-1 PyTorch" not in report
    assert "composed from Fashion-MNIST" in report
    assert any(line.startswith(metric) for line in result.summary)
    dense = next(c for c in manifest["candidates"] if c["name"] == "dense fp32")
    assert 0.0 < dense["accuracy_onnx"] <= 100.0
    if metric.startswith("mAP"):
        assert "detection_decoder('tvdet:ssdlite320_mobilenet_v3_large'" in report
