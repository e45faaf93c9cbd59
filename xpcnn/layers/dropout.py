"""Dropout (Srivastava et al., 2014), inverted: scaled in training, the identity in evaluation."""

from __future__ import annotations

import numbers

from .. import backend, init
from ..backend import Array
from .base import Layer, register

_M32 = 0xFFFFFFFF
_MIX = 0x045D9F3B  # < 2**27: a 32-bit value times it stays below 2**59, exact in int64


def _mix32(xp, h):
    """A 32-bit integer hash of every element of the int64 array ``h`` (values in [0, 2**32)):
    xor-shift and multiply rounds, each product exact in int64, so NumPy, CuPy, PyTorch and
    array_api_strict give the same bits."""
    for _ in range(3):
        h = ((h ^ (h >> 16)) * _MIX) & _M32
    return h ^ (h >> 16)


def _key(seed: int, step: int) -> int:
    """A 32-bit key for (seed, step), mixed on the host with Python integers."""
    h = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) % 2**64
    h ^= h >> 31
    h = (h * 0xBF58476D1CE4E5B9) % 2**64
    h ^= h >> 29
    return h & _M32


@register
class Dropout(Layer):
    """``Y = X * mask / (1 - p)`` in training mode, ``Y = X`` in evaluation mode.

    Each element is kept with probability ``1 - p`` (``p = rate``); scaling the kept ones by
    ``1 / (1 - p)`` keeps ``E[Y] = X``, so evaluation needs no rescaling.  Backward:
    ``dE/dX = dE/dY * mask / (1 - p)`` (30) in training, ``dE/dY`` in evaluation.

    The masks are computed where the data live, without a host-to-device copy: element ``i``
    of the ``t``-th training forward is kept when ``hash(key(seed, t) ^ i) >= p 2^32`` for a
    32-bit integer hash built from Array-API integer operations; one seed gives the same
    masks on every backend.  ``steps`` counts the training forwards (it is part of the
    layer's config, so a checkpoint resumes the sequence).

    Args:
        rate: ``p`` in [0, 1).
        seed: an int (or ``None``: one is drawn from fresh entropy).
        steps: the number of training forwards already taken (what a checkpoint restores).
    """

    progress_config = ("steps",)

    def __init__(self, rate: float = 0.5, *, seed=None, steps: int = 0):
        super().__init__()
        if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: Expected rate in [0, 1). Received rate={rate!r}.")
        self.rate: float = float(rate)
        if seed is None:
            seed = int(init.rng_from(None).integers(2**31))
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise TypeError(
                f"Dropout: Expected seed to be a non-negative int or None. Received seed={seed!r}."
            )
        self.seed: int = int(seed)
        if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"Dropout: Expected steps to be a non-negative int. Received steps={steps!r}.")
        self.steps: int = int(steps)

    def config(self) -> dict:
        return {"rate": self.rate, "seed": self.seed, "steps": self.steps}

    def mask(self, xp, shape, device, step: int) -> Array:
        """The boolean keep-mask of training forward number ``step`` for inputs of ``shape``."""
        n = 1
        for s in shape:
            n *= int(s)
        index = xp.arange(n, dtype=xp.int64, device=device)
        bits = _mix32(xp, (index ^ _key(self.seed, step)) & _M32)
        threshold = min(int(self.rate * 2**32), _M32)
        return xp.reshape(bits >= threshold, tuple(shape))

    def _forward(self, xp, x):
        self._input = x
        self._scale = None
        if not self.training or self.rate == 0:
            return xp.asarray(x, copy=True)
        keep = self.mask(xp, x.shape, backend.device(x), self.steps)
        self.steps += 1
        self._scale = xp.astype(keep, x.dtype) * (1.0 / (1.0 - self.rate))
        return x * self._scale

    def _backward(self, xp, output_gradient, input_gradient):
        if self._scale is None:
            return output_gradient
        return output_gradient * self._scale  # eq. 30
