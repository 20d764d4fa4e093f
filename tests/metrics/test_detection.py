"""COCO mAP (pycocotools' COCOeval) on cases whose answer is worked out by hand."""

from __future__ import annotations

import pytest
import torch

from shrink.errors import ShrinkError
from shrink.metrics.detection import DetectionScore, detection_score

BOX = [10.0, 10.0, 20.0, 20.0]  # xyxy, 10x10
FAR = [60.0, 60.0, 70.0, 70.0]  # overlaps nothing


def approx(*values):
    """A DetectionScore to within float rounding (COCOeval averages 101 precision points)."""
    return DetectionScore(*(pytest.approx(v) for v in values))


def target(*boxes, labels=None):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels or [1] * len(boxes), dtype=torch.int64)}


def prediction(*scored, labels=None):
    """scored: (box, score) pairs."""
    return {"boxes": torch.tensor([b for b, _ in scored], dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor([s for _, s in scored], dtype=torch.float32),
            "labels": torch.tensor(labels or [1] * len(scored), dtype=torch.int64)}


def test_an_exact_match_scores_1():
    assert detection_score([prediction((BOX, 0.9))], [target(BOX)]) == approx(1.0, 1.0, 1.0)


def test_a_false_positive_ranked_below_the_hit_costs_nothing():
    # precision is 1 at every recall reached before the false positive comes
    score = detection_score([prediction((BOX, 0.9), (FAR, 0.5))], [target(BOX)])
    assert score == approx(1.0, 1.0, 1.0)


def test_a_false_positive_ranked_above_the_hit_halves_ap():
    # ranked: FP (precision 0), then TP (recall 1, precision 1/2): interpolated precision is 1/2 at
    # every one of the 101 recall points
    score = detection_score([prediction((BOX, 0.5), (FAR, 0.9))], [target(BOX)])
    assert score.map_50 == pytest.approx(0.5) and score.map_50_95 == pytest.approx(0.5)


def test_half_the_targets_found_gives_51_of_101_recall_points():
    # two targets, one hit ranked first: precision 1 up to recall 0.5, i.e. at recall points
    # 0.00, 0.01, ..., 0.50 (51 of the 101), and nothing beyond
    score = detection_score([prediction((BOX, 0.9), (FAR, 0.8))], [target(BOX, [30.0, 30.0, 40.0, 40.0])])
    assert score.map_50 == pytest.approx(51 / 101)


def test_iou_0_6_counts_at_50_but_not_at_75():
    shifted = [10.0, 10.0, 20.0, 16.0]  # inside BOX: intersection 60, union 100
    score = detection_score([prediction((shifted, 0.9))], [target(BOX)])
    assert score.map_50 == pytest.approx(1.0) and score.map_75 == 0.0


def test_iou_0_64_matches_at_3_of_the_10_thresholds():
    smaller = [10.0, 10.0, 18.0, 18.0]  # intersection 64, union 100: matches at .50, .55, .60
    score = detection_score([prediction((smaller, 0.9))], [target(BOX)])
    assert score == approx(0.3, 1.0, 0.0)


def test_an_image_without_targets():
    # its prediction is a false positive, ranked by score against the hit in the other image
    below = detection_score([prediction((BOX, 0.9)), prediction((BOX, 0.3))], [target(BOX), target()])
    above = detection_score([prediction((BOX, 0.3)), prediction((BOX, 0.9))], [target(BOX), target()])
    assert below.map_50 == pytest.approx(1.0) and above.map_50 == pytest.approx(0.5)


def test_classes_are_averaged_and_a_wrong_label_misses():
    # class 1 found exactly, class 2 predicted as class 3: AP 1 and 0; class 3 has no target and
    # is left out of the mean
    score = detection_score([prediction((BOX, 0.9), (FAR, 0.9), labels=[1, 3])], [target(BOX, FAR, labels=[1, 2])])
    assert score.map_50_95 == pytest.approx(0.5)


def test_no_predictions_at_all_scores_0():
    assert detection_score([prediction(), prediction()], [target(BOX), target()]) == DetectionScore(0.0, 0.0, 0.0)


def test_pycocotools_prints_nothing(capsys):
    detection_score([prediction((BOX, 0.9))], [target(BOX)])
    assert capsys.readouterr().out == ""


def test_bad_input_is_refused():
    with pytest.raises(ShrinkError, match="1 prediction sets for 2 images"):
        detection_score([prediction()], [target(BOX), target(BOX)])
    with pytest.raises(ShrinkError, match="no target box in any image"):
        detection_score([prediction((BOX, 0.9))], [target()])
    with pytest.raises(ShrinkError, match="lacks 'scores'"):
        detection_score([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}], [target(BOX)])
    with pytest.raises(ShrinkError, match="has 1 boxes but 2 labels"):
        detection_score([prediction((BOX, 0.9))], [{"boxes": torch.tensor([BOX]), "labels": torch.tensor([1, 1])}])
