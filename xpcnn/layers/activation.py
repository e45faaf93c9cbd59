"""Activation layers, notes section 2.3: ``Y = f(X)`` (eq. 12), ``dE/dX = dE/dY ⊙ f'(X)`` (eq. 13).

The layers have no parameters, so they accept a floating input of any shape, namespace,
device and dtype, and their outputs follow it.  The functions live in
:mod:`xpcnn.activations`.
"""

from __future__ import annotations

import functools

from .. import activations as A
from .._validate import real
from .base import Layer, register


class Activation(Layer):
    """Any elementwise activation given as a pair ``f, f_prime`` (eq. 12-13).

    Shapes: ``X``, ``Y`` and both gradients share one shape, batch axis first.

    A generic ``Activation`` wraps arbitrary Python functions and is therefore not in the
    layer registry: a model that contains one cannot be saved (``config()`` raises).  Use a
    named layer (``Sigmoid()``, ``ReLU()``, ...) in a model you want to checkpoint.
    """

    def __init__(self, f, f_prime):
        super().__init__()
        for name, fn in (("f", f), ("f_prime", f_prime)):
            if not callable(fn):
                raise TypeError(f"Activation: expected {name} to be callable. Received {name}={fn!r}.")
        self.f, self.f_prime = f, f_prime

    def __repr__(self) -> str:
        if type(self) is Activation:
            names = (getattr(fn, "__name__", repr(fn)) for fn in (self.f, self.f_prime))
            return "Activation(f={}, f_prime={})".format(*names)
        return super().__repr__()

    def config(self) -> dict:
        if type(self) is Activation:
            raise TypeError(
                "Activation(f, f_prime) wraps arbitrary functions and cannot be saved; use a named "
                "activation layer such as Sigmoid(), Tanh() or ReLU() in a model you want to save."
            )
        return {}

    def _forward(self, xp, x):
        self._input = x
        return self.f(x)  # eq. 12

    def _backward(self, xp, output_gradient, input_gradient):
        return output_gradient * self.f_prime(self._input)  # eq. 13


class _Named(Activation):
    """A named activation: ``function`` is a key of :data:`xpcnn.activations.FUNCTIONS`;
    subclasses with parameters validate them and pass them to ``_bind``."""

    function = ""

    def __init__(self):
        self._bind()

    def _bind(self, **params):
        f, f_prime = A.FUNCTIONS[self.function]
        self._params = params
        Activation.__init__(self, functools.partial(f, **params), functools.partial(f_prime, **params))

    def config(self) -> dict:
        return dict(self._params)


@register
class Linear(_Named):
    """``Y = a + b X``; ``dE/dX = b dE/dY``."""

    function = "linear"

    def __init__(self, a: float = 0.0, b: float = 1.0):
        self._bind(a=real(a, "a", where="Linear"), b=real(b, "b", where="Linear"))


@register
class ReLU(_Named):
    """``Y = max(0, X)``; the derivative at the kink 0 is taken as 0."""

    function = "relu"


@register
class Heaviside(_Named):
    """``Y = 1`` where ``X > 0`` else ``0``; its derivative is 0 almost everywhere, so the
    backward pass returns zeros: a Heaviside layer passes no gradient (it cannot be trained
    through with gradient descent)."""

    function = "heaviside"


@register
class Sigmoid(_Named):
    """The logistic function ``Y = 1 / (1 + exp(-X))`` (eq. 23), ``f' = s (1 - s)`` (eq. 24)."""

    function = "sigmoid"


Logistic = Sigmoid


@register
class Tanh(_Named):
    """``Y = tanh(X)``, ``f' = 1 - tanh^2``."""

    function = "tanh"


@register
class Gaussian(_Named):
    """``Y = exp(-(X - c)^2 / (2 sigma^2))`` per unit, ``sigma > 0``."""

    function = "gaussian"

    def __init__(self, c: float = 0.0, sigma: float = 1.0):
        self._bind(c=real(c, "c", where="Gaussian"), sigma=real(sigma, "sigma", "positive", "Gaussian"))


class _Radial(_Named):
    def __init__(self, c: float = 0.0, a: float = 1.0):
        where = type(self).__name__
        self._bind(c=real(c, "c", where=where), a=real(a, "a", "nonzero", where))


@register
class Multiquadratic(_Radial):
    """``Y = sqrt((X - c)^2 + a^2)`` per unit, ``a != 0``."""

    function = "multiquadratic"


@register
class InverseMultiquadratic(_Radial):
    """``Y = ((X - c)^2 + a^2)^(-1/2)`` per unit, ``a != 0``."""

    function = "inverse_multiquadratic"


@register
class Softmax(Layer):
    """``Y = softmax(X)`` over the last axis (max-subtracted, so any finite logits work).

    Not elementwise: each output depends on the whole row, so the backward pass is the
    Jacobian-vector product ``dE/dX = Y ⊙ (dE/dY - sum(dE/dY ⊙ Y, axis=-1))`` rather than
    eq. 13.  Shapes: ``X``, ``Y`` ``(..., C)`` with ``C >= 1``.
    """

    def _check_shape(self, x):
        if x.ndim < 1 or x.shape[-1] == 0:
            raise ValueError(
                f"{self.label}: expected input with at least one class on the last axis, received "
                f"shape {tuple(x.shape)}."
            )

    def _forward(self, xp, x):
        self._input = x
        self._output = A.softmax(x)
        return self._output

    def _backward(self, xp, output_gradient, input_gradient):
        return A.softmax_vjp(self._output, output_gradient)


@register
class LeakyReLU(_Named):
    """``Y = X`` where ``X > 0``, else ``negative_slope X`` (``f' = negative_slope`` at 0 and below)."""

    function = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        self._bind(negative_slope=real(negative_slope, "negative_slope", where="LeakyReLU"))


@register
class ELU(_Named):
    """``Y = X`` where ``X > 0``, else ``alpha (exp(X) - 1)``; ``f' = alpha exp(X)`` there."""

    function = "elu"

    def __init__(self, alpha: float = 1.0):
        self._bind(alpha=real(alpha, "alpha", where="ELU"))


@register
class Softplus(_Named):
    """``Y = log(1 + exp(X))`` (exact for any ``X``), ``f' = sigma(X)`` (eq. 23)."""

    function = "softplus"


@register
class SiLU(_Named):
    """SiLU (swish) ``Y = X sigma(X)``, ``f' = sigma(X) (1 + X (1 - sigma(X)))``."""

    function = "silu"


@register
class GELU(_Named):
    """``Y = X Phi(X)`` with ``Phi`` the standard normal distribution function:
    ``approximate="none"`` (exact, through :func:`xpcnn.activations.erf`) or ``"tanh"`` (the
    tanh form of Hendrycks and Gimpel); ``f' = Phi(X) + X phi(X)`` (or the tanh form's
    derivative)."""

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f'GELU: Expected approximate "none" or "tanh". Received approximate={approximate!r}.'
            )
        self.approximate = approximate
        self.function = "gelu" if approximate == "none" else "gelu_tanh"
        self._bind()

    def config(self) -> dict:
        return {"approximate": self.approximate}
