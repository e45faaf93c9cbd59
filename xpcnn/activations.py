"""Activation functions and their derivatives (notes section 1.2, eq. 23-24).

Each function takes a floating array ``v`` of any shape and returns an array of the same
shape, namespace, device and dtype, computed with ``xp``, the Array API namespace of ``v``.
``<name>_prime(v)`` is the elementwise derivative ``phi'(v)`` used by eq. 13.

Ridge functions: ``linear`` (``a + b v``), ``relu``, ``heaviside``, ``sigmoid`` (alias
``logistic``, eq. 23-24), ``tanh``.  Radial functions with centre ``c``: ``gaussian``,
``multiquadratic``, ``inverse_multiquadratic``.  The ones today's networks use:
``leaky_relu``, ``elu``, ``softplus``, ``silu``, ``gelu`` (exact, with :func:`erf`) and
``gelu_tanh``, each safe for large ``|v|`` in float32.  The notes write ``||v - c||`` for a vector
``v``; here each unit is its own one-dimensional input, so ``||v - c||`` is ``|v - c|``
elementwise.  ``softmax`` works on the last axis; its derivative is a full Jacobian, so it
comes as ``softmax_jacobian`` and the product ``softmax_vjp`` instead of ``softmax_prime``.
"""

from __future__ import annotations

import math

from . import backend
from ._validate import real
from .backend import Array

