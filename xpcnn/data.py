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

from collections.abc import Iterator

import numpy as np

from . import backend, init
from ._validate import positive_int

__all__ = ["STAGE_BYTES", "DataSource", "batch_slices", "batches", "device_indices", "num_batches"]

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
            else f" {where or 'xpcnn'} takes whole arrays (batch axis first), not iterators or generators."
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
