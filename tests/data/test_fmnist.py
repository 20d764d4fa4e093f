import numpy as np
import pytest
import torch

from shrink.data import BatchOptions, load_data, train_val_split
from shrink.data.fmnist import FILES
from shrink.data.idx import write_idx
from shrink.errors import ShrinkError


def _fake_fmnist(directory, n=20):
    rng = np.random.default_rng(0)
    for images, labels in FILES.values():
        write_idx(directory / f"{images}.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(directory / f"{labels}.gz", (np.arange(n) % 10).astype(np.uint8))
    return directory


def test_real_splits(fmnist_dir):
    train = load_data("fmnist", "train", data_dir=fmnist_dir)
    assert len(train) == 60000 and train.info.num_classes == 10 and train.info.input_shape == (1, 28, 28)


def test_generated_directory_and_normalized_batches(tmp_path):
    split = load_data("fmnist", "test", data_dir=_fake_fmnist(tmp_path))
    batches = list(split.batches(BatchOptions(batch_size=8)))
    assert [len(y) for _, y in batches] == [8, 8, 4]
    x = torch.cat([b[0] for b in batches])
    expected = (split.images.float() / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(x, expected)


def test_shuffle_is_seeded_and_augment_keeps_shape(tmp_path):
    split = load_data("fmnist", "train", data_dir=_fake_fmnist(tmp_path))
    a = [y for _, y in split.batches(BatchOptions(batch_size=20, shuffle=True, seed=1))][0]
    b = [y for _, y in split.batches(BatchOptions(batch_size=20, shuffle=True, seed=1))][0]
    c = [y for _, y in split.batches(BatchOptions(batch_size=20, shuffle=True, seed=1, epoch=1))][0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    x, _ = next(split.batches(BatchOptions(batch_size=20, augment=True)))
    assert x.shape == (20, 1, 28, 28)


def test_directory_without_idx_files(tmp_path):
    with pytest.raises(ShrinkError, match=r"does not hold the Fashion-MNIST IDX files \(missing train-images"):
        load_data("fmnist", "train", data_dir=tmp_path)


def test_nothing_found_names_every_place_and_the_fix(monkeypatch, tmp_path):
    import shrink.data.fmnist as fm

    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setenv("SHRINK_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(ShrinkError, match=r"searched .*env \(\$SHRINK_DATA\).*none \(Debian package\).*apt-get install dataset-fashion-mnist"):
        fm.find_fmnist()


def test_shrink_data_env_is_searched(monkeypatch, tmp_path):
    import shrink.data.fmnist as fm

    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setenv("SHRINK_DATA", str(_fake_fmnist(tmp_path)))
    assert fm.find_fmnist() == tmp_path


def test_validation_split_is_disjoint_and_fixed(tmp_path):
    split = load_data("fmnist", "train", data_dir=_fake_fmnist(tmp_path, n=100))
    train, val = train_val_split(split, 0.1, seed=0)
    assert len(train) == 90 and len(val) == 10
    _, val2 = train_val_split(split, 0.1, seed=0)
    assert torch.equal(val.images, val2.images)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ShrinkError, match="unknown dataset 'mnist'; choose one of: fmnist, digits"):
        load_data("mnist", "train")


def test_synthetic_is_flagged():
    split = load_data("synthetic:3x16x16", "test")
    assert split.info.synthetic and split.info.input_shape == (3, 16, 16)
