"""mIoU and pixel accuracy against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from shrink.errors import ShrinkError
from shrink.metrics.segmentation import ConfusionMatrix, SegmentationScore

IGNORE = 255
TARGET = torch.tensor([
    [0, 0, 1, 1],
    [0, 0, 1, 1],
    [2, 2, 2, 2],
    [IGNORE, IGNORE, 2, 2],
])
PREDICTION = torch.tensor([
    [0, 1, 1, 1],
    [0, 0, 1, 1],
    [2, 2, 0, 2],
    [2, 2, 2, 2],
])


def test_a_4x4_mask_scored_by_hand():
    # 14 scored pixels (two ignored, whatever was predicted there).
    # class 0: TP (0,0) (1,0) (1,1) = 3, FP (2,2), FN (0,1): IoU 3 / 5
    # class 1: TP 4, FP (0,1), FN 0: IoU 4 / 5
    # class 2: TP (2,0) (2,1) (2,3) (3,2) (3,3) = 5, FP 0, FN (2,2): IoU 5 / 6
    # class 3: in neither target nor prediction: no IoU, left out of the mean
    matrix = ConfusionMatrix(num_classes=4)
    matrix.update(PREDICTION, TARGET)
    score = matrix.score()
    assert score.class_iou == pytest.approx((3 / 5, 4 / 5, 5 / 6, None))
    assert score.class_iou[3] is None
    assert score.miou == pytest.approx((3 / 5 + 4 / 5 + 5 / 6) / 3)
    assert score.pixel_accuracy == pytest.approx(12 / 14)
    assert matrix.counts.sum() == 14
    assert matrix.counts[2].tolist() == [1, 0, 5, 0]  # row: target class 2, columns: predicted


def test_a_class_predicted_but_absent_counts_with_iou_0():
    # a 2x2 all class 0, one pixel predicted as 1: class 0 IoU 3/4, class 1 IoU 0/1 -> mIoU 3/8
    matrix = ConfusionMatrix(num_classes=3)
    matrix.update(torch.tensor([[0, 1], [0, 0]]), torch.zeros(2, 2, dtype=torch.long))
    score = matrix.score()
    assert score == SegmentationScore(miou=pytest.approx(3 / 8), pixel_accuracy=pytest.approx(3 / 4),
                                      class_iou=(pytest.approx(3 / 4), 0.0, None))


def test_batches_accumulate_as_one():
    whole = ConfusionMatrix(num_classes=4)
    whole.update(torch.stack([PREDICTION, PREDICTION.flip(0)]), torch.stack([TARGET, TARGET.flip(0)]))
    parts = ConfusionMatrix(num_classes=4)
    parts.update(PREDICTION[None], TARGET[None])
    parts.update(PREDICTION.flip(0)[None], TARGET.flip(0)[None])
    assert torch.equal(whole.counts, parts.counts) and whole.score() == parts.score()


def test_perfect_prediction_scores_1():
    matrix = ConfusionMatrix(num_classes=3)
    matrix.update(TARGET.clamp(max=2), TARGET)
    assert matrix.score().miou == 1.0 and matrix.score().pixel_accuracy == 1.0


def test_bad_input_is_refused():
    matrix = ConfusionMatrix(num_classes=2)
    with pytest.raises(ShrinkError, match="differ in shape"):
        matrix.update(torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ShrinkError, match="target class id is outside 0..1"):
        matrix.update(torch.zeros(2, 2), torch.full((2, 2), 2))
    with pytest.raises(ShrinkError, match="predicted class id is outside"):
        matrix.update(torch.full((2, 2), 5), torch.zeros(2, 2))
    matrix.update(torch.zeros(2, 2), torch.full((2, 2), IGNORE))
    with pytest.raises(ShrinkError, match="nothing to score"):
        matrix.score()
