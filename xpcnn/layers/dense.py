"""The dense (fully connected) layer, notes section 2.2, batched along axis 0."""

from __future__ import annotations

from .. import _validate
from .. import init as _init
from .base import Layer, register, shown, single_sample_hint


@register
class Dense(Layer):
    """``Y = X W^T + b``: every input connected to every output (eq. 6-7).

    Shapes: ``X (n, i)``, ``W (j, i)`` (row ``j`` holds the weights into output ``j``, as in
    eq. 7), ``b (j,)``, ``Y (n, j)``.  Backward, summed over the batch:
    ``dE/dW = dY^T X`` (eq. 9), ``dE/db = sum_n dY`` (eq. 10), ``dE/dX = dY W`` (eq. 11).

    Args:
        input_size: ``i``; optional: ``Dense(10)`` (one size: the outputs) or
            ``Dense(None, 10)`` takes ``i`` from the first input (or ``Sequential``'s
            ``input_shape``), and creates the weights then, from ``seed``.
        output_size: ``j``.
        init: the weights' initializer, a name of :data:`xpcnn.init.INITIALIZERS`
            (``"glorot_uniform"`` by default; ``"he_normal"`` for ReLU networks); the bias
            starts at zero.
    """

    param_names = ("weights", "bias")

    def __init__(self, input_size: int | None = None, output_size: int | None = None, *, seed=None,
                 dtype: str = "float32", init: str = "glorot_uniform"):  # fmt: skip
        super().__init__(dtype=dtype)
        if output_size is None:  # Dense(10): the one size given is the number of outputs
            input_size, output_size = None, input_size
        if output_size is None:
            raise TypeError(
                "Dense: expected output_size, the number of outputs, e.g. Dense(10) or Dense(784, 10)."
            )
        self.output_size = _validate.positive_int(output_size, "output_size", "Dense")
        self.input_size: int | None = None
        self.init = init
        self._initializer = _init.initializer(init, "Dense")
        self._rng = _init.rng_from(seed)
        self.built = False
        if input_size is not None:
            self.build((_validate.positive_int(input_size, "input_size", "Dense"),))

    def _build(self, input_shape):
        if len(input_shape) != 1:
            self._check_sample_shape(input_shape, None)  # names the rank rule
        (self.input_size,) = input_shape
        w = self._initializer(
            self._rng, (self.output_size, self.input_size), self.input_size, self.output_size
        )
        self.weights = self.placement.asarray(w, dtype=self.dtype)
        self.bias = self.placement.zeros((self.output_size,), self.dtype)

    def config(self) -> dict:
        config = {"input_size": self.input_size, "output_size": self.output_size, "dtype": self.dtype}
        if self.init != "glorot_uniform":
            config["init"] = self.init
        return config

    @classmethod
    def parameter_shapes(cls, config: dict) -> dict:
        n_in = _validate.positive_int(config.get("input_size"), "input_size", cls.__name__)
        n_out = _validate.positive_int(config.get("output_size"), "output_size", cls.__name__)
        return {"weights": (n_out, n_in), "bias": (n_out,)}

    def output_shape(self, input_shape) -> tuple:
        return (self.output_size,)

    def _check_sample_shape(self, sample, batch):
        if len(sample) != 1:
            size = "features" if self.input_size is None else self.input_size
            hint = single_sample_hint(batch, sample, (self.input_size,))
            if len(sample) > 1:
                hint = " Did you forget a Reshape or Flatten layer before it?"
            raise ValueError(
                f"{self.label}: expected input of rank 2 (batch, {size}), received shape "
                f"{shown(batch, sample)}.{hint}"
            )
        if sample[0] != self.input_size:
            raise ValueError(
                f"{self.label}: expected {self.input_size} input features, received {sample[0]} "
                f"(input shape {shown(batch, sample)})."
            )

    def _forward(self, xp, x):
        self._input = x
        return xp.matmul(x, xp.matrix_transpose(self.weights)) + self.bias  # eq. 7

    def _backward(self, xp, output_gradient, input_gradient):
        g_t = xp.matrix_transpose(output_gradient)
        if output_gradient.shape[0] == 1:  # one sample: eq. 9 is an outer product, and NumPy's
            d_w = g_t * self._input  # matmul over an inner size of 1 is ~10x slower than this
        else:
            d_w = xp.matmul(g_t, self._input)
        self.grads = {
            "weights": d_w,  # eq. 9
            "bias": xp.sum(output_gradient, axis=0),  # eq. 10
        }
        return xp.matmul(output_gradient, self.weights) if input_gradient else None  # eq. 11
