"""A single neuron and the threshold logic unit (notes section 1.1).

The notes write the bias as the weight ``w_k0 = b_k`` of a constant input ``x_0 = 1``, so
``v_k = sum_{j=0}^m w_kj x_j = sum_{j=1}^m w_kj x_j + b_k`` and ``y_k = phi(v_k)`` (1.1.1).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import activations, backend
from ._validate import real

__all__ = ["Neuron", "ThresholdLogicUnit"]


def _weights(weights, where: str) -> np.ndarray:
    host = np.asarray(backend.to_host(weights), dtype=np.float64)
    if host.ndim != 1 or host.size == 0:
        raise ValueError(
            f"{where}: expected a non-empty 1-D sequence of weights. Received weights of shape {host.shape}."
        )
    if not np.all(np.isfinite(host)):
        raise ValueError(f"{where}: expected finite weights. Received weights={host.tolist()}.")
    return host


class Neuron:
    """``y = phi(sum_k w_k x_k + b)`` (notes 1.1.1), batched over leading axes.

    Args:
        weights: ``m`` real numbers ``w_1 .. w_m`` (kept on the host, float64).
        bias: the real number ``b = w_0``.
        activation: ``phi``: a name from :data:`xpcnn.activations.FUNCTIONS` (default
            ``"linear"``, the identity) or any callable on arrays.

    Calling it on ``x`` of shape ``(..., m)`` returns ``y`` of shape ``(...)``, in ``x``'s
    namespace, device and dtype (the weights are copied there in that dtype, never upcasting).
    """

    def __init__(self, weights, bias=0.0, activation="linear"):
        self.weights = _weights(weights, "Neuron")
        self.bias = real(bias, "bias", where="Neuron")
        if isinstance(activation, str):
            if activation not in activations.FUNCTIONS:
                raise ValueError(
                    f"Neuron: unknown activation {activation!r}; expected one of "
                    f"{sorted(activations.FUNCTIONS)} or a callable."
                )
            activation = activations.FUNCTIONS[activation][0]
        elif not callable(activation):
            raise TypeError(
                f"Neuron: expected activation to be a name or a callable. Received {activation!r}."
            )
        self.activation = activation

    def __repr__(self) -> str:
        name = getattr(self.activation, "__name__", repr(self.activation))
        return f"Neuron(weights={self.weights.tolist()}, bias={self.bias}, activation={name})"

    def preactivation(self, x) -> backend.Array:
        """``v = sum_k w_k x_k + b`` over the last axis of ``x`` (shape ``(..., m)`` -> ``(...)``)."""
        xp = backend.check_array(x, "x", "Neuron")
        m = self.weights.shape[0]
        if x.ndim == 0 or x.shape[-1] != m:
            raise ValueError(
                f"Neuron: expected x with {m} inputs on its last axis, received shape {tuple(x.shape)}."
            )
        w = backend.placement_of(x).asarray(self.weights, dtype=backend.dtype_name(x.dtype))
        return xp.asarray(xp.sum(x * w, axis=-1) + self.bias)  # NumPy returns a scalar for 1-D x

    def __call__(self, x):
        return self.activation(self.preactivation(x))


class ThresholdLogicUnit:
    """The notes' Neuron 1: ``fire(booleans)`` sums the weights of the true inputs into ``T``
    and returns ``T > threshold`` (strictly greater).

    Example: weights ``(1, 1)`` give AND with threshold 1.5 and OR with threshold 0.5.
    """

    def __init__(self, weights, threshold):
        self.weights = [float(w) for w in _weights(weights, "ThresholdLogicUnit")]
        self.threshold = real(threshold, "threshold", where="ThresholdLogicUnit")

    def __repr__(self) -> str:
        return f"ThresholdLogicUnit(weights={self.weights}, threshold={self.threshold})"

    def fire(self, booleans) -> bool:
        """``T > threshold`` with ``T`` the sum of the weights of the true inputs (one boolean, or
        0/1, per weight)."""
        booleans = list(booleans)
        if len(booleans) != len(self.weights):
            raise ValueError(
                f"ThresholdLogicUnit: expected {len(self.weights)} inputs (one per weight), "
                f"received {len(booleans)}."
            )
        total = 0.0
        for i, b in enumerate(booleans):
            if not isinstance(b, (bool, np.bool_)) and not (isinstance(b, numbers.Integral) and b in (0, 1)):
                raise TypeError(f"ThresholdLogicUnit: input {i} must be a boolean (or 0/1). Received {b!r}.")
            if b:
                total += self.weights[i]
        return total > self.threshold
