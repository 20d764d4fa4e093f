"""segfolder:DIR: the user's images and index-PNG masks, read into a segmentation split, and every
kind of bad folder refused with one line that names the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from split_helpers import read_all

from shrink.data import BatchOptions, load_data
from shrink.data.preprocessing import Preprocessing
from shrink.data.segfolder import IGNORE_INDEX, load_segfolder
from shrink.errors import ShrinkError


def write_pair(folder, stem, mask, *, image_size=None, suffix=".png", mode="L"):
    """An image (random colours) and its mask (class ids) under folder/images and folder/masks."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    mask = np.asarray(mask, dtype=np.uint8)
    h, w = image_size or mask.shape
    pixels = np.random.default_rng(sum(stem.encode())).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "images" / f"{stem}{suffix}")
    index = Image.fromarray(mask, mode="L")
    if mode == "P":
        index = index.convert("P")
        index.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    index.save(folder / "masks" / f"{stem}.png")


MASK = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, IGNORE_INDEX, IGNORE_INDEX], [2, 2, 2, 2]])


def make_dataset(root, *, classes_txt=True):
    write_pair(root / "train", "a", MASK)
    write_pair(root / "train", "b", MASK.T, mode="P", suffix=".jpg")
    write_pair(root / "val", "c", np.zeros((4, 4)))
    if classes_txt:
        (root / "classes.txt").write_text("sky\ntree\nroad\n")
    return root


def test_reads_images_and_masks(tmp_path):
    root = make_dataset(tmp_path)
    split = load_data(f"segfolder:{root}", "train", image_size=(8, 8))
    info = split.info
    assert info.task == "segmentation" and info.classes == ("sky", "tree", "road") and info.name == f"segfolder:{root}"
    assert info.input_shape == (3, 8, 8) and len(split) == 2
    assert not hasattr(split, "images")  # decoded batch by batch, never held whole
    # nearest resize to twice the size: every mask pixel becomes a 2x2 block, ids kept (P and L alike)
    expected = torch.from_numpy(MASK).repeat_interleave(2, 0).repeat_interleave(2, 1)
    x, y = read_all(split)
    assert x.shape == (2, 3, 8, 8) and y.dtype == torch.int64
    assert torch.equal(y[0], expected) and torch.equal(y[1], expected.T)
    assert len(load_data(f"segfolder:{root}", "test")) == 1  # val/ serves "test"
    assert load_segfolder(root, "val").info.image_size == (128, 128)


def test_the_shipped_contract_reproduces_the_input_of_an_image_of_another_shape(tmp_path):
    write_pair(tmp_path / "train", "wide", np.zeros((30, 50)))  # W 50 x H 30, stretched to 16 x 16
    split = load_data(f"segfolder:{tmp_path}", "train", image_size=(16, 16))
    contract = split.info.contract
    assert contract.stretch and contract.crop == (16, 16)
    x, _ = next(split.batches(BatchOptions(batch_size=1)))
    from_file = contract.apply(Image.open(tmp_path / "train" / "images" / "wide.png"))
    np.testing.assert_allclose(x[0].numpy(), from_file, rtol=0, atol=1e-6)


def test_a_models_record_gives_the_normalization_and_the_files_keep_their_stretch(tmp_path):
    from shrink.data.preprocessing import native

    write_pair(tmp_path / "train", "wide", np.zeros((30, 50)))
    card = native(3, (16, 16), (0.1, 0.1, 0.1), (0.2, 0.2, 0.2))  # trained on images already 16x16
    split = load_data(f"segfolder:{tmp_path}", "train", preprocessing=card)
    assert split.info.contract == Preprocessing(color="RGB", crop=(16, 16), mean=card.mean, std=card.std, stretch=True)
    assert read_all(split)[0].shape == (1, 3, 16, 16)


def test_an_image_that_breaks_after_its_header_is_one_line_when_its_batch_is_read(tmp_path):
    root = make_dataset(tmp_path)
    image = root / "train" / "images" / "a.png"
    image.write_bytes(image.read_bytes()[:60])  # the header still says 4x4; the pixels are gone
    split = load_data(f"segfolder:{root}", "train", image_size=(8, 8))  # headers and masks check out
    with pytest.raises(ShrinkError) as caught:
        read_all(split)  # decoded in a DataLoader worker, whose traceback is not the message
    assert str(caught.value).startswith(f"cannot read image {image}") and "\n" not in str(caught.value)


def test_classes_without_classes_txt_run_to_the_largest_id_of_any_split(tmp_path):
    root = make_dataset(tmp_path, classes_txt=False)
    write_pair(root / "val", "d", np.full((4, 4), 5))
    assert load_segfolder(root, "train").info.classes == ("0", "1", "2", "3", "4", "5")


def test_one_folder_is_split_the_same_way_every_time(tmp_path):
    for i in range(10):
        write_pair(tmp_path, f"img{i}", np.full((4, 4), i % 3))
    train, test = load_segfolder(tmp_path, "train", (4, 4)), load_segfolder(tmp_path, "test", (4, 4))
    assert (len(train), len(test)) == (8, 2)
    test_images = read_all(test)[0]
    assert torch.equal(read_all(load_segfolder(tmp_path, "test", (4, 4)))[0], test_images)
    assert not any(torch.equal(t, s) for t in read_all(train)[0] for s in test_images)


@pytest.mark.parametrize("fault, message", [
    ("mask size", r"mask .*a\.png is 5x4 but its image a\.png is 4x4"),
    ("no mask", r"image .*b\.png has no mask"),
    ("no image", r"mask .*z\.png has no image z\.\*"),
    ("empty", r"images holds no images"),
    ("unknown id", r"mask .*a\.png has class id 7, but there are 3 classes"),
    ("rgb mask", r"mask .*a\.png is a RGB image; masks must be 8-bit index PNGs"),
    ("jpeg mask", r"mask .*a\.jpg is not a PNG"),
    ("no masks folder", r"has no masks/ folder"),
])
def test_bad_folders_are_refused_naming_the_file(tmp_path, fault, message):
    root = tmp_path
    train = root / "train"
    (root / "classes.txt").write_text("sky\ntree\nroad\n")
    if fault == "empty":
        (train / "images").mkdir(parents=True)
        (train / "masks").mkdir()
    elif fault == "no masks folder":
        (train / "images").mkdir(parents=True)
    else:
        mask = {"unknown id": np.full((4, 4), 7), "mask size": np.zeros((4, 5))}.get(fault, MASK)
        write_pair(train, "a", mask, image_size=(4, 4))
    if fault == "no mask":
        Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(train / "images" / "b.png")
    if fault == "no image":
        Image.fromarray(MASK.astype(np.uint8)).save(train / "masks" / "z.png")
    if fault == "rgb mask":
        Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(train / "masks" / "a.png")
    if fault == "jpeg mask":
        Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(train / "masks" / "a.jpg")
    with pytest.raises(ShrinkError, match=message) as caught:
        load_data(f"segfolder:{root}", "train")
    assert "\n" not in str(caught.value)


def test_a_missing_folder_or_split(tmp_path):
    with pytest.raises(ShrinkError, match="segfolder folder not found"):
        load_data(f"segfolder:{tmp_path / 'nope'}", "train")
    write_pair(tmp_path / "train", "a", MASK)
    with pytest.raises(ShrinkError, match="has no val or test/ folder for the test split"):
        load_data(f"segfolder:{tmp_path}", "test")
