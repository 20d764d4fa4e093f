import numpy as np
import pytest
from PIL import Image

from shrink.data import BatchOptions, load_data
from shrink.data.imagefolder import FolderOptions
from shrink.errors import ShrinkError, ShrinkValueError


def _make_folder(root, per_class=3):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def test_loads_resized_normalized_batches(tmp_path):
    root = _make_folder(tmp_path)
    options = FolderOptions(image_size=32, num_workers=0)
    split = load_data(f"imagefolder:{root}", "test", folder_options=options)
    assert split.info.classes == ("cat", "dog") and len(split) == 6
    x, y = next(split.batches(BatchOptions(batch_size=6)))
    assert x.shape == (6, 3, 32, 32) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    x_aug, _ = next(split.batches(BatchOptions(batch_size=6, augment=True, shuffle=True)))
    assert x_aug.shape == (6, 3, 32, 32)


def test_grayscale_channels(tmp_path):
    root = _make_folder(tmp_path)
    options = FolderOptions(image_size=16, channels=1, mean=(0.5,), std=(0.5,), num_workers=0)
    x, _ = next(load_data(f"imagefolder:{root}", "train", folder_options=options).batches(BatchOptions(batch_size=2)))
    assert x.shape == (2, 1, 16, 16)


def test_folder_without_images(tmp_path):
    (tmp_path / "val" / "cat").mkdir(parents=True)
    (tmp_path / "val" / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(ShrinkError, match="holds no images"):
        load_data(f"imagefolder:{tmp_path}", "test", folder_options=FolderOptions(num_workers=0))


def test_missing_split_folder(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ShrinkError, match="has no val or test/ folder"):
        load_data(f"imagefolder:{tmp_path}", "test")


def test_options_are_validated():
    with pytest.raises(ShrinkValueError, match="mean/std need 1 values"):
        FolderOptions(channels=1)
