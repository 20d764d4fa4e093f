import json

import numpy as np
import pytest
import torch
from PIL import Image

from shrink.data import BatchOptions, load_data
from shrink.data.imagefolder import FolderOptions
from shrink.data.preprocessing import Preprocessing, from_metadata, native
from shrink.errors import ShrinkError, ShrinkValueError


def _record(**changes) -> Preprocessing:
    base = dict(color="RGB", crop=(32, 32), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), resize=36)
    return Preprocessing(**{**base, **changes})


def test_record_round_trips_through_json_and_onnx_metadata():
    record = _record(interpolation="bicubic")
    assert Preprocessing.from_dict(json.loads(record.to_json())) == record
    assert from_metadata({"preprocessing": record.to_json()}) == record
    assert from_metadata({}) is None  # a file made elsewhere says nothing


@pytest.mark.parametrize("changes, message", [
    ({"resize": 20}, "must be an integer >= the crop 32"),
    ({"color": "CMYK"}, "color must be one of"),
    ({"mean": (0.5,)}, "needs 3 mean and std values"),
    ({"interpolation": "lanczos3"}, "interpolation must be one of"),
    ({"std": (0.2, 0.0, 0.3)}, "std must be positive"),
])
def test_bad_records_are_refused(changes, message):
    with pytest.raises(ShrinkValueError, match=message):
        _record(**changes)


def test_a_record_from_a_newer_version_is_refused():
    d = {**_record().to_dict(), "format": "torch-shrink/preprocessing/9"}
    with pytest.raises(ShrinkError, match="is not 'torch-shrink/preprocessing/1'"):
        Preprocessing.from_dict(d)


def test_apply_resizes_the_shorter_side_then_crops_the_centre():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)  # H 40, W 50
    record = _record()
    x = record.apply(Image.fromarray(pixels))
    # By hand, with the steps the record prints: shorter side 40 -> 36, longer 50 -> int(36 * 50 / 40) = 45.
    resized = np.asarray(Image.fromarray(pixels).resize((45, 36), Image.Resampling.BILINEAR), dtype=np.float32)
    left, top = (45 - 32) // 2, (36 - 32) // 2
    expected = resized[top:top + 32, left:left + 32].transpose(2, 0, 1) / 255.0
    expected = (expected - np.array(record.mean).reshape(3, 1, 1)) / np.array(record.std).reshape(3, 1, 1)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-5)
    assert "shorter side is 36 px" in record.steps()[1] and "left = (width - 32) // 2" in record.steps()[2]


def test_stretch_resizes_to_the_input_size_without_keeping_the_aspect():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)  # H 40, W 70
    record = _record(resize=None, stretch=True)
    resized = np.asarray(Image.fromarray(pixels).resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32)
    expected = (resized.transpose(2, 0, 1) / 255.0 - np.array(record.mean).reshape(3, 1, 1)) / \
        np.array(record.std).reshape(3, 1, 1)
    np.testing.assert_allclose(record.apply(Image.fromarray(pixels)), expected, rtol=0, atol=1e-5)
    assert "resize it to exactly 32x32" in record.steps()[1] and "aspect ratio is not kept" in record.steps()[1]
    assert Preprocessing.from_dict(json.loads(record.to_json())) == record
    assert "stretch" not in _record().to_dict()  # records without it are as they were
    with pytest.raises(ShrinkValueError, match="not both"):
        _record(stretch=True)


def test_without_a_resize_the_image_must_already_be_the_input_size():
    record = native(1, (28, 28), (0.286,), (0.353,))
    assert record.apply(Image.new("L", (28, 28))).shape == (1, 28, 28)
    for size in ((20, 20), (64, 64)):  # smaller or larger: the record says nothing of how to get to 28x28
        with pytest.raises(ShrinkError, match=f"an image of {size[0]}x{size[1]} given to a model whose preprocessing "
                                              "takes 28x28 images without a resize"):
            record.apply(Image.new("L", size))


def test_the_folder_is_read_exactly_by_its_record(tmp_path):
    """What ships is what every figure used: the loader's tensors are the record applied to each file."""
    rng = np.random.default_rng(1)
    for i in range(3):
        (tmp_path / "val" / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 36, 3), dtype=np.uint8)).save(tmp_path / "val" / "a" / f"{i}.png")
    options = FolderOptions(image_size=24, resize=28, num_workers=0, mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2))
    split = load_data(f"imagefolder:{tmp_path}", "test", folder_options=options)
    record = split.info.contract
    assert record == options.preprocessing() and record.resize == 28 and record.crop == (24, 24)
    x, _ = next(split.batches(BatchOptions(batch_size=3)))
    files = sorted((tmp_path / "val" / "a").iterdir())
    expected = torch.stack([torch.from_numpy(record.apply(Image.open(f))) for f in files])
    assert torch.equal(x, expected)


def test_a_native_dataset_takes_the_mean_and_std_of_a_record(fmnist_dir):
    record = native(1, (28, 28), (0.5,), (0.25,))
    split = load_data("fmnist", "test", data_dir=fmnist_dir, preprocessing=record)
    x, _ = next(split.batches(BatchOptions(batch_size=4)))
    raw = split.images[:4].float() / 255.0
    torch.testing.assert_close(x, (raw - 0.5) / 0.25)
    assert split.info.contract == record


def test_a_record_that_resizes_cannot_be_applied_to_images_held_in_memory(fmnist_dir):
    record = Preprocessing(color="L", crop=(24, 24), mean=(0.5,), std=(0.5,), resize=28)
    with pytest.raises(ShrinkError, match="give the images as files"):
        load_data("fmnist", "test", data_dir=fmnist_dir, preprocessing=record)
