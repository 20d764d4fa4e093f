"""fmnist-seg and fmnist-det: scenes composed from the real Fashion-MNIST, whose masks, boxes and
labels describe exactly the items drawn."""

from __future__ import annotations

import time

import pytest
import torch

from shrink.data import BatchOptions, load_data, targets_to_list
from shrink.data.scenes import (CANVAS, CLASSES, MASK_THRESHOLD, MAX_ITEMS, MEAN, SCENES, STD, compose_scenes,
                                load_scenes)
from shrink.data.targets import PADDING_LABEL
from shrink.errors import ShrinkError

COUNT = 60


@pytest.fixture(scope="module")
def seg(fmnist_dir):
    return load_data("fmnist-seg", "test", data_dir=fmnist_dir, scenes=COUNT)


@pytest.fixture(scope="module")
def det(fmnist_dir):
    return load_data("fmnist-det", "test", data_dir=fmnist_dir, scenes=COUNT)


def test_the_splits_say_what_they_are(seg, det):
    for split, task in ((seg, "segmentation"), (det, "detection")):
        info = split.info
        assert info.task == task and info.name == f"fmnist-{task[:3]}" and "Fashion-MNIST" in info.note
        assert info.classes == CLASSES and info.num_classes == 11 and info.classes[0] == "background"
        assert info.input_shape == (3, CANVAS, CANVAS) and len(split) == COUNT
    assert seg.labels.shape == (COUNT, CANVAS, CANVAS) and det.labels.shape == (COUNT, MAX_ITEMS, 5)
    assert det.labels.dtype == torch.float32
    assert torch.equal(seg.images, det.images)  # the same scenes, two kinds of targets
    assert torch.equal(seg.images[:, 0], seg.images[:, 2])  # grey, as three channels


def test_the_same_call_gives_the_same_bytes_and_fewer_scenes_are_a_prefix(fmnist_dir, det):
    again = load_data("fmnist-det", "test", data_dir=fmnist_dir, scenes=COUNT)
    assert torch.equal(again.images, det.images) and torch.equal(again.labels, det.labels)
    fewer = load_scenes("detection", "test", fmnist_dir, count=10)
    assert torch.equal(fewer.images, det.images[:10]) and torch.equal(fewer.labels, det.labels[:10])
    train = load_scenes("detection", "train", fmnist_dir, count=10)
    assert not torch.equal(train.images, det.images[:10])  # another source split, another seed


def test_boxes_hold_exactly_their_items_mask_pixels(seg, det):
    counts = []
    for canvas, masks, rows in zip(seg.images[:, 0], seg.labels, det.labels):
        real = rows[rows[:, 0] != PADDING_LABEL]
        assert torch.all(rows[len(real):, 0] == PADDING_LABEL) and torch.all(rows[len(real):, 1:] == 0)
        counts.append(len(real))
        covered = torch.zeros_like(masks, dtype=torch.bool)
        for label, x1, y1, x2, y2 in real.long().tolist():
            assert 1 <= label <= 10 and 0 <= x1 < x2 <= CANVAS and 0 <= y1 < y2 <= CANVAS
            assert not covered[y1:y2, x1:x2].any(), "two items overlap"
            covered[y1:y2, x1:x2] = True
            pixels = canvas[y1:y2, x1:x2]
            item = pixels > MASK_THRESHOLD * pixels.max()
            # the mask is the item's bright pixels, its class is the box's, and it reaches every edge
            assert torch.equal(masks[y1:y2, x1:x2], torch.where(item, label, 0).to(masks.dtype))
            assert item[0].any() and item[-1].any() and item[:, 0].any() and item[:, -1].any()
        assert not masks[~covered].any() and not canvas[~covered].any()  # nothing outside the boxes
    assert min(counts) >= 1 and max(counts) <= MAX_ITEMS and len(set(counts)) == MAX_ITEMS


def test_labels_are_the_items_classes():
    # ten items, each a filled rectangle of its own brightness: a box's brightest pixel says which
    # item it holds, so its label must be that item's class + 1
    items = torch.zeros(10, 28, 28, dtype=torch.uint8)
    for k in range(10):
        items[k, 2 + k: 20, 4: 26 - k] = 20 * (k + 1)
    classes = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    scenes = compose_scenes(items, classes, count=30, seed=7)
    for canvas, rows in zip(scenes.canvas, scenes.targets):
        for label, x1, y1, x2, y2 in rows[rows[:, 0] != PADDING_LABEL].long().tolist():
            item = int(canvas[y1:y2, x1:x2].max()) // 20 - 1
            assert label == int(classes[item]) + 1


def test_batches_give_int64_masks_and_float_boxes(seg, det):
    x, y = next(seg.batches(BatchOptions(batch_size=8)))
    assert x.shape == (8, 3, CANVAS, CANVAS) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.shape == (8, CANVAS, CANVAS) and torch.equal(y, seg.labels[:8].long())
    x, y = next(det.batches(BatchOptions(batch_size=8)))
    assert y.dtype == torch.float32 and y.shape == (8, MAX_ITEMS, 5)
    with pytest.raises(ShrinkError, match="augmentation shifts and flips images only"):
        next(det.batches(BatchOptions(batch_size=8, augment=True)))


def test_targets_to_list(det):
    unpacked = targets_to_list(det.labels[:5])
    assert len(unpacked) == 5
    for entry, rows in zip(unpacked, det.labels[:5]):
        n = int((rows[:, 0] != PADDING_LABEL).sum())
        assert entry["boxes"].shape == (n, 4) and entry["boxes"].dtype == torch.float32
        assert entry["labels"].dtype == torch.int64 and entry["labels"].tolist() == rows[:n, 0].long().tolist()


def test_mean_and_std_are_those_of_the_train_scenes(fmnist_dir):
    pixels = load_scenes("segmentation", "train", fmnist_dir, count=600).images[:, 0].float() / 255
    assert pixels.mean().item() == pytest.approx(MEAN[0], abs=0.005)
    assert pixels.std().item() == pytest.approx(STD[0], abs=0.005)


def test_bad_requests_are_refused(fmnist_dir):
    with pytest.raises(ShrinkError, match="has splits"):
        load_data("fmnist-seg", "val", data_dir=fmnist_dir)
    with pytest.raises(ShrinkError, match="number of scenes must be >= 1"):
        load_data("fmnist-det", "test", data_dir=fmnist_dir, scenes=0)


@pytest.mark.slow
def test_the_default_splits_compose_within_10_seconds(fmnist_dir):
    start = time.perf_counter()
    sizes = [len(load_scenes("detection", split, fmnist_dir)) for split in ("train", "test")]
    assert sizes == [SCENES["train"], SCENES["test"]] and time.perf_counter() - start < 10


def test_a_shipped_files_normalization_keeps_the_targets(fmnist_dir, seg):
    from shrink.data.preprocessing import native

    record = native(3, (CANVAS, CANVAS), (0.5,) * 3, (0.25,) * 3)
    read = load_data("fmnist-seg", "test", data_dir=fmnist_dir, scenes=COUNT, preprocessing=record)
    assert read.info.task == "segmentation" and read.info.mean == (0.5,) * 3
    assert torch.equal(read.labels, seg.labels) and read.labels.dtype == torch.uint8
