"""The dense (fully connected) layer, notes section 2.2, batched along axis 0."""

from __future__ import annotations

from .. import _validate, init
from .base import Layer, register


@register
class Dense(Layer):
    """``Y = X W^T + b``: every input connected to every output (eq. 6-7).

    Shapes: ``X (n, i)``, ``W (j, i)`` (row ``j`` holds the weights into output ``j``, as in
    eq. 7), ``b (j,)``, ``Y (n, j)``.  Backward, summed over the batch:
    ``dE/dW = dY^T X`` (eq. 9), ``dE/db = sum_n dY`` (eq. 10), ``dE/dX = dY W`` (eq. 11).
    """

    param_names = ("weights", "bias")

    def __init__(self, input_size: int, output_size: int, *, seed=None, dtype: str = "float32"):
        super().__init__(dtype=dtype)
        self.input_size = _validate.positive_int(input_size, "input_size", "Dense")
        self.output_size = _validate.positive_int(output_size, "output_size", "Dense")
        rng = init.rng_from(seed)
        w = init.glorot_uniform(rng, (self.output_size, self.input_size), self.input_size, self.output_size)
        self.weights = self.placement.asarray(w, dtype=self.dtype)
        self.bias = self.placement.zeros((self.output_size,), self.dtype)

    def config(self) -> dict:
        return {"input_size": self.input_size, "output_size": self.output_size, "dtype": self.dtype}

    def output_shape(self, input_shape):
        return (self.output_size,)

    def forward(self, x):
        xp = self._check_input(x)
        if x.ndim != 2:
            hint = " Did you forget a Reshape or Flatten layer before it?" if x.ndim > 2 else ""
            raise ValueError(
                f"{self.label}: expected input of rank 2 (batch, {self.input_size}), received shape "
                f"{tuple(x.shape)}.{hint}"
            )
        if x.shape[1] != self.input_size:
            raise ValueError(
                f"{self.label}: expected {self.input_size} input features, received {x.shape[1]} "
                f"(input shape {tuple(x.shape)})."
            )
        self._input = x
        return xp.matmul(x, xp.matrix_transpose(self.weights)) + self.bias  # eq. 7

    def _backward(self, output_gradient):
        xp = self._check_output_gradient(output_gradient, (self._input.shape[0], self.output_size))
        self.grads = {
            "weights": xp.matmul(xp.matrix_transpose(output_gradient), self._input),  # eq. 9
            "bias": xp.sum(output_gradient, axis=0),  # eq. 10
        }
        return xp.matmul(output_gradient, self.weights)  # eq. 11
