"""Activation functions and their derivatives (notes section 1.2, eq. 23-24).

Each function takes a floating array ``v`` of any shape and returns an array of the same
shape, namespace, device and dtype, computed with ``xp``, the Array API namespace of ``v``.
``<name>_prime(v)`` is the elementwise derivative ``phi'(v)`` used by eq. 13.

Ridge functions: ``linear`` (``a + b v``), ``relu``, ``heaviside``, ``sigmoid`` (alias
``logistic``, eq. 23-24), ``tanh``.  Radial functions with centre ``c``: ``gaussian``,
``multiquadratic``, ``inverse_multiquadratic``.  The notes write ``||v - c||`` for a vector
``v``; here each unit is its own one-dimensional input, so ``||v - c||`` is ``|v - c|``
elementwise.  ``softmax`` works on the last axis; its derivative is a full Jacobian, so it
comes as ``softmax_jacobian`` and the product ``softmax_vjp`` instead of ``softmax_prime``.
"""

from __future__ import annotations

from . import backend
from ._validate import real
from .backend import Array

__all__ = [
    "FUNCTIONS",
    "gaussian",
    "gaussian_prime",
    "heaviside",
    "heaviside_prime",
    "inverse_multiquadratic",
    "inverse_multiquadratic_prime",
    "linear",
    "linear_prime",
    "logistic",
    "logistic_prime",
    "multiquadratic",
    "multiquadratic_prime",
    "relu",
    "relu_prime",
    "sigmoid",
    "sigmoid_prime",
    "softmax",
    "softmax_jacobian",
    "softmax_vjp",
    "tanh",
    "tanh_prime",
]


def _xp(v, where):
    return backend.check_array(v, "v", where)


def _scalar(v, xp, value):
    return xp.asarray(value, dtype=v.dtype, device=backend.device(v))


# ------------------------------------------------------------------------------ ridge
def linear(v, a: float = 0.0, b: float = 1.0) -> Array:
    """``phi(v) = a + b v`` (notes 1.2.2); the identity for ``a=0, b=1``."""
    _xp(v, "linear")
    return real(a, "a", where="linear") + real(b, "b", where="linear") * v


def linear_prime(v, a: float = 0.0, b: float = 1.0) -> Array:
    """``phi'(v) = b``."""
    xp = _xp(v, "linear_prime")
    return xp.full_like(v, real(b, "b", where="linear_prime"))


def relu(v) -> Array:
    """``phi(v) = max(0, v)``."""
    xp = _xp(v, "relu")
    return xp.maximum(v, xp.zeros_like(v))  # 10x faster than where() on NumPy; NaN propagates


def relu_prime(v) -> Array:
    """``phi'(v) = 1`` for ``v > 0``, else ``0`` (the value 0 is taken at the kink ``v = 0``)."""
    xp = _xp(v, "relu_prime")
    return xp.astype(v > 0, v.dtype)


def heaviside(v) -> Array:
    """``phi(v) = 1`` if ``v > 0`` else ``0`` (strict, as in the notes)."""
    xp = _xp(v, "heaviside")
    return xp.astype(v > 0, v.dtype)


def heaviside_prime(v) -> Array:
    """``0`` everywhere: the step is flat almost everywhere (its derivative at 0 is a Dirac
    impulse, which is not representable), so no gradient flows through a Heaviside unit."""
    xp = _xp(v, "heaviside_prime")
    return xp.zeros_like(v)


