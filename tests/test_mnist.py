"""The MNIST reader: IDX parsing, official checksums, the tutorial's pixel scaling, clear errors."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from linflow import datasets

MNIST = next((p / "shared" / "data" / "mnist" for p in Path(__file__).resolve().parents
              if (p / "shared" / "data" / "mnist").is_dir()), None)
needs_mnist = pytest.mark.skipif(MNIST is None, reason="../shared/data/mnist is not present beside this checkout")


def idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    """An IDX file written from the format's definition (independent of the reader)."""
    return bytes([0, 0, type_byte, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str = "t10k") -> None:
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))


@needs_mnist
def test_the_real_test_split():
    data = datasets.mnist(MNIST)
    assert data.split == "test" and data.images.shape == (10000, 28, 28) and data.labels.shape == (10000,)
    # class counts published with the data (its README), and the tutorial's range
    np.testing.assert_array_equal(np.bincount(data.labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert data.images.min() == -0.5 and data.images.max() == 0.5 and data.images.dtype == np.float64
    assert "md5 checked" in data.description and "test split used as the training set" in data.description
    # the first test digit is a 7 (LeCun's t10k file); its background pixels are 0 -> -0.5
    assert data.labels[0] == 7 and data.images[0, 0, 0] == -0.5


def test_pixels_scaled_as_in_the_tutorial(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    images[0, 0, 0], images[1, 5, 7], images[2, 27, 27] = 255, 51, 128
    write_split(tmp_path, images, np.array([3, 1, 9], np.uint8))
    data = datasets.mnist(tmp_path, check_md5=False)
    assert data.images[0, 0, 0] == 0.5 and data.images[0, 0, 1] == -0.5
    assert data.images[1, 5, 7] == pytest.approx(-0.3) and data.images[2, 27, 27] == pytest.approx(0.5 / 255)
    np.testing.assert_array_equal(data.labels, [3, 1, 9])
    assert data.split == "test" and len(data) == 3


def test_the_train_split_is_preferred_when_present(tmp_path):
    write_split(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([0, 1], np.uint8))
    write_split(tmp_path, np.full((4, 28, 28), 255, np.uint8), np.array([2, 2, 2, 2], np.uint8), prefix="train")
    assert len(datasets.mnist(tmp_path, check_md5=False)) == 4
    assert datasets.mnist(tmp_path, "test", check_md5=False).split == "test"
    assert "test split used" not in datasets.mnist(tmp_path, check_md5=False).description


def test_official_names_must_have_the_official_md5(tmp_path):
    write_split(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([0, 1], np.uint8))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: md5 .* is not the official 9fb629c4"):
        datasets.mnist(tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:-10], "truncated: 1558 data bytes"),
    (lambda raw: raw + b"\0", "longer than its header says"),
    (lambda raw: b"\x00\x01" + raw[2:], "not an IDX file .*magic number 0001"),
    (lambda raw: raw[:9], "truncated IDX header"),
])
def test_damaged_files_are_named(tmp_path, damage, message):
    raw = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(damage(raw))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 1], np.uint8)))
    with pytest.raises(ValueError, match=message):
        datasets.mnist(tmp_path)


def test_cut_gzip_stream_and_inconsistent_files(tmp_path):
    write_split(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([0, 1], np.uint8))
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:30])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: not a readable gzip file"):
        datasets.mnist(tmp_path, check_md5=False)
    write_split(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([0, 1, 2], np.uint8))
    with pytest.raises(ValueError, match="expected 2 uint8 labels"):
        datasets.mnist(tmp_path, check_md5=False)
    write_split(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([0, 10], np.uint8))
    with pytest.raises(ValueError, match="labels must be 0..9, found 10"):
        datasets.mnist(tmp_path, check_md5=False)
    write_split(tmp_path, np.zeros((2, 14, 14), np.uint8), np.array([0, 1], np.uint8))
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28\)"):
        datasets.mnist(tmp_path, check_md5=False)


def test_missing_folder_files_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="must be a folder"):
        datasets.mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no t10k-images-idx3-ubyte.gz"):
        datasets.mnist(tmp_path)
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'auto'"):
        datasets.mnist(tmp_path, "validation")


def test_read_idx_other_types(tmp_path):
    a = (np.arange(6).reshape(2, 3) - 3).astype(">i4")
    (tmp_path / "a.idx").write_bytes(idx_bytes(a, 0x0C))
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "a.idx"), a)
