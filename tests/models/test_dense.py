"""Segmenters and one-stage detectors as graphs of plain tensors (shrink.models.dense)."""

import pytest
import torch

from shrink.errors import ShrinkError
from shrink.models.registry import create_model, list_models
from shrink.models.spec import ModelSpec
from shrink.tasks import Task

SEGMENTERS = ["tvseg:lraspp_mobilenet_v3_large", "tvseg:deeplabv3_mobilenet_v3_large", "tvseg:fcn_resnet50",
              "tvseg:deeplabv3_resnet50"]
DETECTORS = ["tvdet:ssdlite320_mobilenet_v3_large", "tvdet:fcos_resnet50_fpn", "tvdet:retinanet_resnet50_fpn"]


def test_the_registry_lists_segmenters_and_the_supported_detectors():
    names = list_models()
    assert set(SEGMENTERS + DETECTORS + ["tvdet:fasterrcnn_mobilenet_v3_large_320_fpn"]) <= set(names)
    assert "tvdet:maskrcnn_resnet50_fpn" not in names


def test_a_prefix_sets_the_task_and_a_contradicting_task_is_refused():
    assert ModelSpec(name=SEGMENTERS[0]).predicts is Task.SEGMENTATION
    assert ModelSpec(name=DETECTORS[0]).to_dict()["task"] == "detection"
    assert "task" not in ModelSpec(name="tv:resnet18").to_dict()  # classifier records unchanged
    with pytest.raises(ShrinkError, match="is a segmentation model, not detection"):
        ModelSpec(name=SEGMENTERS[0], task="detection")
    with pytest.raises(ShrinkError, match="unknown task 'boxes'; choose one of: classification"):
        ModelSpec(name="nets/mine.py:build", task="boxes")


def test_mask_rcnn_is_refused_with_the_detectors_that_work():
    with pytest.raises(ShrinkError, match="maskrcnn_resnet50_fpn adds mask or keypoint heads to its regions, which "
                                          "are not supported; the supported detectors are .*tvdet:ssdlite320_mobilenet_"
                                          "v3_large.*tvdet:fasterrcnn_mobilenet_v3_large_320_fpn"):
        create_model(ModelSpec(name="tvdet:maskrcnn_resnet50_fpn", num_classes=11))


def test_an_unknown_segmenter_lists_close_names():
    with pytest.raises(ShrinkError, match="unknown model 'tvseg:lraspp'; did you mean: tvseg:lraspp_mobilenet_v3_large"):
        create_model(ModelSpec(name="tvseg:lraspp", num_classes=11))


def test_a_segmenter_returns_per_pixel_logits():
    model = create_model(ModelSpec(name=SEGMENTERS[0], num_classes=5, input_size=(64, 64))).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5, 64, 64)
    assert model.output_names == ("logits",)


def test_decoding_the_head_outputs_is_the_detectors_own_postprocessing():
    """The graph stops at the heads; decode() outside it gives exactly what torchvision's forward does."""
    torch.manual_seed(0)
    model = create_model(ModelSpec(name=DETECTORS[0], num_classes=11, input_size=(128, 128))).eval()
    model.detector.score_thresh = 0.0  # random weights: keep every candidate so the comparison has boxes
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        outputs = model(x)
        decoded = model.decode([o.numpy() for o in outputs])  # as onnxruntime returns them
        reference = model.detector(list(x))
    assert model.output_names == ("bbox_regression", "cls_logits")
    assert [tuple(o.shape) for o in outputs] == [(2, 522, 4), (2, 522, 11)]
    for ours, theirs in zip(decoded, reference):
        assert len(ours["boxes"]) > 0
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(ours[key], theirs[key]), key


def test_a_detector_trains_with_its_own_loss():
    model = create_model(ModelSpec(name=DETECTORS[0], num_classes=11, input_size=(128, 128)))
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([3])}] * 2
    loss = model.loss(torch.randn(2, 3, 128, 128), targets)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert model.detector.head.classification_head.module_list[0][1].weight.grad is not None
