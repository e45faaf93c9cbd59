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


#: The bit generators whose state a checkpoint may restore (by name, never imported by path).
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def rng_state(rng: np.random.Generator) -> dict:
    """The state of ``rng``'s bit generator as JSON values (for :func:`rng_from_state`)."""
    return dict(rng.bit_generator.state)


def rng_from_state(state) -> np.random.Generator:
    """A new Generator in the saved ``state`` of :func:`rng_state`; ``ValueError`` (or
    ``TypeError``) for a state of another bit generator or a malformed one."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise ValueError(f"expected the state of one of {', '.join(BIT_GENERATORS)}, received {name!r:.40}")
    bits = getattr(np.random, name)()
    bits.state = state
    return np.random.Generator(bits)


def glorot_uniform(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))`` (Glorot and Bengio, 2010), float64."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def glorot_normal(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """``N(0, 2 / (fan_in + fan_out))`` (Glorot and Bengio, 2010), float64."""
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_normal(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """``N(0, 2 / fan_in)`` (He et al., 2015): keeps the variance of ReLU activations, the
    documented choice for ReLU networks (PyTorch's ``kaiming_normal_``, fan-in mode)."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def he_uniform(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """``U(-a, a)``, ``a = sqrt(6 / fan_in)``: the variance of :func:`he_normal`."""
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


def lecun_normal(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """``N(0, 1 / fan_in)`` (LeCun et al., 1998)."""
    return rng.normal(0.0, np.sqrt(1.0 / fan_in), size=shape)


def lecun_uniform(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """``U(-a, a)``, ``a = sqrt(3 / fan_in)``: the variance of :func:`lecun_normal`."""
    limit = np.sqrt(3.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


def zeros(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """All zeros (the generator is not used)."""
    return np.zeros(shape)


#: Name -> initializer ``f(rng, shape, fan_in, fan_out)``; the ``init=`` of ``Dense`` and
#: ``Convolutional``.  ``glorot_uniform`` is the default (the notes' networks use sigmoid and
#: tanh); ``he_normal`` is the choice for ReLU networks.
INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "zeros": zeros,
}
INITIALIZERS["kaiming_normal"] = he_normal
INITIALIZERS["kaiming_uniform"] = he_uniform


def initializer(name: str, where: str):
    """The initializer called ``name`` (a key of :data:`INITIALIZERS`); ``where`` prefixes errors."""
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise ValueError(
            f"{where}: Expected init to be one of {sorted(INITIALIZERS)}. Received init={name!r}."
        )
    return INITIALIZERS[name]
