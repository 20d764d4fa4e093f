"""A detector of your own, written in plain PyTorch (examples/yolo_style.py), through file.py:factory:
it prunes exactly with its prediction layers whole, exports with named outputs, and its ONNX file is
scored by its own decoding, which needs its code back."""

from pathlib import Path

import numpy as np
import pytest
import torch

from shrink.data import BatchOptions, load_data
from shrink.errors import ShrinkError
from shrink.evaluate import evaluate_onnx, evaluate_torch
from shrink.export import ExportConfig, export
from shrink.models import LoadedModel, ModelSpec
from shrink.models.code import ModelCode
from shrink.models.registry import create_model
from shrink.prune import PruneConfig, apply, check_exactness, plan
from shrink.tasks import Task

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "yolo_style.py"


@pytest.fixture(scope="module")
def detector():
    code = ModelCode.read(EXAMPLE)
    spec = ModelSpec(name=f"{EXAMPLE}:build", num_classes=11, input_size=(128, 128), task="detection",
                     code_sha256=code.sha256)
    torch.manual_seed(0)
    return LoadedModel(create_model(spec, code=code).eval(), spec, spec.name, code=code), code


def test_it_prunes_exactly_and_keeps_what_writes_boxes_and_classes(detector):
    loaded, _ = detector
    split = load_data("fmnist-det", "test", scenes=4)
    x, _ = next(iter(split.batches(BatchOptions(batch_size=2))))
    result = plan(loaded.model, (x,), PruneConfig(ratio=0.5, round_to=8))
    report = check_exactness(loaded.model, result, (x,))
    assert report.passed and report.kind == "exact", report.summary()
    kept = {lw.root for lw in result.left_whole if "model output" in lw.reason}
    assert kept == {"heads.0.box.1", "heads.0.cls.1", "heads.1.box.1", "heads.1.cls.1"}
    assert result.mac_reduction > 2.0
    with torch.no_grad():
        assert [o.shape for o in apply(loaded.model, result)(x)] == [o.shape for o in loaded.model(x)]


@pytest.mark.slow  # an export and two scorings: 15-30 s on 2 cores
def test_its_onnx_file_scores_as_the_pytorch_model_with_its_code_and_not_without(detector, tmp_path):
    loaded, code = detector
    split = load_data("fmnist-det", "test", scenes=8)
    out = tmp_path / "yolo.onnx"
    result = export(loaded, ExportConfig(), out, eval_split=split)
    assert result.metadata["architecture_sha256"] == code.sha256
    torch_score = evaluate_torch(loaded.model, split, batch_size=4, task=Task.DETECTION)
    onnx_score = evaluate_onnx(out, split, batch_size=4, code=code)
    assert onnx_score.metric == "mAP@[.5:.95]" and onnx_score.total == 8
    assert np.isclose(onnx_score.accuracy, torch_score.accuracy, atol=1e-3)
    with pytest.raises(ShrinkError, match="a file.s word is not enough to run code"):
        evaluate_onnx(out, split, batch_size=4)
