"""The generic Array API formulation of the NCHW cross-correlation ("flat shift" unfold).

Layout.  Each zero-padded image is stored channel-major, ``(c_I, n, h_P + 1, w_P)`` (one
extra zero row), and read flat as ``(c_I, n, (h_P + 1) * w_P)``.  A kernel offset
``(i, j)`` is then a 1-D shift ``i * w_P + j`` of that flat image, so the unfold (im2col)
is ``h_K * w_K`` contiguous slice copies and the layer one matrix product
``(c_O, c_I h_K w_K) @ (c_I h_K w_K, n h_O1 w_P)``.  The output is computed on an
``h_O1 x w_P`` grid (stride 1, the full padded width) and the ``w_P - w_O1`` columns that
wrap around a row are sliced off; stride ``s`` keeps every ``s``-th output.

Backward (eq. 18, 20): ``dY`` is written on the same grid (wrap columns and skipped
strides stay zero) and ``dK = grid @ cols^T``.  ``dX`` is computed one of two ways, by size:

* ``"fold"``: ``dcols = K^T @ grid``, then the fold (the transpose of the unfold),
  ``h_K * w_K`` shifted slice additions; used when ``c_O (h_P + h_K)`` exceeds
  :data:`FOLD_RATIO` times ``c_I h_O1`` (the unfolded grid would be the larger matrix);
* ``"correlate"``: the full convolution of eq. 20 as a cross-correlation: the grid placed
  after ``(h_K - 1) w_P + w_K - 1`` zeros is unfolded with the reversed shifts and multiplied
  by the kernels regrouped as ``(c_I, c_O h_K w_K)``: one product, no fold, best when
  ``c_I >= c_O`` (measured, batch 64, 3x3, backward with ``dX``: 16->8 26x26 9.5 ms against
  14.5 by the fold, 64->32 16x16 31.9 against 40.9, 8->1 28x28 2.7 against 10.9).

Speed (measured on the 2-vCPU development machine; the benchmark tables are in the README's performance section):

* Results are contiguous NCHW arrays: the slice that drops the wrap-around columns is a
  copy anyway, and it writes each chunk's ``(c_O, m, L)`` product into samples ``a:b`` of
  ``Y`` nearly as cheaply as into a channel-major array.  Elementwise layers then run on
  contiguous memory (about 5x faster than on a view with gaps), ``Flatten`` is a view
  instead of a copy, and a ReLU's backward multiplies operands of one layout: the LeNet step
  measured 2-3% faster than with channel-major results.  Exception: when one product covers
  the whole batch and nothing is sliced off (``w_K = 1``), ``Y`` is a ``permute_dims`` view
  of the product itself (no copy).
* The batch is processed in chunks whose unfolded matrix stays near :data:`CHUNK_BYTES`
  (2 MB measured best: cache-sized, and a bounded peak memory at large batches).
* Thin layers (few multiply-adds per sample, e.g. ``c_I = 1``) multiply per sample in one
  batched ``matmul`` call (:data:`BATCHED_MACS`): such products are below the size where
  OpenBLAS starts threads, so they never wait for a worker thread that another process has
  preempted.  Larger layers use one product per chunk, threaded by the BLAS.
* The padded images, the unfolded chunk, the ``dY`` grids and the fold accumulator are
  *work buffers* kept per thread in a small LRU cache keyed by (role, namespace, device
  name, dtype, shape), the role naming the geometry for buffers whose zeros must stay in
  place (two geometries can share a shape): repeated calls reuse them instead of faulting
  in fresh pages.  The device enters the key by its name (:func:`xpcnn.backend.device_key`):
  a CuPy 14 ``Device`` is unhashable.  Nothing returned to the caller ever aliases a work
  buffer: outputs are fresh arrays (matrix products or explicit copies).
* The sizes of a call (:class:`_Geometry`) are computed once per shape and cached.

Only Array API functions are used (``zeros``, ``empty``, ``reshape``, ``permute_dims``,
``matmul``, slicing and slice assignment), so NumPy, CuPy, PyTorch and array_api_strict
all run this same code.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict

from .. import backend
from .geometry import conv_output_size

#: Target size in bytes of one unfolded chunk ``(c_I h_K w_K, n_chunk h_O1 w_P)``.
CHUNK_BYTES = 2 << 20
#: Per-thread budget in bytes of cached work buffers (least recently used ones go first).
CACHE_BYTES = 192 << 20
#: Products of one sample at most this large (multiply-adds ``c_O c_I h_K w_K h_O1 w_P``) run
#: as a batch of per-sample matrix products (one call, looping over the batch): each is below
#: the size where BLAS starts threads, which gain nothing on such thin products and stall
#: when another process holds the other core.  Larger layers use one product per chunk.
BATCHED_MACS = 1 << 18
#: ``"auto"`` (by :data:`BATCHED_MACS`), or True / False to force one form of the products.
BATCHED = "auto"
#: How ``dX`` is computed: ``"auto"`` picks by size, ``"fold"`` or ``"correlate"`` force one.
DX_METHOD = "auto"
#: ``"correlate"`` is used while its unfolded grid is at most this many times ``dcols``.
FOLD_RATIO = 1.5


class _Buffers(threading.local):
    def __init__(self):
        self.entries: OrderedDict = OrderedDict()
        self.nbytes = 0
        # what the "cols" buffer last received: (buffer, source array, a, b, geometry tag)
        self.unfolded: tuple | None = None


_local = _Buffers()


def clear_buffers() -> None:
    """Drop this thread's cached work buffers."""
    _local.entries.clear()
    _local.nbytes = 0
    _local.unfolded = None


