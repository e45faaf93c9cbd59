"""Reference implementations for tests and benchmarks: the tutorial's per-sample loops.

Not the library's code path: host NumPy only, float64 accumulation, deliberately simple and
slow (10-300x slower than the vectorised path): a loop over samples, output channels and
input channels, each pair a 2-D valid cross-correlation (eq. 17, 18, 20 written out
literally).  The test suite checks every formulation of the convolution (the Array API path,
the CUDA kernels) against :func:`conv2d_forward` and :func:`conv2d_backward`; the benchmark
times :func:`tutorial_forward` and :func:`tutorial_backward` as the "per-sample loops".
(Until 0.1 this module was ``xpcnn.ops.reference``; that name still works, with a warning.)
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "conv2d_backward",
    "conv2d_forward",
    "correlate2d_full",
    "correlate2d_taps",
    "correlate2d_valid",
    "tutorial_backward",
    "tutorial_forward",
]


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


# --------------------------------------------------------------------------------------
# The tutorial's way, at the speed the tutorial gets: per sample, per channel pair, one
# 2-D correlation each (the tutorial calls scipy.signal.correlate2d; this is the same loop
# structure with a scipy-free 2-D correlation vectorised over pixels).  The benchmark times
# it as the "per-sample loops" baseline.  Float32 in, float32 out, stride 1, no padding.
# --------------------------------------------------------------------------------------


def correlate2d_taps(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Valid 2-D cross-correlation, vectorised: a loop over the kernel taps (shifted
    multiply-adds over all pixels) or, when the output is the smaller, over output pixels."""
    kh, kw = k.shape
    oh, ow = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    if oh * ow < kh * kw:  # e.g. dK = X * dY: a large "kernel", a tiny output
        y = np.empty((oh, ow), dtype=np.result_type(x, k))
        for a in range(oh):
            for b in range(ow):
                y[a, b] = np.vdot(x[a : a + kh, b : b + kw], k)
        return y
    y = np.zeros((oh, ow), dtype=np.result_type(x, k))
    for i in range(kh):
        for j in range(kw):
            y += k[i, j] * x[i : i + oh, j : j + ow]
    return y


def tutorial_forward(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``Y[s, i] = B[i] + sum_j X[s, j] * K[i, j]`` (eq. 17), one 2-D correlation per pair."""
    n, c = x.shape[:2]
    o, _, kh, kw = k.shape
    y = np.empty((n, o, x.shape[2] - kh + 1, x.shape[3] - kw + 1), dtype=x.dtype)
    for s in range(n):
        for i in range(o):
            y[s, i] = b[i]
            for j in range(c):
                y[s, i] += correlate2d_taps(x[s, j], k[i, j])
    return y


def tutorial_backward(x: np.ndarray, k: np.ndarray, dy: np.ndarray):
    """``(dX, dK, dB)`` by per-sample, per-pair loops: eq. 18, 19 and 20 (a full convolution:
    the valid correlation of the zero-padded ``dY`` with the kernel rotated by 180 degrees)."""
    n, c = x.shape[:2]
    o, _, kh, kw = k.shape
    dk = np.zeros(k.shape, dtype=x.dtype)
    dx = np.zeros(x.shape, dtype=x.dtype)
    rot = k[:, :, ::-1, ::-1]
    for s in range(n):
        dyp = np.pad(dy[s], ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
        for i in range(o):
            for j in range(c):
                dk[i, j] += correlate2d_taps(x[s, j], dy[s, i])
                dx[s, j] += correlate2d_taps(dyp[i], rot[i, j])
    db = dy.sum(axis=(0, 2, 3))
    return dx, dk, db
