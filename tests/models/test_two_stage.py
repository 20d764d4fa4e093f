"""Faster R-CNN as one batch-wide graph (shrink.models.two_stage): the same detections as
torchvision's own forward, any batch size, equal scores ordered alike in PyTorch and onnxruntime."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from shrink.errors import ShrinkError
from shrink.export.exporters import torch_to_onnx
from shrink.models.decoding import onnx_detection_decoder
from shrink.models.registry import create_model
from shrink.models.spec import ModelSpec
from shrink.models.two_stage import OUTPUT_NAMES, TwoStageNet, best_first
from shrink.prune.exactness import randomize
from shrink.recover.objectives import hard_loss, model_task
from shrink.tasks import Task

NAME = "tvdet:fasterrcnn_mobilenet_v3_large_320_fpn"
SIZE = (128, 128)


@pytest.fixture(scope="module")
def model() -> TwoStageNet:
    """Weights whose proposals are ranked by real differences: untrained, every objectness logit is
    within 1e-7 of 0 and the ranking is left to rounding; randomized, they saturate the sigmoid."""
    torch.manual_seed(0)
    model = create_model(ModelSpec(name=NAME, num_classes=11, input_size=SIZE))
    randomize(model, (torch.randn(4, 3, *SIZE),))
    with torch.no_grad():  # logits of a few units, as a trained RPN gives
        model.detector.rpn.head.cls_logits.weight.mul_(0.2)
        model.detector.rpn.head.cls_logits.bias.mul_(0.2)
    return model.eval()


def test_the_registry_builds_it_for_its_task():
    model = create_model(ModelSpec(name=NAME, num_classes=11, input_size=SIZE))
    assert isinstance(model, TwoStageNet) and model.output_names == OUTPUT_NAMES
    assert model_task(model) is Task.DETECTION
    assert "anchors" not in model.state_dict()  # derived from the input size, not weights


def test_decode_gives_torchvisions_own_detections(model):
    x = torch.randn(3, 3, *SIZE)
    with torch.no_grad():
        outputs = model(x)
        decoded = model.decode([o.numpy() for o in outputs])  # as onnxruntime returns them
        reference = model.detector(list(x))
    assert sum(len(r["boxes"]) for r in reference) > 0  # the comparison has detections to compare
    for mine, theirs in zip(decoded, reference):
        assert torch.equal(mine["labels"], theirs["labels"])
        # the box head runs on padded rows too: a matmul of another size rounds the last bits apart
        torch.testing.assert_close(mine["boxes"], theirs["boxes"], atol=1e-2, rtol=0)
        torch.testing.assert_close(mine["scores"], theirs["scores"], atol=1e-4, rtol=0)


def test_the_proposals_are_torchvisions_and_padding_is_all_zero(model):
    from torchvision.models.detection.image_list import ImageList

    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        proposals = model(x)[OUTPUT_NAMES.index("proposals")]
        theirs, _ = model.detector.rpn(ImageList(x, [SIZE] * 2), model.detector.backbone(x))
    assert proposals.shape == (2, model.proposals_per_image, 4)
    for mine, reference in zip(proposals, theirs):
        assert torch.equal(mine[: len(reference)], reference)
        assert not mine[len(reference):].any()


def test_one_image_alone_or_in_a_batch_gets_the_same_proposals(model):
    x = torch.randn(3, 3, *SIZE)
    with torch.no_grad():
        batch = model(x)[OUTPUT_NAMES.index("proposals")]
        alone = model(x[1:2])[OUTPUT_NAMES.index("proposals")]
    # no image leaks into another's; convolutions round by batch size, which these weights amplify
    # to a tenth of a pixel on a few boxes
    assert torch.equal(batch[1].any(-1), alone[0].any(-1))
    torch.testing.assert_close(batch[1], alone[0], rtol=0, atol=0.5)


def test_equal_scores_keep_index_order():
    scores = torch.tensor([[0.5, 2.0, 0.5, 2.0, 1.0]])
    assert best_first(scores, 4).tolist() == [[1, 3, 4, 0]]


def test_the_graph_has_a_dynamic_batch_and_breaks_ties_as_pytorch_does():
    """Untrained weights and flat images: every score ties. Exported at batch 2, run at 1 and 3."""
    model = create_model(ModelSpec(name=NAME, num_classes=11, input_size=SIZE)).eval()
    exported = torch_to_onnx(model, torch.randn(2, 3, *SIZE), exporter="auto", opset=18, dynamic_batch=True,
                             output_names=model.output_names)
    assert exported.exporter == "torchscript" and "data-dependent" in exported.fallback_reason
    session = ort.InferenceSession(exported.proto.SerializeToString(), providers=["CPUExecutionProvider"])
    shapes = {o.name: o.shape for o in session.get_outputs()}
    assert shapes["cls_logits"] == ["batch", 150, 11] and shapes["bbox_regression"] == ["batch", 150, 44]
    assert shapes["rpn_objectness"] == ["batch", model.anchor_count]  # fixed sizes the decoder can read
    # the decoder rebuilt from the file alone (architecture, input size, cls_logits' class count)
    metadata = {"architecture": NAME, "output_names": json.dumps(list(OUTPUT_NAMES))}
    outputs = session.run(None, {"input": torch.randn(2, 3, *SIZE).numpy()})
    rebuilt, own = onnx_detection_decoder(metadata, session)(outputs), model.decode(outputs)
    assert sum(len(d["boxes"]) for d in own) > 0
    assert all(torch.equal(a[k], b[k]) for a, b in zip(rebuilt, own) for k in ("boxes", "scores", "labels"))
    flat = torch.zeros(3, 3, *SIZE)
    flat[1, :, 20:70, 30:60] = 1.0
    flat[2] = 0.5
    for x in (flat[:1], flat):
        with torch.no_grad():
            expected = model(x)
        got = session.run(None, {"input": x.numpy()})
        for name, ref, out in zip(model.output_names, expected, got):
            np.testing.assert_allclose(out, ref.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.slow  # 7 s: the fast tie test above rebuilds the decoder from the file's shapes
def test_the_exported_file_is_decoded_and_scored_by_the_decoder_its_metadata_names(tmp_path):
    from shrink.data import load_data
    from shrink.evaluate import evaluate_onnx
    from shrink.export import ExportConfig, export
    from shrink.models import LoadedModel
    from shrink.models.decoding import onnx_detection_decoder
    from shrink.onnxio.metadata import read_metadata

    torch.manual_seed(0)
    spec = ModelSpec(name=NAME, num_classes=11, input_size=SIZE)
    model = create_model(spec).eval()
    export(LoadedModel(model, spec, NAME), ExportConfig(), tmp_path / "frcnn.onnx")
    session = ort.InferenceSession(str(tmp_path / "frcnn.onnx"), providers=["CPUExecutionProvider"])
    # rebuilt from the file alone: its architecture, its input size and cls_logits' class count
    decode = onnx_detection_decoder(read_metadata(tmp_path / "frcnn.onnx"), session)
    outputs = session.run(None, {"input": torch.randn(2, 3, *SIZE).numpy()})
    rebuilt, own = decode(outputs), model.decode(outputs)
    assert sum(len(d["boxes"]) for d in own) > 0
    for a, b in zip(rebuilt, own):
        assert all(torch.equal(a[k], b[k]) for k in ("boxes", "scores", "labels"))
    scored = evaluate_onnx(tmp_path / "frcnn.onnx", load_data("fmnist-det", "test", scenes=8))
    assert scored.metric == "mAP@[.5:.95]" and scored.total == 8


def test_training_it_is_refused_in_one_line():
    model = create_model(ModelSpec(name=NAME, num_classes=11, input_size=SIZE))
    with pytest.raises(ShrinkError, match="Faster R-CNN cannot be fine-tuned or distilled by shrink"):
        hard_loss(Task.DETECTION, model)
