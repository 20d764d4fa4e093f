import gzip

import numpy as np
import pytest

from shrink.data.idx import read_idx, write_idx
from shrink.errors import ShrinkError


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_round_trip_generated_file(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    back = read_idx(write_idx(tmp_path / name, array))
    assert back.dtype == np.uint8 and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_reads_big_endian_int32(tmp_path):
    array = np.array([1, -2, 70000], dtype=np.int32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i.idx", array)), array)


def test_real_fashion_mnist_files(fmnist_dir):
    images = read_idx(fmnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(fmnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [1000] * 10  # the test set is balanced


def test_truncated_payload_is_an_error(tmp_path):
    path = write_idx(tmp_path / "t.idx", np.zeros((4, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ShrinkError, match="payload has 17 bytes"):
        read_idx(path)


def test_truncated_gzip_is_an_error(tmp_path):
    path = write_idx(tmp_path / "t.idx.gz", np.zeros((50, 50), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ShrinkError, match="not a readable IDX file"):
        read_idx(path)


def test_bad_magic_is_an_error(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"PK\x03\x04 not idx")
    with pytest.raises(ShrinkError, match="bad magic"):
        read_idx(path)