__all__ = [
    "FUNCTIONS",
    "elu",
    "elu_prime",
    "erf",
    "gaussian",
    "gaussian_prime",
    "gelu",
    "gelu_prime",
    "gelu_tanh",
    "gelu_tanh_prime",
    "heaviside",
    "heaviside_prime",
    "inverse_multiquadratic",
    "inverse_multiquadratic_prime",
    "leaky_relu",
    "leaky_relu_prime",
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
    "silu",
    "silu_prime",
    "softmax",
    "softmax_jacobian",
    "softmax_vjp",
    "softplus",
    "softplus_prime",
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


# ------------------------------------------------------------- the ones used today
def leaky_relu(v, negative_slope: float = 0.01) -> Array:
    """``phi(v) = v`` for ``v > 0``, else ``negative_slope v``."""
    xp = _xp(v, "leaky_relu")
    return xp.where(v > 0, v, real(negative_slope, "negative_slope", where="leaky_relu") * v)


def leaky_relu_prime(v, negative_slope: float = 0.01) -> Array:
    """``phi'(v) = 1`` for ``v > 0``, else ``negative_slope`` (the value at the kink 0)."""
    xp = _xp(v, "leaky_relu_prime")
    slope = real(negative_slope, "negative_slope", where="leaky_relu")
    return xp.where(v > 0, _scalar(v, xp, 1.0), _scalar(v, xp, slope))


def elu(v, alpha: float = 1.0) -> Array:
    """``phi(v) = v`` for ``v > 0``, else ``alpha (exp(v) - 1)`` (``expm1`` of ``min(v, 0)``:
    no overflow for large ``v``, exact near 0)."""
    xp = _xp(v, "elu")
    alpha = real(alpha, "alpha", where="elu")
    return xp.where(v > 0, v, alpha * xp.expm1(xp.minimum(v, _scalar(v, xp, 0.0))))


def elu_prime(v, alpha: float = 1.0) -> Array:
    """``phi'(v) = 1`` for ``v > 0``, else ``alpha exp(v)``."""
    xp = _xp(v, "elu_prime")
    alpha = real(alpha, "alpha", where="elu")
    return xp.where(v > 0, _scalar(v, xp, 1.0), alpha * xp.exp(xp.minimum(v, _scalar(v, xp, 0.0))))


def softplus(v) -> Array:
    """``phi(v) = log(1 + exp(v))``, as ``max(v, 0) + log1p(exp(-|v|))``: never overflows, and
    exact for large ``|v|`` (PyTorch returns ``v`` itself above 20; this is the exact value)."""
    xp = _xp(v, "softplus")
    return xp.maximum(v, _scalar(v, xp, 0.0)) + xp.log1p(xp.exp(-xp.abs(v)))


def softplus_prime(v) -> Array:
    """``phi'(v) = sigma(v)`` (eq. 23)."""
    return sigmoid(v)


def silu(v) -> Array:
    """SiLU (swish): ``phi(v) = v sigma(v)``."""
    return v * sigmoid(v)


def silu_prime(v) -> Array:
    """``phi'(v) = sigma(v) (1 + v (1 - sigma(v)))``."""
    s = sigmoid(v)
    return s * (1 + v * (1 - s))


_SERIES_TERMS, _FRACTION_DEPTH, _SWITCH = 40, 30, 2.5


def erf(v) -> Array:
    """The error function ``erf(v) = (2 / sqrt(pi)) int_0^v exp(-t^2) dt`` with Array API
    operations only (the standard has no ``erf``), to about 2e-15 in float64.

    For ``|v| < 2.5`` the series ``erf(x) = (2 / sqrt(pi)) exp(-x^2) sum_n (2 x^2)^n x /
    (1 3 5 ... (2n + 1))``, whose terms are all positive (no cancellation), 40 terms; beyond,
    ``erfc(x) = exp(-x^2) / (sqrt(pi) (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...)))))``, the
    continued fraction evaluated 30 levels deep, and ``erf = 1 - erfc``.  Both are computed
    on every element (clipped to their range) and the right one is kept: about 70
    elementwise operations, so ``GELU`` costs more than ``ReLU``.
    """
    xp = _xp(v, "erf")
    a = xp.abs(v)
    x = xp.minimum(a, _scalar(v, xp, _SWITCH))
    x2 = x * x
    term, total = x, x
    for n in range(1, _SERIES_TERMS):
        term = term * x2 * (2.0 / (2 * n + 1))
        total = total + term
    inside = (2.0 / math.sqrt(math.pi)) * xp.exp(-x2) * total
    big = xp.clip(a, _SWITCH, 30.0)  # erfc(30) is 0 even in float64: nothing is lost, nothing overflows
    fraction = big
    for k in range(_FRACTION_DEPTH, 0, -1):
        fraction = big + (k / 2.0) / fraction
    outside = 1.0 - xp.exp(-big * big) / (math.sqrt(math.pi) * fraction)
    return xp.sign(v) * xp.where(a < _SWITCH, inside, outside)


def gelu(v) -> Array:
    """GELU, exact: ``phi(v) = v Phi(v) = (v / 2) (1 + erf(v / sqrt(2)))`` (:func:`erf`)."""
    _xp(v, "gelu")
    return 0.5 * v * (1.0 + erf(v * (1.0 / math.sqrt(2.0))))


def gelu_prime(v) -> Array:
    """``phi'(v) = Phi(v) + v phi(v)``, ``phi(v) = exp(-v^2 / 2) / sqrt(2 pi)`` the normal density."""
    xp = _xp(v, "gelu_prime")
    cdf = 0.5 * (1.0 + erf(v * (1.0 / math.sqrt(2.0))))
    u = xp.clip(v, -40.0, 40.0)  # the density is 0 beyond, in float64 too: no overflow of v^2
    return cdf + v * xp.exp(-0.5 * u * u) * (1.0 / math.sqrt(2.0 * math.pi))


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu_inner(xp, v):
    u = xp.clip(v, -10.0, 10.0)  # tanh of the inner polynomial is +-1 beyond: no overflow of u^3
    return u, _GELU_C * (u + 0.044715 * u * u * u)


def gelu_tanh(v) -> Array:
    """GELU, tanh form: ``phi(v) = (v / 2) (1 + tanh(sqrt(2 / pi) (v + 0.044715 v^3)))``."""
    xp = _xp(v, "gelu_tanh")
    _, inner = _gelu_inner(xp, v)
    return 0.5 * v * (1.0 + xp.tanh(inner))


def gelu_tanh_prime(v) -> Array:
    """``phi'(v) = (1 + t) / 2 + (v / 2) (1 - t^2) sqrt(2 / pi) (1 + 3 0.044715 v^2)``,
    ``t = tanh(sqrt(2 / pi) (v + 0.044715 v^3))`` (the polynomial is clipped at ``|v| = 10``,
    where ``1 - t^2`` is 0)."""
    xp = _xp(v, "gelu_tanh_prime")
    u, inner = _gelu_inner(xp, v)
    t = xp.tanh(inner)
    return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * u * u)


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
    "leaky_relu": (leaky_relu, leaky_relu_prime),
    "elu": (elu, elu_prime),
    "softplus": (softplus, softplus_prime),
    "silu": (silu, silu_prime),
    "gelu": (gelu, gelu_prime),
    "gelu_tanh": (gelu_tanh, gelu_tanh_prime),
}
"""Name -> ``(f, f_prime)`` for the elementwise functions (softmax is not elementwise)."""
