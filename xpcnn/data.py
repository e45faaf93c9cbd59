"""Batching: data stays on the host and goes to the device one batch at a time.

The rule ``Sequential.fit``, ``evaluate`` and ``predict`` follow:

* Training data are host (NumPy) arrays (a list or a generator is refused, with the
  conversion to use).  Each batch
  is gathered on the host (``x[indices]``, a view for an unshuffled slice) and copied to the
  model's device once, with :meth:`Placement.asarray` - a single host-to-device copy per batch
  and never the whole data set on the device.
* Arrays already on the model's device are accepted too: their batches are taken on the
  device (``xp.take``), with no copy to or from the host.
* No dtype is ever converted implicitly.  Floating data must already have the model's dtype
  (convert once on the host, e.g. ``x.astype("float32")``, and scale integers such as pixel
  values: ``x.astype("float32") / 255``).  Integer targets (class labels for
  ``SoftmaxCrossEntropy``) are copied as they are and stay integer.

Shuffling draws one permutation per epoch from a host ``numpy.random.Generator``, so a seed
gives the same batches on every backend.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from . import backend, init
from ._validate import positive_int

__all__ = [
    "STAGE_BYTES",
    "ArrayPair",
    "BatchSequence",
    "DataSource",
    "SourcePair",
    "batch_slices",
    "batches",
    "device_indices",
    "is_source",
    "num_batches",
]

#: On a GPU, host data of at most this many bytes is copied to the device once, when ``fit``
#: starts, and its batches are gathered there: no pageable host-to-device copy per batch.
STAGE_BYTES = 1 << 30


def num_batches(n: int, batch_size: int) -> int:
    """``ceil(n / batch_size)``: the last batch may be smaller."""
    return -(-n // positive_int(batch_size, "batch_size"))


def batch_slices(n: int, batch_size: int, shuffle: bool = True, seed=None) -> Iterator:
    """Index sets of one epoch over ``n`` samples: slices in order, or integer arrays of a
    permutation drawn with ``seed`` (``None``, an int or a ``numpy.random.Generator``, which is
    consumed: pass the same one every epoch for a new permutation each time)."""
    batch_size = positive_int(batch_size, "batch_size")
    if shuffle:
        order = init.rng_from(seed).permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]
    else:
        for start in range(0, n, batch_size):
            yield slice(start, min(start + batch_size, n))


def device_indices(place, indices) -> list:
    """An epoch's index sets (from :func:`batch_slices`) for data already on ``place``: slices
    stay slices; a shuffled epoch's permutation is copied to the device once and sliced there,
    instead of one small host-to-device copy per batch and per array."""
    indices = list(indices)
    if not indices or isinstance(indices[0], slice):
        return indices
    order = place.asarray(np.concatenate(indices))
    starts = np.cumsum([0, *(len(index) for index in indices)])
    return [order[int(a) : int(b)] for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _as_host(a, argument: str, where: str = "") -> np.ndarray:
    if not backend.is_array(a):
        kind = type(a).__name__
        hint = (
            f" Convert it once with numpy.asarray({argument}, dtype='float32') (class labels: dtype='int64')."
            if isinstance(a, (list, tuple))
            else f" {where or 'xpcnn'} takes whole arrays (batch axis first) as x and y, or a data source as x "
            "alone (see xpcnn.data)."
            if hasattr(a, "__next__") or hasattr(a, "__iter__")
            else ""
        )
        raise TypeError(
            f"{where + ': ' if where else ''}expected {argument} to be an array (NumPy, or on the model's "
            f"device), received a {kind}.{hint}"
        )
    a = np.asarray(a)
    if a.ndim == 0:
        raise ValueError(
            f"{where + ': ' if where else ''}expected {argument} with a leading sample axis. "
            f"Received a scalar ({a!r})."
        )
    return a


def batches(x, y=None, batch_size: int = 32, shuffle: bool = True, seed=None):
    """Yield ``(x_batch, y_batch)`` host arrays (``x_batch`` alone when ``y`` is None).

    ``seed`` is ``None`` (fresh entropy), an int or a ``numpy.random.Generator`` (consumed:
    pass the same Generator to successive calls for a new permutation each epoch).  The
    last batch holds the remainder.  ``x`` and ``y`` must have the same length.
    """
    x = _as_host(x, "x")
    if y is not None:
        y = _as_host(y, "y")
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same number of samples. Received {len(x)} and {len(y)}.")
    for index in batch_slices(len(x), batch_size, shuffle, seed):
        yield x[index] if y is None else (x[index], y[index])


class DataSource:
    """One array (``x`` or ``y``) ready to be fed to a model on ``place``, batch by batch.

    ``take(index)`` returns the batch on the device: a host array is indexed on the host and
    copied once; an array already on ``place`` is indexed there.  With ``stage`` (``fit`` on a
    GPU) host data up to :data:`STAGE_BYTES` is copied to the device whole, once, first.  Validation happens here,
    once, with the messages of reliability.md (``what`` names the argument in errors).
    """

    def __init__(
        self,
        data,
        place,
        *,
        what: str,
        where: str,
        dtype: str | None,
        target: bool = False,
        stage: bool = False,
    ):
        self.what = what
        self.place = place
        if backend.is_array(data) and not isinstance(data, np.ndarray):
            got = backend.placement_of(data)
            if got != place:
                raise ValueError(
                    f"{where}: {what} is on {got.name} but the model is on {place.name}. Pass host "
                    f"(NumPy) data, which is copied batch by batch, or move {what} to {place.name}."
                )
            self.on_device = True
            self.array = data
        else:
            self.on_device = False
            self.array = _as_host(data, what, where)
        if self.array.ndim == 0:
            raise ValueError(f"{where}: expected {what} with a leading sample axis. Received a scalar.")
        self.dtype = backend.dtype_name(self.array.dtype)
        _check_dtype(self.dtype, what, where, dtype, target)
        if stage and place.is_cuda and not self.on_device and self.array.nbytes <= STAGE_BYTES:
            self.array = place.asarray(self.array)  # one copy of the whole data set
            self.on_device = True

    def __repr__(self) -> str:
        where = self.place.name if self.on_device else f"host -> {self.place.name}"
        return f"DataSource({self.what}, shape={self.shape}, dtype={self.dtype}, {where})"

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape)

    def take(self, index):
        """The batch ``data[index]`` on the device (``index``: a slice or host int array)."""
        if not self.on_device:
            return self.place.asarray(self.array[index])  # the one copy of this batch
        if isinstance(index, slice):
            return self.array[index, ...]
        xp = self.place.xp
        if backend.is_host_array(index):
            index = self.place.asarray(index)
        return xp.take(self.array, index, axis=0)


def _check_dtype(received: str, what: str, where: str, expected: str | None, target: bool) -> None:
    floating = received in backend.FLOAT_DTYPES
    integer = received.startswith(("int", "uint"))
    if target and integer:
        return  # class labels stay integer
    if not floating:
        hint = (
            f"convert and scale it, e.g. {what}.astype('{expected or 'float32'}') / 255 for pixel values"
            if integer
            else f"convert it, e.g. {what}.astype('{expected or 'float32'}')"
        )
        kinds = "a floating dtype or integer class labels" if target else "a floating dtype"
        raise TypeError(f"{where}: expected {what} with {kinds}, received dtype {received}. Hint: {hint}.")
    if expected is not None and received != expected:
        raise TypeError(
            f"{where}: {what} has dtype {received} but the model is {expected}; xpcnn never casts "
            f"silently. Convert it once with {what}.astype('{expected}'), or build the model with "
            f"dtype={received!r}."
        )


# ------------------------------------------------------------------------- data sources
class BatchSequence:
    """Base class of a data set read batch by batch (Keras's ``PyDataset``): ``__len__`` is the
    number of batches of an epoch and ``__getitem__(i)`` returns batch ``i`` as ``(x_batch,
    y_batch)`` host arrays, e.g. read from disk.  ``fit`` shuffles the order of the batches
    (seeded) when ``shuffle=True``; ``batch_size`` does not apply."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int):
        raise NotImplementedError


def is_source(data) -> bool:
    """Whether ``data`` is a data source (not an array): an object with ``__len__`` and
    ``__getitem__`` (samples, or batches for a :class:`BatchSequence`) or an iterable of
    batches."""
    if backend.is_array(data) or isinstance(data, (list, tuple, str, bytes, dict)):
        return False
    return hasattr(data, "__iter__") or (hasattr(data, "__len__") and hasattr(data, "__getitem__"))


def _batch_array(value, what: str, where: str, place, dtype: str | None, target: bool):
    """One host batch (``x`` or ``y``) checked as DataSource checks whole arrays, on ``place``."""
    if backend.is_array(value) and not isinstance(value, np.ndarray):
        if backend.placement_of(value) != place:
            raise ValueError(
                f"{where}: a batch's {what} is on {backend.placement_of(value).name}, the model on {place.name}."
            )
        array = value
    else:
        array = _as_host(value, what, where)
    _check_dtype(backend.dtype_name(array.dtype), what, where, dtype, target)
    return array if not isinstance(array, np.ndarray) else place.asarray(array)


class SourcePair:
    """A data source as ``fit``, ``evaluate`` and ``predict`` read it: ``take(index)`` returns
    one batch ``(x, y)`` on the device (``y`` None for inputs alone), for the indices of
    :meth:`epoch`.  Three kinds:

    * samples: an object with ``__len__`` and ``__getitem__(i) -> (x_i, y_i)`` (PyTorch's map
      style; ``__getitems__(indices)`` is used when it exists, as PyTorch's ``DataLoader``
      does, and may return a list of samples or, faster, the batch ``(x_batch, y_batch)`` as a
      tuple): batches of ``batch_size`` samples, shuffled by the same permutation as arrays of
      the same length, so the batches equal those of the in-memory path;
    * batches: a :class:`BatchSequence`: batch ``i`` is ``source[i]``;
    * an iterable of ``(x_batch, y_batch)``: ``steps_per_epoch`` batches an epoch from one
      iterator that goes on across epochs (Keras's rule), or, without ``steps_per_epoch``,
      one full pass (a new ``iter()``) per epoch; never shuffled (the source's own order).
    """

    def __init__(self, source, place, *, where: str, dtype: str | None, steps_per_epoch=None, targets=True,
                 indices=None, steps_argument: str = "steps_per_epoch"):  # fmt: skip
        self.source, self.place, self.where, self.dtype, self.targets = source, place, where, dtype, targets
        self.subset = indices  # a range of sample indices (validation_split), or None
        if isinstance(source, BatchSequence):
            self.kind = "batches"
        elif hasattr(source, "__len__") and hasattr(source, "__getitem__"):
            self.kind = "samples"
        else:
            self.kind = "iterable"
        if steps_per_epoch is not None and self.kind == "samples":
            raise TypeError(
                f"{where}: {steps_argument} applies to an iterable of batches or a BatchSequence, not to a data "
                f"set of samples (its length gives the batches). Received {steps_argument}={steps_per_epoch!r}."
            )
        self.steps_per_epoch = (
            None if steps_per_epoch is None else positive_int(steps_per_epoch, steps_argument, where)
        )
        if self.kind == "iterable":
            self._iterator = iter(source) if self.steps_per_epoch is not None else None
        elif len(self) == 0:
            raise ValueError(f"{where}: the data source {type(source).__name__} is empty.")
        self._first = None

    def __repr__(self) -> str:
        return f"SourcePair({type(self.source).__name__}, {self.kind})"

    def __len__(self) -> int:
        """Samples (``"samples"``) or batches (``"batches"``) of an epoch; iterables: unknown."""
        if self.subset is not None:
            return len(self.subset)
        if self.kind == "iterable":
            raise TypeError(f"{self.where}: an iterable data source has no length")
        return len(self.source)

    def steps(self, batch_size: int) -> int | None:
        if self.kind == "samples":
            return num_batches(len(self), batch_size)
        if self.kind == "batches":
            return len(self) if self.steps_per_epoch is None else min(self.steps_per_epoch, len(self))
        return self.steps_per_epoch  # None: as many as one pass gives

    def epoch(self, batch_size: int, shuffle: bool, rng):
        """This epoch's indices (what :meth:`take` reads), drawn from ``rng`` when shuffled."""
        if self.kind == "samples":
            return batch_slices(len(self), batch_size, shuffle, rng)
        if self.kind == "batches":
            order = init.rng_from(rng).permutation(len(self)) if shuffle else range(len(self))
            return iter([int(i) for i in order][: self.steps(batch_size)])
        if self.steps_per_epoch is None:
            self._iterator = iter(self.source)
            return itertools.count()
        return iter(range(self.steps_per_epoch))

    def _item(self, index):
        if self.kind == "samples":
            if isinstance(index, slice):
                index = range(*index.indices(len(self)))
            positions = [int(i) for i in index]
            if self.subset is not None:
                positions = [self.subset[i] for i in positions]
            many = getattr(self.source, "__getitems__", None)
            items = many(positions) if many is not None else [self.source[i] for i in positions]
            if isinstance(items, tuple):  # __getitems__ gave the batch itself: (x_batch, y_batch)
                return items if self.targets else items[0]
            return _stack(items, self.targets, self.where)
        if self.kind == "batches":
            return self.source[index]
        try:
            return next(self._iterator)
        except StopIteration:
            raise Exhausted from None

    def take(self, index):
        """Batch ``index`` on the device: ``(x, y)`` (``y`` None without targets)."""
        item = self._item(index)
        if self.targets:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(
                    f"{self.where}: expected the data source to give (x, y) pairs, received {type(item).__name__}."
                )
            x, y = item
        else:
            x, y = (item[0] if isinstance(item, (tuple, list)) else item), None
        xb = _batch_array(x, "x", self.where, self.place, self.dtype, target=False)
        yb = None if y is None else _batch_array(y, "y", self.where, self.place, self.dtype, target=True)
        if yb is not None and int(xb.shape[0]) != int(yb.shape[0]):
            raise ValueError(f"{self.where}: a batch has {xb.shape[0]} inputs but {yb.shape[0]} targets.")
        return xb, yb

    def sample_shape(self) -> tuple:
        """One sample's input shape, from the first item."""
        if self.kind == "samples":
            x = self._item([0])[0]
        elif self.kind == "batches":
            first = self.source[0]
            x = first[0] if isinstance(first, (tuple, list)) else first
        else:
            raise TypeError("the shape of an iterable's samples is known from its first batch")
        return tuple(np.shape(x)[1:])


class Exhausted(Exception):
    """Internal: an iterable data source ran out of batches."""


def _stack(items: list, targets: bool, where: str):
    """Samples ``(x_i, y_i)`` (or ``x_i``) stacked into a host batch."""
    if targets:
        for item in items[:1]:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(
                    f"{where}: expected the data set's items to be (x, y) samples, received {type(item).__name__}."
                )
        xs = [np.asarray(backend.to_host(x)) for x, _ in items]
        ys = [np.asarray(backend.to_host(y)) for _, y in items]
        return np.stack(xs), np.stack(ys)
    xs = [np.asarray(backend.to_host(it[0] if isinstance(it, (tuple, list)) else it)) for it in items]
    return np.stack(xs), None


class ArrayPair:
    """In-memory arrays (two :class:`DataSource` objects) behind the interface of
    :class:`SourcePair`."""

    kind = "arrays"
    steps_per_epoch = None

    def __init__(self, xs: DataSource, ys: DataSource | None):
        self.xs, self.ys = xs, ys

    def __len__(self) -> int:
        return len(self.xs)

    def steps(self, batch_size: int) -> int:
        return num_batches(len(self.xs), batch_size)

    def epoch(self, batch_size: int, shuffle: bool, rng):
        indices = batch_slices(len(self.xs), batch_size, shuffle, rng)
        if self.xs.on_device and (self.ys is None or self.ys.on_device):
            return iter(device_indices(self.xs.place, indices))
        return indices

    def take(self, index):
        return self.xs.take(index), None if self.ys is None else self.ys.take(index)

    def sample_shape(self) -> tuple:
        return self.xs.shape[1:]
