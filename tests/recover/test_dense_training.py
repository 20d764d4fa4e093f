"""Training and recovering segmenters and detectors: the task's loss from the loop's one forward,
the task's metric for validation and best epochs, distillation of dense outputs, the label-free
steps, and `shrink train` end to end. Real torchvision models on a few composed Fashion-MNIST
scenes (shrink.data.scenes)."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
import torch.nn.functional as F

from shrink.cli import main
from shrink.data import load_data
from shrink.errors import ShrinkError
from shrink.evaluate import evaluate_torch
from shrink.models.registry import create_model
from shrink.models.spec import ModelSpec
from shrink.recover import DistillConfig, RecoverConfig, TrainConfig, fit, recalibrate_bn, recover
from shrink.recover.bn import batch_norms
from shrink.recover.distill import detection_kd_loss, pixel_kd_loss
from shrink.recover.evaluation import sharded_score
from shrink.recover.objectives import hard_loss, model_task
from shrink.tasks import Task

SEG = "tvseg:lraspp_mobilenet_v3_large"
DET = "tvdet:ssdlite320_mobilenet_v3_large"
QUICK = dict(batch_size=8, optimizer="adamw", lr=0.003, warmup_epochs=0.0, augment=False, device="cpu",
             label_smoothing=0.0)


@functools.lru_cache(maxsize=None)
def _scenes(name: str, split: str, count: int):
    return load_data(name, split, scenes=count)


def _model(name: str, size: int = 128, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(ModelSpec(name=name, num_classes=11, input_size=(size, size)))


def _boxes(size: int) -> list[dict[str, torch.Tensor]]:
    """Three images: two boxes, none, one (xyxy in pixels of a size x size input)."""
    scale = size / 128
    return [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [60.0, 70.0, 100.0, 120.0]]) * scale,
             "labels": torch.tensor([3, 5])},
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
            {"boxes": torch.tensor([[5.0, 5.0, 30.0, 20.0]]) * scale, "labels": torch.tensor([1])}]


@pytest.mark.parametrize("name, size", [(DET, 128), ("tvdet:retinanet_resnet50_fpn", 64),
                                        ("tvdet:fcos_resnet50_fpn", 64)])
def test_the_loss_from_head_outputs_is_the_detectors_own_training_loss(name, size):
    """Both passes run in train mode, where BatchNorm normalizes by the batch's own statistics: the
    running statistics the first pass updates are never read by the second, so both see the same
    activations (these detectors have no dropout). Same loss, and the same gradients."""
    model = _model(name, size).train()
    x, targets = torch.randn(3, 3, size, size), _boxes(size)

    own = model.loss(x, targets)
    own.backward()
    own_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    ours = model.loss_from_outputs(model(x), targets)
    ours.backward()

    assert torch.isfinite(own) and own > 0
    assert torch.allclose(ours, own, rtol=1e-6, atol=0)
    for p, g in zip(model.parameters(), own_grads):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6)


def test_the_task_is_read_from_the_model():
    assert model_task(_model(SEG, 64)) is Task.SEGMENTATION
    assert model_task(_model(DET)) is Task.DETECTION
    assert model_task(torch.nn.Linear(3, 2)) is Task.CLASSIFICATION


def test_segmentation_cross_entropy_leaves_out_the_ignored_pixels():
    logits, masks = torch.randn(2, 4, 5, 5), torch.randint(0, 4, (2, 5, 5))
    masks[0, :2] = 255
    loss = hard_loss(Task.SEGMENTATION, None)(logits, masks, None, None)
    scored = masks != 255
    by_hand = F.cross_entropy(logits.permute(0, 2, 3, 1)[scored], masks[scored])
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_a_segmenter_trains_on_pixel_cross_entropy_and_is_validated_by_miou():
    train, val = _scenes("fmnist-seg", "train", 16), _scenes("fmnist-seg", "test", 8)
    model = _model(SEG)
    result = fit(model, train, TrainConfig(epochs=2, **QUICK), val_split=val, progress=False)

    assert result.metric == "mIoU"
    first, last = result.history
    assert last.train_loss < first.train_loss
    assert all(0.0 <= h.train_accuracy <= 100.0 for h in result.history)  # pixel accuracy, not a count
    assert last.val_accuracy == pytest.approx(evaluate_torch(model, val, task=Task.SEGMENTATION).accuracy)


def test_a_detector_trains_on_its_own_loss_and_is_validated_by_map():
    train, val = _scenes("fmnist-det", "train", 16), _scenes("fmnist-det", "test", 8)
    model = _model(DET)
    result = fit(model, train, TrainConfig(epochs=2, **QUICK), val_split=val, progress=False)

    assert result.metric == "mAP@[.5:.95]"
    first, last = result.history
    assert last.train_loss < first.train_loss
    assert first.train_accuracy is None and last.train_accuracy is None  # no per-batch mAP
    assert last.val_accuracy == pytest.approx(evaluate_torch(model, val, task=Task.DETECTION).accuracy)
    assert sharded_score(model, val, device="cpu", task=Task.DETECTION) == pytest.approx(last.val_accuracy)


def test_the_soft_terms_vanish_when_the_student_is_its_teacher():
    logits = torch.randn(2, 5, 6, 6)
    assert pixel_kd_loss(logits, logits.clone(), temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert pixel_kd_loss(logits, torch.randn(2, 5, 6, 6), temperature=2.0) > 0
    heads = {"cls_logits": torch.randn(2, 30, 5), "bbox_regression": torch.randn(2, 30, 4),
             "bbox_ctrness": torch.randn(2, 30, 1)}
    for activation, names in (("softmax", ("cls_logits", "bbox_regression")), ("sigmoid", tuple(heads))):
        same = {k: heads[k] for k in names}
        other = {k: v + torch.randn_like(v) for k, v in same.items()}
        assert detection_kd_loss(same, dict(same), temperature=2.0, activation=activation).item() == pytest.approx(
            0.0, abs=1e-6)
        assert detection_kd_loss(other, same, temperature=2.0, activation=activation) > 0


@pytest.mark.parametrize("name, data", [(SEG, "fmnist-seg"), (DET, "fmnist-det")])
def test_distilling_a_dense_model_lowers_its_loss(name, data):
    train = _scenes(data, "train", 16)
    teacher, student = _model(name, seed=0), _model(name, seed=1)
    config = RecoverConfig(bn_recal=False, train=TrainConfig(epochs=3, **QUICK), distill=DistillConfig(alpha=0.5))
    result = recover(student, teacher, train, config, progress=False)

    losses = [h.train_loss for h in result.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses
    assert result.distilled and not result.teacher_cached  # per-pixel/per-anchor outputs: the teacher runs live
    assert result.metric == Task.parse(train.info.task).metric


def test_distilling_a_detector_from_other_anchors_is_one_line():
    """A teacher built for 160x160 inputs takes 128x128 images with as many anchors, but not the same."""
    train = _scenes("fmnist-det", "train", 8)
    config = RecoverConfig(bn_recal=False, train=TrainConfig(epochs=1, **QUICK), distill=DistillConfig())
    with pytest.raises(ShrinkError, match="the student's anchors .* are not the teacher's .*: distill from a teacher "
                                          "of the same architecture and input size"):
        recover(_model(DET), _model(DET, size=160), train, config, progress=False)


@pytest.mark.parametrize("name, data", [(SEG, "fmnist-seg"), (DET, "fmnist-det")])
def test_bn_recalibration_works_on_dense_models(name, data):
    model = _model(name)
    before = [n.running_mean.clone() for n in batch_norms(model)]
    assert recalibrate_bn(model, _scenes(data, "train", 16), max_images=16, batch_size=8) == 16
    assert any(not torch.equal(b, n.running_mean) for b, n in zip(before, batch_norms(model)))


def test_reconstruction_refits_a_pruned_segmenter_to_its_dense_outputs():
    """Nothing in reconstruction reads the model's outputs: it hooks conv layers, whatever the head."""
    from shrink.prune import PruneConfig, apply, plan
    from shrink.recover.reconstruct import reconstruct

    dense = _model(SEG).eval()
    train = _scenes("fmnist-seg", "train", 8)
    pruning = plan(dense, (torch.randn(2, 3, 64, 64),), PruneConfig(ratio=0.3, round_to=8))
    pruned = apply(dense, pruning)
    result = reconstruct(pruned, copy.deepcopy(dense), pruning.removed_outputs(), train, max_images=8, batch_size=8)
    assert result.layers
    assert sum(f.error_after for f in result.layers) < sum(f.error_before for f in result.layers)


