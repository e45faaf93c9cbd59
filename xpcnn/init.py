"""Initial weights, drawn on the host from a seeded ``numpy.random.Generator``.

The Array API has no random module; drawing on the host and copying to the device means
one seed gives one model on NumPy, CuPy and every other backend.
"""

from __future__ import annotations

import numpy as np


def rng_from(seed) -> np.random.Generator:
    """A Generator from ``None`` (fresh entropy), an int seed, or a Generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise TypeError(
        f"Expected seed to be None, a non-negative int or a numpy.random.Generator. Received seed={seed!r}."
    )


def glorot_uniform(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))`` (Glorot and Bengio, 2010), float64."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)
