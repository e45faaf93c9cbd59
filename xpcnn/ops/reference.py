"""The tutorial's per-sample loops, kept as a reference implementation and test oracle.

Host NumPy only, float64 accumulation, deliberately simple and slow (10-300x slower
than the vectorised path): a loop over samples, output channels and input channels,
each pair a 2-D valid cross-correlation (eq. 17, 18, 20 written out literally).
"""

from __future__ import annotations

import numpy as np


def correlate2d_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Valid 2-D cross-correlation by its definition: ``y[a, b] = sum_ij x[a+i, b+j] k[i, j]``."""
    kh, kw = k.shape
    oh, ow = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    y = np.zeros((oh, ow), dtype=np.result_type(x, k))
    for a in range(oh):
        for b in range(ow):
            y[a, b] = np.sum(x[a : a + kh, b : b + kw] * k)
    return y


def correlate2d_full(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Full 2-D cross-correlation: the valid one on the input padded by ``k - 1`` zeros."""
    kh, kw = k.shape
    return correlate2d_valid(np.pad(x, ((kh - 1, kh - 1), (kw - 1, kw - 1))), k)


def _pad(x, padding):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def conv2d_forward(x, k, stride=(1, 1), padding=(0, 0)):
    """``Y[n, i] = sum_j Xpad[n, j] * K[i, j]`` with per-sample, per-channel loops (eq. 17)."""
    x = _pad(np.asarray(x, dtype=np.float64), padding)
    k = np.asarray(k, dtype=np.float64)
    n, c = x.shape[:2]
    o = k.shape[0]
    y = None
    for s in range(n):
        for i in range(o):
            acc = sum(correlate2d_valid(x[s, j], k[i, j]) for j in range(c))
            if y is None:
                y = np.zeros((n, o) + acc.shape)
            y[s, i] = acc
    return y[:, :, :: stride[0], :: stride[1]]


def conv2d_backward(x, k, dy, stride=(1, 1), padding=(0, 0)):
    """``(dX, dK)`` by loops: eq. 18 and eq. 20 as a full *convolution* (rot180 kernel)."""
    ph, pw = padding
    xpad = _pad(np.asarray(x, dtype=np.float64), padding)
    k = np.asarray(k, dtype=np.float64)
    n, c, hp, wp = xpad.shape
    o, _, kh, kw = k.shape
    full = np.zeros((n, o, hp - kh + 1, wp - kw + 1))
    full[:, :, :: stride[0], :: stride[1]] = np.asarray(dy, dtype=np.float64)
    dk = np.zeros(k.shape)
    dxpad = np.zeros(xpad.shape)
    for s in range(n):
        for i in range(o):
            for j in range(c):
                dk[i, j] += correlate2d_valid(xpad[s, j], full[s, i])
                dxpad[s, j] += correlate2d_full(full[s, i], k[i, j, ::-1, ::-1])
    dx = dxpad[:, :, ph : hp - ph, pw : wp - pw]
    return dx, dk
