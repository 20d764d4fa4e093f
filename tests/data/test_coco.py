"""coco:DIR: COCO annotations and their images, read into a detection split, and every kind of bad
annotation file refused with one line that names the annotation and image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from split_helpers import read_all

from shrink.data import BatchOptions, load_data, targets_to_list
from shrink.data.coco import load_coco, read_annotations
from shrink.errors import ShrinkError
from shrink.metrics.detection import detection_score

CATEGORIES = ({"id": 7, "name": "cat"}, {"id": 3, "name": "dog"})  # ids neither contiguous nor sorted


def coco_document():
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": "b.png"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 5]},
            {"id": 11, "image_id": 1, "category_id": 7, "bbox": [20.5, 10, 19.5, 20]},
            {"id": 12, "image_id": 1, "category_id": 7, "bbox": [1, 1, 2, 2], "iscrowd": 1},
        ],
        "categories": [dict(c) for c in CATEGORIES],
    }


def write_split(folder, document=None, *, images=("a.png", "b.png"), in_images_dir=True):
    where = folder / "images" if in_images_dir else folder
    where.mkdir(parents=True, exist_ok=True)
    for name in images:
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(where / name)
    text = document if isinstance(document, str) else json.dumps(document or coco_document())
    (folder / "annotations.json").write_text(text)
    return folder


def make_dataset(root):
    write_split(root / "train")
    write_split(root / "val", in_images_dir=False)
    return root


def test_reads_images_and_scales_boxes(tmp_path):
    root = make_dataset(tmp_path)
    split = load_data(f"coco:{root}", "train", image_size=(60, 80))  # twice the 40x30 images
    info = split.info
    assert info.task == "detection" and info.classes == ("background", "dog", "cat") and info.num_classes == 3
    assert info.input_shape == (3, 60, 80) and info.name == f"coco:{root}" and len(split) == 2
    assert info.contract.stretch and info.contract.crop == (60, 80)  # what ships says the images were stretched
    x, packed = read_all(split)
    first, second = targets_to_list(packed)
    # category 3 (dog) -> label 1, 7 (cat) -> 2; xywh -> xyxy, times 2; the crowd region left out
    assert first["labels"].tolist() == [1, 2]
    assert first["boxes"].tolist() == [[0, 0, 20, 10], [41, 20, 80, 60]]
    assert second["boxes"].shape == (0, 4) and packed.shape == (2, 2, 5)
    assert x.shape == (2, 3, 60, 80) and packed.dtype == torch.float32
    assert len(load_coco(root, "test")) == 2 and load_coco(root, "test").info.image_size == (128, 128)


def test_targets_scored_against_themselves_give_map_1(tmp_path):
    targets = targets_to_list(read_all(load_coco(make_dataset(tmp_path), "train"))[1])
    predictions = [dict(t, scores=torch.ones(len(t["labels"]))) for t in targets]
    assert detection_score(predictions, targets).map_50_95 == pytest.approx(1.0)


def test_one_folder_is_split_by_image_id(tmp_path):
    document = {"images": [{"id": i, "file_name": f"{i}.png"} for i in range(1, 11)], "annotations": [],
                "categories": [dict(c) for c in CATEGORIES]}
    write_split(tmp_path, document, images=[f"{i}.png" for i in range(1, 11)])
    assert (len(load_coco(tmp_path, "train")), len(load_coco(tmp_path, "val"))) == (8, 2)


def broken(change):
    document = coco_document()
    change(document)
    return document


def set_bbox(box):
    return lambda d: d["annotations"][0].update(bbox=box)


@pytest.mark.parametrize("document, message", [
    ("{\"images\": [", r"annotations\.json is not valid JSON: .*line 1 column"),
    ('{"images": []}', r"is not a COCO file"),
    (broken(lambda d: d["annotations"][0].update(image_id=99)), r"annotation 10 refers to image id 99"),
    (broken(lambda d: d["images"].append({"id": 3, "file_name": "gone.png"})), r"image gone\.png \(id 3\) not found"),
    (broken(set_bbox([35, 0, 10, 5])), r"annotation 10 has a box .* outside its image a\.png \(40x30\)"),
    (broken(set_bbox([0, -3, 10, 5])), r"annotation 10 has a box .* outside its image a\.png"),
    (broken(set_bbox([0, 0, 0, 5])), r"annotation 10 \(image a\.png\) has a box of width 0 and height 5"),
    (broken(set_bbox([0, 0, 4, -1])), r"annotation 10 \(image a\.png\) has a box of width 4 and height -1"),
    (broken(set_bbox([0, 0, 4])), r"annotation 10 \(image a\.png\) needs a bbox"),
    (broken(lambda d: d["annotations"][0].update(category_id=9)),
     r"annotation 10 \(image a\.png\) has category_id 9, not among the categories \[3, 7\]"),
    (broken(lambda d: d["images"][0].update(width=41)), r"image .*a\.png is 40x30 but .*says 41x30"),
    (broken(lambda d: d["categories"].append({"id": 3, "name": "again"})), r"lists category id 3 twice"),
])
def test_bad_annotations_are_refused_in_one_line(tmp_path, document, message):
    write_split(tmp_path / "train", document)
    with pytest.raises(ShrinkError, match=message) as caught:
        load_data(f"coco:{tmp_path}", "train")
    assert "\n" not in str(caught.value)


def test_a_box_within_a_pixel_of_the_edge_is_clipped(tmp_path):
    write_split(tmp_path / "train", broken(set_bbox([-0.5, 0, 40.9, 30.5])))
    first = targets_to_list(read_all(load_coco(tmp_path, "train", (30, 40)))[1])[0]
    assert first["boxes"][0].tolist() == [0, 0, 40, 30]


def test_splits_must_share_their_categories(tmp_path):
    write_split(tmp_path / "train")
    write_split(tmp_path / "val", broken(lambda d: d["categories"][0].update(name="lion")))
    with pytest.raises(ShrinkError, match="list different categories"):
        load_coco(tmp_path, "val")


def test_read_annotations_orders_categories_by_id(tmp_path):
    coco = read_annotations(write_split(tmp_path) / "annotations.json")
    assert coco.categories == ((3, "dog"), (7, "cat")) and [i.image_id for i in coco.images] == [1, 2]
