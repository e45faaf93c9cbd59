"""Reshape and Flatten: change the per-sample shape, keep the batch axis 0.

Backward only undoes the reshape: ``dE/dX = reshape(dE/dY, X.shape)`` (no arithmetic).
Both accept a floating input on any placement and dtype.
"""

from __future__ import annotations

import math
import numbers

from .base import Layer, register, shown, single_sample_hint


def _shape(value, argument: str) -> tuple[int, ...]:
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if shape is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape):
        raise ValueError(
            f"Reshape: expected {argument} to be a tuple of integers. Received {argument}={value!r}."
        )
    if any(s <= 0 for s in shape):
        raise ValueError(
            f"Reshape: expected strictly positive sizes in {argument}. Received {argument}={value!r}."
        )
    return tuple(int(s) for s in shape)


@register
class Reshape(Layer):
    """``(n, *input_shape) -> (n, *output_shape)``, e.g. the ``(n, 5, 26, 26)`` output of a
    convolution to ``(n, 5 * 26 * 26)`` for a Dense layer.  The element counts must match."""

    def __init__(self, input_shape, output_shape):
        super().__init__()
        self.input_shape = _shape(input_shape, "input_shape")
        self.target_shape = _shape(output_shape, "output_shape")
        if math.prod(self.input_shape) != math.prod(self.target_shape):
            raise ValueError(
                f"Reshape: cannot reshape input_shape={self.input_shape} ({math.prod(self.input_shape)} "
                f"elements) into output_shape={self.target_shape} ({math.prod(self.target_shape)} elements)."
            )

    def config(self) -> dict:
        return {"input_shape": list(self.input_shape), "output_shape": list(self.target_shape)}

    def output_shape(self, input_shape=None) -> tuple:
        return self.target_shape

    def _check_sample_shape(self, sample, batch):
        if sample != self.input_shape:
            hint = single_sample_hint(batch, sample, self.input_shape)
            raise ValueError(
                f"{self.label}: expected input of shape (n, {', '.join(map(str, self.input_shape))}), "
                f"received {shown(batch, sample)}.{hint}"
            )

    def _forward(self, xp, x):
        self._input = x
        return xp.reshape(x, (x.shape[0], *self.target_shape))

    def _backward(self, xp, output_gradient, input_gradient):
        return xp.reshape(output_gradient, tuple(self._input.shape))


@register
class Flatten(Layer):
    """``(n, d_1, ..., d_k) -> (n, d_1 * ... * d_k)`` (a rank-1 input ``(n,)`` gives ``(n, 1)``)."""

    def output_shape(self, input_shape) -> tuple:
        return (math.prod(input_shape),)

    def _forward(self, xp, x):
        self._input = x
        return xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def _backward(self, xp, output_gradient, input_gradient):
        return xp.reshape(output_gradient, tuple(self._input.shape))
