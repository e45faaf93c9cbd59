"""The generic Array API formulation of the NCHW cross-correlation ("flat shift" unfold).

Each zero-padded image is flattened channel-major to ``(c_I, n, h_P * w_P)``.  A kernel
offset ``(i, j)`` is then a 1-D shift ``i * w_P + j`` of that flat image, so the unfold
(im2col) is ``h_K * w_K`` contiguous slices and the whole layer one matrix product.  The
output is computed on an ``h_O1 x w_P`` grid (stride 1, full padded width) and the
``w_P - w_O1`` columns that wrap around a row are sliced off.  Stride ``s`` takes every
``s``-th output of the stride-1 result.  Only Array API functions are used, so NumPy,
CuPy, PyTorch and array_api_strict all run this same code.
"""

from __future__ import annotations

from .. import backend


def _pad(xp, x, ph: int, pw: int):
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype, device=backend.device(x))
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def _unfold(xp, xpad, kh: int, kw: int):
    """``cols`` of shape ``(c_I * h_K * w_K, n * h_O1 * w_P)`` and the grid ``(h_O1, w_P)``."""
    n, c, hp, wp = xpad.shape
    oh = hp - kh + 1
    length = oh * wp
    flat = xp.reshape(xp.permute_dims(xpad, (1, 0, 2, 3)), (c, n, hp * wp))
    if kw > 1:
        tail = xp.zeros((c, n, kw - 1), dtype=xpad.dtype, device=backend.device(xpad))
        flat = xp.concat([flat, tail], axis=2)
    shifts = [flat[:, :, i * wp + j : i * wp + j + length] for i in range(kh) for j in range(kw)]
    cols = xp.stack(shifts, axis=1)  # (c, kh*kw, n, length)
    return xp.reshape(cols, (c * kh * kw, n * length)), oh, wp


def forward(xp, x, k, stride, padding):
    n, c, h, w = x.shape
    o, _, kh, kw = k.shape
    xpad = _pad(xp, x, *padding)
    cols, oh1, wp = _unfold(xp, xpad, kh, kw)
    ow1 = wp - kw + 1
    y = xp.matmul(xp.reshape(k, (o, c * kh * kw)), cols)  # (o, n * oh1 * wp)
    y = xp.reshape(y, (o, n, oh1, wp))[:, :, :: stride[0], : ow1 : stride[1]]
    return xp.permute_dims(y, (1, 0, 2, 3))


def backward(xp, x, k, dy, stride, padding, input_gradient):
    n, c, h, w = x.shape
    o, _, kh, kw = k.shape
    ph, pw = padding
    xpad = _pad(xp, x, ph, pw)
    cols, oh1, wp = _unfold(xp, xpad, kh, kw)
    hp = h + 2 * ph
    length = oh1 * wp
    dev = backend.device(x)
    # dY on the stride-1 grid of width w_P; the wrap-around columns (and skipped strides) stay 0.
    grid = xp.zeros((o, n, oh1, wp), dtype=dy.dtype, device=dev)
    oh, ow = dy.shape[2], dy.shape[3]
    grid[:, :, : (oh - 1) * stride[0] + 1 : stride[0], : (ow - 1) * stride[1] + 1 : stride[1]] = (
        xp.permute_dims(dy, (1, 0, 2, 3))
    )
    grid = xp.reshape(grid, (o, n * length))
    dk = xp.reshape(xp.matmul(grid, xp.matrix_transpose(cols)), k.shape)  # eq. 18
    if not input_gradient:
        return None, dk
    dcols = xp.matmul(xp.matrix_transpose(xp.reshape(k, (o, c * kh * kw))), grid)
    dcols = xp.reshape(dcols, (c, kh * kw, n, length))
    dflat = xp.zeros((c, n, hp * wp + kw - 1), dtype=x.dtype, device=dev)
    for i in range(kh):  # fold: the transpose of the unfold's shifts (eq. 20)
        for j in range(kw):
            s = i * wp + j
            dflat[:, :, s : s + length] = dflat[:, :, s : s + length] + dcols[:, i * kw + j, ...]
    dxpad = xp.reshape(dflat[:, :, : hp * wp], (c, n, hp, wp))
    dx = xp.permute_dims(dxpad[:, :, ph : ph + h, pw : pw + w], (1, 0, 2, 3))
    return dx, dk