def sigmoid(v) -> Array:
    """``sigma(v) = 1 / (1 + exp(-v))`` (eq. 23), without overflow for any ``v``.

    With ``z = exp(-|v|)`` in ``(0, 1]``: ``sigma = 1/(1+z)`` for ``v >= 0`` and ``z/(1+z)``
    for ``v < 0``; ``exp`` only sees non-positive arguments.
    """
    xp = _xp(v, "sigmoid")
    z = xp.exp(-xp.abs(v))
    return xp.where(v >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_prime(v) -> Array:
    """``sigma'(v) = sigma(v) (1 - sigma(v))`` (eq. 24)."""
    s = sigmoid(v)
    return s * (1 - s)


logistic, logistic_prime = sigmoid, sigmoid_prime


def tanh(v) -> Array:
    """``phi(v) = tanh(v)``."""
    return _xp(v, "tanh").tanh(v)


def tanh_prime(v) -> Array:
    """``phi'(v) = 1 - tanh(v)^2``."""
    t = tanh(v)
    return 1 - t * t


# ----------------------------------------------------------------------------- radial
def gaussian(v, c: float = 0.0, sigma: float = 1.0) -> Array:
    """``phi(v) = exp(-(v - c)^2 / (2 sigma^2))``, ``sigma > 0``."""
    xp = _xp(v, "gaussian")
    d = (v - real(c, "c", where="gaussian")) / real(sigma, "sigma", "positive", "gaussian")
    return xp.exp(-0.5 * d * d)


def gaussian_prime(v, c: float = 0.0, sigma: float = 1.0) -> Array:
    """``phi'(v) = -(v - c) / sigma^2 * phi(v)``."""
    _xp(v, "gaussian_prime")
    c, sigma = real(c, "c", where="gaussian_prime"), real(sigma, "sigma", "positive", "gaussian_prime")
    return -((v - c) / sigma**2) * gaussian(v, c, sigma)


def _hypot(v, c, a, where):
    xp = _xp(v, where)
    d = v - real(c, "c", where=where)
    return d, xp.hypot(d, _scalar(v, xp, real(a, "a", "nonzero", where)))


def multiquadratic(v, c: float = 0.0, a: float = 1.0) -> Array:
    """``phi(v) = sqrt((v - c)^2 + a^2)``, ``a != 0`` (computed with ``hypot``: no overflow)."""
    return _hypot(v, c, a, "multiquadratic")[1]


def multiquadratic_prime(v, c: float = 0.0, a: float = 1.0) -> Array:
    """``phi'(v) = (v - c) / phi(v)``."""
    d, h = _hypot(v, c, a, "multiquadratic_prime")
    return d / h


def inverse_multiquadratic(v, c: float = 0.0, a: float = 1.0) -> Array:
    """``phi(v) = ((v - c)^2 + a^2)^(-1/2)``, ``a != 0``."""
    return 1 / _hypot(v, c, a, "inverse_multiquadratic")[1]


def inverse_multiquadratic_prime(v, c: float = 0.0, a: float = 1.0) -> Array:
    """``phi'(v) = -(v - c) ((v - c)^2 + a^2)^(-3/2)``, as ``-(d/h) / h^2`` to avoid overflow."""
    d, h = _hypot(v, c, a, "inverse_multiquadratic_prime")
    return -(d / h) / (h * h)


# ---------------------------------------------------------------------------- softmax
def softmax(v) -> Array:
    """``s_i = exp(v_i - m) / sum_j exp(v_j - m)`` over the last axis, ``m = max_j v_j``.

    Subtracting the maximum changes nothing mathematically and keeps ``exp`` <= 1.
    """
    xp = _xp(v, "softmax")
    e = xp.exp(v - xp.max(v, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def softmax_jacobian(v) -> Array:
    """``ds_i/dv_j = s_i (delta_ij - s_j)``: shape ``(..., C, C)`` for ``v`` of shape ``(..., C)``."""
    xp = _xp(v, "softmax_jacobian")
    s = softmax(v)
    eye = xp.eye(s.shape[-1], dtype=s.dtype, device=backend.device(s))
    return s[..., :, None] * (eye - s[..., None, :])


def softmax_vjp(s, output_gradient) -> Array:
    """``dE/dv = s * (g - sum_j g_j s_j)`` over the last axis: the Jacobian-vector product
    ``J^T g`` without forming ``J``.  ``s`` is the softmax output, ``g = dE/ds``."""
    xp = _xp(s, "softmax_vjp")
    return s * (output_gradient - xp.sum(output_gradient * s, axis=-1, keepdims=True))


FUNCTIONS = {
    "linear": (linear, linear_prime),
    "relu": (relu, relu_prime),
    "heaviside": (heaviside, heaviside_prime),
    "sigmoid": (sigmoid, sigmoid_prime),
    "logistic": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "gaussian": (gaussian, gaussian_prime),
    "multiquadratic": (multiquadratic, multiquadratic_prime),
    "inverse_multiquadratic": (inverse_multiquadratic, inverse_multiquadratic_prime),
}
"""Name -> ``(f, f_prime)`` for the elementwise functions (softmax is not elementwise)."""