@pytest.mark.parametrize("name, data, metric", [(SEG, "fmnist-seg", "mIoU"), (DET, "fmnist-det", "mAP@[.5:.95]")])
def test_shrink_train_writes_a_dense_model_and_its_card(name, data, metric, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", name, "--data", data, "--scenes", "8", "--epochs", "1", "--batch-size", "4",
            "--optimizer", "adamw", "--lr", "0.001", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    card = json.loads((out / "model.json").read_text())
    assert card["architecture"]["task"] == Task.parse(_scenes(data, "train", 8).info.task).value
    assert f"test {metric} {card['test_accuracy']:.2f}%" in printed
    assert (out / "model.safetensors").is_file()
    assert "--scenes 8" in card["training_command"]


@pytest.mark.parametrize("argv, message", [
    (["train", DET, "--data", "fmnist"], "the model is a detection model but fmnist is classification data; choose "
                                         "detection data: fmnist-det"),
    (["train", "fmnist_resnet18", "--data", "fmnist-det", "--scenes", "8"],
     "the model is a classification model but fmnist-det is detection data"),
    (["train", SEG, "--data", "fmnist-det", "--scenes", "8"], "the model is a segmentation model but fmnist-det"),
    (["train", SEG, "--data", "fmnist", "--scenes", "8"], "--scenes applies to fmnist-seg and fmnist-det, not fmnist"),
])
def test_shrink_train_refuses_data_of_another_task_before_training(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


SEGMENTER_FILE = """
import torch.nn as nn


def seg(num_classes=10, in_chans=3):
    return nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, num_classes, 1))
"""


def test_shrink_train_trains_a_file_model_by_its_task(tmp_path, capsys):
    """A file.py model says what it predicts with --task: per-pixel loss and mIoU, and the card keeps it;
    a classifier's head declared a segmenter is refused in one line before training."""
    code = tmp_path / "seg_net.py"
    code.write_text(SEGMENTER_FILE)
    common = ["--data", "fmnist-seg", "--scenes", "8", "--epochs", "1", "--batch-size", "4", "--device", "cpu"]
    out = tmp_path / "run"
    assert main(["train", f"{code}:seg", "--task", "segmentation", *common, "--out", str(out)]) == 0
    assert "test mIoU " in capsys.readouterr().out
    assert json.loads((out / "model.json").read_text())["architecture"]["task"] == "segmentation"

    assert main(["train", "fmnist_resnet18", "--task", "segmentation", *common, "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not (batch, classes, height, width)" in err[0], err


@pytest.mark.slow  # two torchrun processes build, distill and score two models each: 9 s on idle CPUs
@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_torchrun_processes_take_the_same_dense_metric(task, tmp_path):
    """Under torchrun every process scores the whole split (mIoU and mAP are no sums of per-image
    numbers) and takes rank 0's number, so the best-epoch and early-stopping decisions agree."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).resolve().parent / "dense_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(worker), "--task", task, "--out", str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"result-rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == 2 and rank0["metric"] == Task(task).metric
    timings = ("seconds", "images_per_second")
    for record in (rank0, rank1):
        record["history"] = [{k: v for k, v in h.items() if k not in timings} for h in record["history"]]
    assert rank0 == rank1  # every metric, the history, the best epoch and DDP's weights
    assert len(rank0["history"]) == 2 and rank0["best_epoch"] in (1, 2)


@pytest.mark.slow  # train, prune (planning LR-ASPP at 128x128), distill: 9 s on 2 idle CPUs, 100 s on busy ones
def test_shrink_finetune_distills_a_pruned_segmenter(tmp_path, capsys):
    dense, pruned, tuned = tmp_path / "dense", tmp_path / "pruned", tmp_path / "tuned"
    common = ["--scenes", "8", "--epochs", "1", "--batch-size", "4", "--device", "cpu"]
    assert main(["train", SEG, "--data", "fmnist-seg", *common, "--out", str(dense)]) == 0
    assert main(["prune", str(dense / "model.safetensors"), "--ratio", "0.3", "--out", str(pruned)]) == 0
    capsys.readouterr()
    assert main(["finetune", str(pruned), "--data", "fmnist-seg", *common, "--distill", "--bn-images", "8",
                 "--out", str(tuned)]) == 0
    assert "fmnist-seg test mIoU: " in capsys.readouterr().out
    record = json.loads((tuned / "recovery.json").read_text())
    assert record["metric"] == "mIoU" and record["distilled"] and not record["teacher_cached"]