def buffer_bytes() -> int:
    """Bytes held by this thread's cached work buffers."""
    return _local.nbytes


_ITEMSIZE: dict = {}


def _itemsize(xp, dtype) -> int:
    key = (xp, dtype)
    size = _ITEMSIZE.get(key)
    if size is None:
        info = xp.finfo(dtype) if xp.isdtype(dtype, "real floating") else xp.iinfo(dtype)
        size = _ITEMSIZE[key] = info.bits // 8
    return size


def _workspace(xp, role, shape: tuple, dtype, dev, dev_key: str):
    """A zero-initialised work buffer, reused across calls with the same key.

    Callers only ever write the positions they overwrite on every call, so the zeros that
    matter (padding, the extra row, wrap-around columns, skipped strides) stay zero.  Which
    positions are written depends on more than the buffer's shape (two geometries can share
    a shape), so ``role`` must name the geometry too (see ``_Geometry.tag``).  ``dev_key`` is
    the device's hashable name (a CuPy 14 ``Device`` cannot be a dict key).
    """
    key = (role, xp, dev_key, dtype, shape)  # all hashable (modules, strings, dtypes, tuples)
    entries = _local.entries
    entry = entries.get(key)
    if entry is not None:
        entries.move_to_end(key)
        return entry[0]
    nbytes = math.prod(shape) * _itemsize(xp, dtype)
    while entries and _local.nbytes + nbytes > CACHE_BYTES:
        _, (_, old_nbytes) = entries.popitem(last=False)  # sizes kept: old may be another xp's
        _local.nbytes -= old_nbytes
    buf = xp.zeros(shape, dtype=dtype, device=dev)
    if nbytes <= CACHE_BYTES:
        entries[key] = (buf, nbytes)
        _local.nbytes += nbytes
    return buf


@functools.lru_cache(maxsize=256)
def _geometry(x_shape: tuple, k_shape: tuple, stride: tuple, padding: tuple, itemsize: int, limits: tuple):
    """The :class:`_Geometry` of a call, built once per shape (``limits`` holds the tunables, so
    that a test changing them gets a new one)."""
    return _Geometry(x_shape, k_shape, stride, padding, itemsize)


