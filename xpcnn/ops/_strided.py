"""The Array API cross-correlation for strides above 1, dilation and groups: an unfold of
strided slices.

The flat-shift unfold (:mod:`xpcnn.ops._flat_shift`) computes every output of the stride-1
grid and keeps every ``s``-th: ``s_h s_w`` times the products a strided layer needs (4x for
the stride-2 convolutions of a residual network).  Here the unfold reads only the windows
the stride visits: tap ``(i, j)`` of the kernel is the strided slice
``Xpad[:, :, i : i + s_h (h_O - 1) + 1 : s_h, j : j + s_w (w_O - 1) + 1 : s_w]`` of the padded,
channel-major input ``(c_I, n, h_P, w_P)``, so ``cols`` is ``(c_I h_K w_K, n h_O w_O)`` and

* ``Y = K @ cols`` (eq. 17), ``(c_O, n h_O w_O)``;
* ``dK = dY @ cols^T`` (eq. 18), ``dY`` read channel-major ``(c_O, n h_O w_O)``;
* ``dX``: ``dcols = K^T @ dY``, then the fold, the transpose of the unfold: each tap's
  ``(c_I, n, h_O, w_O)`` block is added into the same strided slice of a zero ``dXpad``,
  whose interior is ``dX`` (eq. 20).

Dilation ``d`` moves tap ``(i, j)`` to ``(d_h i, d_w j)``; groups ``G`` make every product
block-diagonal: the ``c_O / G`` kernels of group ``g`` see only its ``c_I / G`` channels, so
``K`` is ``(c_O, c_I / G, h_K, w_K)`` and each product runs per group (one batched ``matmul``).

The batch is processed in chunks whose unfolded matrix stays near :data:`CHUNK_BYTES`.
Results are fresh contiguous NCHW arrays.  Only Array API functions are used.
"""

from __future__ import annotations

from ._flat_shift import _itemsize
from .geometry import conv_output_size

#: Target size in bytes of one unfolded chunk ``(c_I h_K w_K, m h_O w_O)``.
CHUNK_BYTES = 4 << 20


def _sizes(x, k, stride, padding, dilation):
    n, c, h, w = (int(s) for s in x.shape)
    o, _, kh, kw = (int(s) for s in k.shape)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    return n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow, dh, dw


def _taps(g):
    """The strided window slices of every tap ``(i, j)``, row-major (the kernels' order)."""
    *_, kh, kw, sh, sw, _ph, _pw, oh, ow, dh, dw = g
    return [
        (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))
        for i in range(kh)
        for j in range(kw)
    ]


