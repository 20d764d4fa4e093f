"""Pruning segmenters and detectors: backbone, neck and heads wherever the graph couples them, the
layers that write logits, boxes or masks kept whole, and the zero-then-remove check on every output.
Fast subset here; the whole list of the support table is `slow` (benchmarks/dense_zoo.py)."""

import pytest
import torch

from shrink.models.registry import create_model
from shrink.models.spec import ModelSpec
from shrink.prune import PruneConfig, apply, check_exactness, plan

FAST = [("tvseg:lraspp_mobilenet_v3_large", 64, "exact"), ("tvdet:ssdlite320_mobilenet_v3_large", 128, "exact")]
SLOW = [("tvseg:deeplabv3_mobilenet_v3_large", 128, "exact"), ("tvseg:fcn_resnet50", 128, "exact"),
        ("tvseg:deeplabv3_resnet50", 128, "exact"), ("tvdet:fcos_resnet50_fpn", 128, "exact+structural"),
        ("tvdet:retinanet_resnet50_fpn", 128, "exact"), ("tvdet:fasterrcnn_mobilenet_v3_large_320_fpn", 128, "exact")]


def _check(name: str, size: int, kind: str) -> None:
    torch.manual_seed(0)
    model = create_model(ModelSpec(name=name, num_classes=11, input_size=(size, size))).eval()
    inputs = (torch.randn(2, 3, size, size),)
    result = plan(model, inputs, PruneConfig(ratio=0.5, round_to=8))
    report = check_exactness(model, result, inputs)
    assert report.passed and report.kind == kind, report.summary()
    assert result.mac_reduction > 2.0
    pruned = apply(model, result)
    with torch.no_grad():
        dense_out, pruned_out = model(*inputs), pruned(*inputs)
    dense_out = dense_out if isinstance(dense_out, tuple) else (dense_out,)
    pruned_out = pruned_out if isinstance(pruned_out, tuple) else (pruned_out,)
    # what writes classes, boxes or masks is whole: every output keeps its shape
    assert [o.shape for o in pruned_out] == [o.shape for o in dense_out]


@pytest.mark.parametrize("name, size, kind", FAST, ids=[n for n, _, _ in FAST])
def test_fast_subset(name, size, kind):
    _check(name, size, kind)


@pytest.mark.slow
@pytest.mark.parametrize("name, size, kind", SLOW, ids=[n for n, _, _ in SLOW])
def test_the_support_table(name, size, kind):
    _check(name, size, kind)


def test_taylor_importance_scores_a_segmenter_by_its_per_pixel_loss_and_refuses_a_detector():
    from shrink.data import BatchOptions, load_data
    from shrink.errors import ShrinkValueError

    seg = load_data("fmnist-seg", "test", scenes=4)
    batches = list(seg.batches(BatchOptions(batch_size=2)))
    model = create_model(ModelSpec(name=FAST[0][0], num_classes=11, input_size=(128, 128))).eval()
    result = plan(model, (batches[0][0],), PruneConfig(ratio=0.5, importance="taylor", calibration_batches=2),
                  batches=batches)
    assert result.mac_reduction > 2.0
    det = load_data("fmnist-det", "test", scenes=4)
    batches = list(det.batches(BatchOptions(batch_size=2)))
    detector = create_model(ModelSpec(name=FAST[1][0], num_classes=11, input_size=(128, 128))).eval()
    with pytest.raises(ShrinkValueError, match="taylor importance needs a classifier's or a segmenter's labels"):
        plan(detector, (batches[0][0],), PruneConfig(ratio=0.5, importance="taylor"), batches=batches)
