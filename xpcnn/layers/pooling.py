"""Max and average pooling over NCHW, vectorised over samples and channels.

Notation: ``X (n, c, h_I, w_I)``, pool ``(h_P, w_P)``, stride ``s`` (default: the pool size),
padding ``p`` per side, ``Y (n, c, h_O, w_O)`` with ``h_O = (h_I + 2 p_h - h_P) // s_h + 1``
(floor: rows and columns that do not fill a last window are dropped, and get zero gradient).

The only Python loop is over the ``h_P * w_P`` offsets ``(i, j)`` of the window: the
strided slice ``X[:, :, i::s_h, j::s_w]`` (cut to ``h_O x w_O``) holds that offset of every
window at once.  Padding is at most half the pool, so every window holds a real element.
"""

from __future__ import annotations

from .. import backend
from .._validate import pair
from ..ops.geometry import conv_output_size
from .base import Layer, register, shown


class _Pool2D(Layer):
    def __init__(self, pool_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.pool_size = pair(pool_size, "pool_size", 1, name)
        self.stride = self.pool_size if stride is None else pair(stride, "stride", 1, name)
        self.padding = pair(padding, "padding", 0, name)
        for p, k in zip(self.padding, self.pool_size, strict=True):
            if 2 * p > k:
                raise ValueError(
                    f"{name}: padding must be at most half the pool size. Received padding={padding!r} "
                    f"with pool_size={self.pool_size}."
                )

    def config(self) -> dict:
        return {"pool_size": list(self.pool_size), "stride": list(self.stride), "padding": list(self.padding)}

    def output_shape(self, input_shape):
        c, h, w = input_shape
        return (c, *(conv_output_size(s, *a) for s, a in zip((h, w), self._axes(), strict=True)))

    def _axes(self):
        return tuple(zip(self.pool_size, self.stride, self.padding, strict=True))

    def _check_sample_shape(self, sample, batch):
        if len(sample) != 3:
            raise ValueError(
                f"{self.label}: expected input of rank 4 (batch, channels, height, width), received shape "
                f"{shown(batch, sample)}."
            )
        (ph, pw), (kh, kw) = self.padding, self.pool_size
        h, w = sample[1] + 2 * ph, sample[2] + 2 * pw
        if kh > h or kw > w:
            raise ValueError(
                f"{self.label}: pool_size {self.pool_size} is larger than the padded input "
                f"({h}, {w}) (input shape {shown(batch, sample)}, padding {self.padding})."
            )

    def _windows(self, xp, x):
        """``(padded x, output height, output width)`` for a validated ``x``."""
        (ph, pw), (kh, kw) = self.padding, self.pool_size
        h, w = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
        if ph or pw:
            padded = xp.full(
                (x.shape[0], x.shape[1], h, w), self._fill, dtype=x.dtype, device=backend.device(x)
            )
            padded[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]] = x
            x = padded
        return x, conv_output_size(h, kh, self.stride[0]), conv_output_size(w, kw, self.stride[1])

    def _slice(self, i, j, ho, wo):
        sh, sw = self.stride
        return (
            slice(None),
            slice(None),
            slice(i, i + sh * (ho - 1) + 1, sh),
            slice(j, j + sw * (wo - 1) + 1, sw),
        )

    def _offsets(self):
        kh, kw = self.pool_size
        return [(i, j) for i in range(kh) for j in range(kw)]

    def _scatter(self, xp, parts, ho, wo):
        """Sum the per-offset gradients ``parts[(i, j)]`` (shape ``(n, c, h_O, w_O)``) into
        ``dE/dX`` (windows may overlap when stride < pool size), then cut the padding away."""
        x, (ph, pw) = self._input, self.padding
        n, c, h, w = x.shape
        dx = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype, device=backend.device(x))
        for (i, j), part in parts:
            key = self._slice(i, j, ho, wo)
            dx[key] = dx[key] + part
        return dx[:, :, ph : ph + h, pw : pw + w]