def _chunks(n: int, per_sample: int) -> list:
    size = max(1, min(n, CHUNK_BYTES // max(per_sample, 1)))
    return [(a, min(a + size, n)) for a in range(0, n, size)] or [(0, 0)]


def _unfold(xp, xcm, a, b, g, dtype, dev):
    """``cols`` of samples ``a:b``: ``(c_I h_K w_K, m h_O w_O)``."""
    n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow, dh, dw = g
    m = b - a
    xpad = xp.zeros((c, m, h + 2 * ph, w + 2 * pw), dtype=dtype, device=dev)
    xpad[:, :, ph : ph + h, pw : pw + w] = xcm[:, a:b, ...]
    taps = _taps(g)
    cols = xp.empty((c, len(taps), m, oh, ow), dtype=dtype, device=dev)
    for t, (rows, cols_) in enumerate(taps):
        cols[:, t, ...] = xpad[:, :, rows, cols_]
    return xp.reshape(cols, (c * len(taps), m * oh * ow))


def _grouped(xp, a, groups: int):
    """``(r, q)`` as ``(groups, r / groups, q)``: the rows of each group (channels are grouped
    contiguously, group ``g`` holding channels ``g r/G .. (g + 1) r/G - 1``)."""
    return xp.reshape(a, (groups, a.shape[0] // groups, a.shape[1]))


def _kernels(xp, k, groups: int):
    """``K`` as ``(c_O, c_I/G h_K w_K)`` rows; per group the ``(c_O/G, c_I/G h_K w_K)`` block."""
    return xp.reshape(k, (k.shape[0], k.shape[1] * k.shape[2] * k.shape[3]))


def forward(xp, x, k, stride, padding, dev, dilation=(1, 1), groups: int = 1):
    """``Y (n, c_O, h_O, w_O)``, a fresh contiguous array."""
    g = _sizes(x, k, stride, padding, dilation)
    n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow, dh, dw = g
    dtype = x.dtype
    xcm = xp.permute_dims(x, (1, 0, 2, 3))
    k2 = _kernels(xp, k, groups)
    y = xp.empty((n, o, oh, ow), dtype=dtype, device=dev)
    itemsize = _itemsize(xp, dtype)
    for a, b in _chunks(n, c * kh * kw * oh * ow * itemsize):
        if groups == 1:
            yc = xp.matmul(k2, _unfold(xp, xcm, a, b, g, dtype, dev))  # eq. 17, (c_O, m h_O w_O)
        else:  # each group's kernels see only the group's channels
            cols = _grouped(xp, _unfold(xp, xcm, a, b, g, dtype, dev), groups)
            yc = xp.reshape(xp.matmul(_grouped(xp, k2, groups), cols), (o, (b - a) * oh * ow))
        y[a:b, ...] = xp.permute_dims(xp.reshape(yc, (o, b - a, oh, ow)), (1, 0, 2, 3))
    return y


def backward(xp, x, k, dy, stride, padding, input_gradient, dev, dilation=(1, 1), groups: int = 1):
    """``(dX, dK)``: eq. 20 (``None`` unless ``input_gradient``) and eq. 18."""
    g = _sizes(x, k, stride, padding, dilation)
    n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow, dh, dw = g
    dtype = x.dtype
    taps = _taps(g)
    xcm = xp.permute_dims(x, (1, 0, 2, 3))
    dycm = xp.permute_dims(dy, (1, 0, 2, 3))
    k2 = _kernels(xp, k, groups)
    dx = xp.empty((n, c, h, w), dtype=dtype, device=dev) if input_gradient else None
    dk = None
    itemsize = _itemsize(xp, dtype)
    for a, b in _chunks(n, c * len(taps) * oh * ow * itemsize):
        m = b - a
        grid = xp.reshape(dycm[:, a:b, ...], (o, m * oh * ow))  # a copy: the slice is not contiguous
        cols = _unfold(xp, xcm, a, b, g, dtype, dev)
        if groups == 1:
            part = xp.matmul(grid, xp.matrix_transpose(cols))  # eq. 18, (c_O, c_I h_K w_K)
        else:
            part = xp.matmul(_grouped(xp, grid, groups), xp.matrix_transpose(_grouped(xp, cols, groups)))
            part = xp.reshape(part, k2.shape)
        dk = part if dk is None else dk + part
        if input_gradient:
            if groups == 1:
                dcols = xp.matmul(xp.matrix_transpose(k2), grid)
            else:
                dcols = xp.matmul(xp.matrix_transpose(_grouped(xp, k2, groups)), _grouped(xp, grid, groups))
            dcols = xp.reshape(dcols, (c, len(taps), m, oh, ow))
            acc = xp.zeros((c, m, h + 2 * ph, w + 2 * pw), dtype=dtype, device=dev)
            for t, (rows, cols_) in enumerate(taps):  # the fold (eq. 20)
                acc[:, :, rows, cols_] = acc[:, :, rows, cols_] + dcols[:, t, ...]
            dx[a:b, ...] = xp.permute_dims(acc[:, :, ph : ph + h, pw : pw + w], (1, 0, 2, 3))  # type: ignore[index]
    return dx, xp.reshape(dk, k.shape)


def worthwhile(stride, dilation=(1, 1), groups: int = 1) -> bool:
    """This formulation runs for strides above 1 (it computes only the windows the stride
    visits), and for every dilation and grouping (the flat shift has neither)."""
    return stride != (1, 1) or dilation != (1, 1) or groups != 1  # (pairs of ints >= 1)