def geometry(xp, x, k, stride, padding) -> _Geometry:
    limits = (CHUNK_BYTES, BATCHED_MACS, BATCHED, DX_METHOD, FOLD_RATIO)
    return _geometry(tuple(x.shape), tuple(k.shape), stride, padding, _itemsize(xp, x.dtype), limits)


class _Geometry:
    """Sizes shared by forward and backward, and the batch chunks (read-only once built)."""

    def __init__(self, x_shape, k_shape, stride, padding, itemsize: int):
        self.n, self.c, self.h, self.w = x_shape
        self.o, _, self.kh, self.kw = k_shape
        self.sh, self.sw = stride
        self.ph, self.pw = padding
        self.hp, self.wp = self.h + 2 * self.ph, self.w + 2 * self.pw
        self.rows = self.hp + (1 if self.kw > 1 else 0)  # one zero row absorbs the last shift
        self.rows_full = self.rows + self.kh - 1  # the dY grid with h_K - 1 zero rows in front
        self.oh1, self.ow1 = self.hp - self.kh + 1, self.wp - self.kw + 1  # the stride-1 grid
        self.oh = conv_output_size(self.h, self.kh, self.sh, self.ph)
        self.ow = conv_output_size(self.w, self.kw, self.sw, self.pw)
        self.length = self.oh1 * self.wp  # grid length per image
        self.taps = self.kh * self.kw
        # buffers of equal shape from different geometries have their zeros in different places
        self.tag = (self.h, self.w, self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)
        self.shifts = [i * self.wp + j for i in range(self.kh) for j in range(self.kw)]
        macs = self.o * self.c * self.taps * self.length
        self.batched = macs <= BATCHED_MACS if BATCHED == "auto" else bool(BATCHED)
        per_sample = self.c * self.taps * self.length * itemsize
        chunk = max(1, min(self.n, CHUNK_BYTES // max(per_sample, 1)))
        count = -(-self.n // chunk)
        size = -(-self.n // count) if self.n else 1
        self.chunks = [(a, min(a + size, self.n)) for a in range(0, self.n, size)] or [(0, 0)]
        self.dx_method = _dx_method(self)

    def unfold(self, xp, x, xcm, a, b, dtype, dev, dev_key, reuse=False):
        """Fill and return the cached ``cols`` of samples ``a:b`` of ``x`` (``xcm``: ``x``
        channel-major), ``(c_I h_K w_K, m L)``.  With ``reuse`` (the backward), when the
        buffer still holds exactly that unfold (the same array ``x``, samples and geometry:
        no other layer of this shape ran in between, one chunk), it is returned as it is: the
        backward reuses its forward's unfold, and so sees ``x`` as the forward saw it (as
        saved tensors do).  The check is by identity of the buffer and of ``x``, both held
        here, so no other array can pass for it; the forward always refills (a caller may
        have changed ``x`` in place between two forwards, as a numerical gradient does)."""
        m, c, length = b - a, self.c, self.length
        cols = _workspace(xp, "cols", (c, self.taps, m, length), dtype, dev, dev_key)
        flat_cols = xp.reshape(cols, (c * self.taps, m * length))
        last = _local.unfolded
        if reuse and last is not None and last[0] is cols and last[1] is x and last[2:] == (a, b, self.tag):
            return flat_cols
        _local.unfolded = None  # stale while the buffer is being written
        xbuf = _workspace(xp, ("x", self.tag), (c, m, self.rows, self.wp), dtype, dev, dev_key)
        xbuf[:, :, self.ph : self.ph + self.h, self.pw : self.pw + self.w] = xcm[:, a:b, ...]
        flat = xp.reshape(xbuf, (c, m, self.rows * self.wp))
        for t, s in enumerate(self.shifts):
            cols[:, t, ...] = flat[:, :, s : s + length]
        _local.unfolded = (cols, x, a, b, self.tag)
        return flat_cols

    def product(self, xp, a, b, m):
        """``a @ b`` for ``b`` of shape ``(r, m L)`` (the batch axis of length ``m`` inside its
        columns), returned as ``(rows of a, m, L)``.  Batched form: one product per sample.

        The result is fresh, not a work buffer: writing it into a cached buffer removed the
        occasional page faults but measured ~4% slower on the LeNet step (the cached buffers
        are colder than the just-freed memory malloc hands back)."""
        per = b.shape[1] // max(m, 1)
        if not self.batched:
            return xp.reshape(xp.matmul(a, b), (a.shape[0], m, per))
        bb = xp.permute_dims(xp.reshape(b, (b.shape[0], m, per)), (1, 0, 2))
        return xp.permute_dims(xp.matmul(a, bb), (1, 0, 2))  # a view of the (m, rows, L) result

    def product_t(self, xp, a, b, m):
        """``a @ b^T`` with both ``(r, m L)``: the reduction over batch and pixels (eq. 18)."""
        if not self.batched:
            return xp.matmul(a, xp.matrix_transpose(b))
        ab = xp.permute_dims(xp.reshape(a, (a.shape[0], m, a.shape[1] // max(m, 1))), (1, 0, 2))
        bb = xp.permute_dims(xp.reshape(b, (b.shape[0], m, b.shape[1] // max(m, 1))), (1, 2, 0))
        return xp.sum(xp.matmul(ab, bb), axis=0)


def forward(xp, x, k, stride, padding):
    """``Y (n, c_O, h_O, w_O)``, a fresh contiguous array (see the module docstring)."""
    g = geometry(xp, x, k, stride, padding)
    dev, dtype = backend.device(x), x.dtype
    dev_key = backend.device_key(dev)
    xcm = xp.permute_dims(x, (1, 0, 2, 3))
    k2 = xp.reshape(k, (g.o, g.c * g.taps))
    if len(g.chunks) == 1 and g.wp == g.ow and g.sh == 1 and not g.batched:  # nothing to slice off: no copy
        y = xp.matmul(k2, g.unfold(xp, x, xcm, 0, g.n, dtype, dev, dev_key))  # fresh (c_O, n L)
        return xp.permute_dims(xp.reshape(y, (g.o, g.n, g.oh, g.ow)), (1, 0, 2, 3))
    rows, cols_ = slice(None, None, g.sh), slice(None, g.ow1, g.sw)
    y = xp.empty((g.n, g.o, g.oh, g.ow), dtype=dtype, device=dev)
    for a, b in g.chunks:
        yc = g.product(xp, k2, g.unfold(xp, x, xcm, a, b, dtype, dev, dev_key), b - a)  # (c_O, m, L)
        yc = xp.permute_dims(xp.reshape(yc, (g.o, b - a, g.oh1, g.wp)), (1, 0, 2, 3))
        y[a:b, ...] = yc[:, :, rows, cols_]
    return y


def _dx_method(g) -> str:
    """``"correlate"`` (unfold the padded ``dY`` grid, one product, no fold) or ``"fold"``."""
    if DX_METHOD != "auto":
        return DX_METHOD
    return "correlate" if g.o * g.rows_full <= FOLD_RATIO * g.c * g.oh1 else "fold"


def backward(xp, x, k, dy, stride, padding, input_gradient, reuse_unfold=False):
    """``(dX, dK)``: eq. 20 (``None`` unless ``input_gradient``) and eq. 18.  With
    ``reuse_unfold`` (a layer's backward, whose ``x`` is the input its forward saw), the
    forward's unfold of ``x`` is reused when the work buffer still holds it."""
    g = geometry(xp, x, k, stride, padding)
    dev, dtype = backend.device(x), x.dtype
    dev_key = backend.device_key(dev)
    xcm = xp.permute_dims(x, (1, 0, 2, 3))
    dycm = xp.permute_dims(dy, (1, 0, 2, 3))
    k2 = xp.reshape(k, (g.o, g.c * g.taps))
    length, taps = g.length, g.taps
    rows_dy = slice(None, (g.oh - 1) * g.sh + 1, g.sh)
    cols_dy = slice(None, (g.ow - 1) * g.sw + 1, g.sw)
    method = g.dx_method if input_gradient else None
    if method == "correlate":
        # dXpad[c, n, p] = sum_{o, t} K[o, c, t] grid[o, n, p - s_t]: the grid placed after
        # F = (h_K - 1) w_P + w_K - 1 zeros, unfolded with offsets F - s_t (eq. 20 as a full
        # convolution, computed as a cross-correlation of the padded grid).
        front = (g.kh - 1) * g.wp + g.kw - 1
        kg = xp.reshape(xp.permute_dims(k, (1, 0, 2, 3)), (g.c, g.o * taps))
        full_rows = (slice(g.kh - 1, g.kh - 1 + (g.oh - 1) * g.sh + 1, g.sh),)
        full_cols = (slice(g.kw - 1, g.kw - 1 + (g.ow - 1) * g.sw + 1, g.sw),)
        plen = g.hp * g.wp
    elif method == "fold":
        k2t = xp.matrix_transpose(k2)
    dk = None
    dx = xp.empty((g.n, g.c, g.h, g.w), dtype=dtype, device=dev) if input_gradient else None
    inner = (slice(None), slice(None), slice(g.ph, g.ph + g.h), slice(g.pw, g.pw + g.w))
    for a, b in g.chunks:
        m = b - a
        grid = _workspace(xp, ("grid", g.tag), (g.o, m, g.oh1, g.wp), dtype, dev, dev_key)
        grid[:, :, rows_dy, cols_dy] = dycm[:, a:b, ...]
        grid2 = xp.reshape(grid, (g.o, m * length))
        cols = g.unfold(xp, x, xcm, a, b, dtype, dev, dev_key, reuse=reuse_unfold)
        part = g.product_t(xp, grid2, cols, m)  # eq. 18, (c_O, c_I h_K w_K)
        dk = part if dk is None else dk + part
        if method == "correlate":
            gpad = _workspace(xp, ("gridpad", g.tag), (g.o, m, g.rows_full, g.wp), dtype, dev, dev_key)
            gpad[(slice(None), slice(None)) + full_rows + full_cols] = dycm[:, a:b, ...]
            flat = xp.reshape(gpad, (g.o, m, g.rows_full * g.wp))
            gcols = _workspace(xp, "gridcols", (g.o, taps, m, plen), dtype, dev, dev_key)
            for t, s in enumerate(g.shifts):
                gcols[:, t, ...] = flat[:, :, front - s : front - s + plen]
            dxp = g.product(xp, kg, xp.reshape(gcols, (g.o * taps, m * plen)), m)  # (c_I, m, h_P w_P)
            dxp = xp.reshape(dxp, (g.c, m, g.hp, g.wp))
            dx[a:b, ...] = xp.permute_dims(dxp[inner], (1, 0, 2, 3))
        elif method == "fold":
            dcols = xp.reshape(g.product(xp, k2t, grid2, m), (g.c, taps, m, length))
            acc = _workspace(xp, "fold", (g.c, m, g.rows * g.wp), dtype, dev, dev_key)
            acc[:, :, :length] = dcols[:, 0, ...]
            acc[:, :, length:] = 0
            for t in range(1, taps):  # the fold: transpose of the unfold's shifts (eq. 20)
                s = g.shifts[t]
                acc[:, :, s : s + length] += dcols[:, t, ...]
            acc4 = xp.reshape(acc, (g.c, m, g.rows, g.wp))
            dx[a:b, ...] = xp.permute_dims(acc4[inner], (1, 0, 2, 3))
    return dx, xp.reshape(dk, k.shape)