@register
class MaxPool2D(_Pool2D):
    """``Y = max`` over each window; backward sends ``dE/dY`` to the window's maximum (the
    first one in row-major window order on a tie, so exactly one element gets it).
    Padding, if any, is ``-inf`` and never wins.

    NaN propagates, as in PyTorch: a window holding a NaN outputs NaN, and its gradient goes
    to the window's last NaN in row-major order (the element the output came from), so a
    model never trains silently on NaN data."""

    _fill = -float("inf")

    def _forward(self, xp, x):
        xpad, ho, wo = self._windows(xp, x)
        self._input, self._hw = x, (ho, wo)
        best, winner = None, None
        for k, (i, j) in enumerate(self._offsets()):
            window = xpad[self._slice(i, j, ho, wo)]
            if best is None:
                best, winner = window, xp.zeros_like(window, dtype=xp.int32)
                continue
            better = (window > best) | xp.isnan(window)  # a NaN always takes over
            best = xp.where(better, window, best)
            winner = xp.where(better, xp.full_like(winner, k), winner)
        self._winner = winner
        return best if self.pool_size != (1, 1) else xp.asarray(best, copy=True)  # never a view of x

    def _backward(self, xp, output_gradient, input_gradient):
        ho, wo = self._hw
        zero = xp.zeros_like(output_gradient)
        parts = (
            (ij, xp.where(self._winner == k, output_gradient, zero)) for k, ij in enumerate(self._offsets())
        )
        return self._scatter(xp, parts, ho, wo)


@register
class AvgPool2D(_Pool2D):
    """``Y = mean`` over each window of ``h_P * w_P`` elements (zero padding counts as elements);
    backward spreads ``dE/dY / (h_P w_P)`` evenly over the window."""

    _fill = 0.0

    def _forward(self, xp, x):
        xpad, ho, wo = self._windows(xp, x)
        self._input, self._hw = x, (ho, wo)
        total = None
        for i, j in self._offsets():
            window = xpad[self._slice(i, j, ho, wo)]
            total = window if total is None else total + window
        return total / (self.pool_size[0] * self.pool_size[1])

    def _backward(self, xp, output_gradient, input_gradient):
        ho, wo = self._hw
        share = output_gradient / (self.pool_size[0] * self.pool_size[1])
        return self._scatter(xp, ((ij, share) for ij in self._offsets()), ho, wo)


class _GlobalPool2D(Layer):
    """Pool each channel's whole ``h x w`` map to one value: ``(n, c, h, w) -> (n, c)``."""

    def output_shape(self, input_shape):
        return (input_shape[0],)

    def _check_sample_shape(self, sample, batch):
        if len(sample) != 3:
            raise ValueError(
                f"{self.label}: expected input of rank 4 (batch, channels, height, width), received shape "
                f"{shown(batch, sample)}."
            )


@register
class GlobalAvgPool2D(_GlobalPool2D):
    """``Y_nc = (1 / (h w)) sum_ij X_ncij`` (31); backward spreads ``dE/dY_nc / (h w)`` evenly
    over the map (32)."""

    def _forward(self, xp, x):
        self._input = x
        return xp.mean(x, axis=(2, 3))  # eq. 31

    def _backward(self, xp, output_gradient, input_gradient):
        n, c, h, w = self._input.shape
        share = xp.reshape(output_gradient / (h * w), (n, c, 1, 1))
        return xp.broadcast_to(share, (n, c, h, w)) + xp.zeros_like(self._input)  # eq. 32, a new array


@register
class GlobalMaxPool2D(_GlobalPool2D):
    """``Y_nc = max_ij X_ncij``; backward sends ``dE/dY_nc`` to the map's first maximum in
    row-major order (NaN propagates: a map holding a NaN outputs NaN, and its first NaN gets
    the gradient)."""

    def _forward(self, xp, x):
        self._input = x
        n, c, h, w = x.shape
        flat = xp.reshape(x, (n, c, h * w))
        nan = xp.isnan(flat)
        # a NaN ranks above everything: +inf in a copy where NaN stood, and NaN put back after
        ranked = xp.where(nan, xp.asarray(float("inf"), dtype=x.dtype, device=backend.device(x)), flat)
        first_nan = xp.argmax(xp.astype(nan, xp.int32), axis=2)
        self._winner = xp.where(xp.any(nan, axis=2), first_nan, xp.argmax(ranked, axis=2))
        best = xp.max(flat, axis=2)  # NaN where the map holds one
        return best

    def _backward(self, xp, output_gradient, input_gradient):
        n, c, h, w = self._input.shape
        positions = xp.arange(h * w, dtype=self._winner.dtype, device=backend.device(self._input))
        hit = xp.reshape(positions, (1, 1, h * w)) == xp.reshape(self._winner, (n, c, 1))
        dx = xp.where(
            hit, xp.reshape(output_gradient, (n, c, 1)), xp.zeros_like(xp.reshape(self._input, (n, c, h * w)))
        )
        return xp.reshape(dx, (n, c, h, w))
