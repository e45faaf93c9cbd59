"""The convolutional layer, notes section 3.2, batched NCHW."""

from __future__ import annotations

from .. import _validate, init
from ..ops import correlation
from ..ops.geometry import conv_output_size
from .base import Layer, register, shown, single_sample_hint

BIAS_MODES = ("channel", "pixel", "none")


def _padding(value, kernel: tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, str):
        if value == "valid":
            return (0, 0)
        if value == "same":
            if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
                raise ValueError(
                    f'Convolutional: padding="same" needs an odd kernel size. Received kernel_size={kernel}.'
                )
            return ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
        if value == "full":
            return (kernel[0] - 1, kernel[1] - 1)
        raise ValueError(
            f'Convolutional: Expected padding to be an int, a pair, "valid", "same" or "full". '
            f"Received padding={value!r}."
        )
    return _validate.pair(value, "padding", 0, "Convolutional")


@register
class Convolutional(Layer):
    """``Y_i = B_i + sum_j X_j * K_ij`` for every output channel ``i`` (eq. 17).

    Notation: ``X (n, c_I, h_I, w_I)``, ``K (c_O, c_I, h_K, w_K)`` with ``c_O = depth``,
    ``Y (n, c_O, h_O, w_O)``, ``h_O = (h_I + 2 p_h - h_K) // s_h + 1`` (and likewise ``w_O``).

    Backward (``*`` cross-correlation, ``*full`` full cross-correlation):

    * ``dE/dK_ij = sum_n X_j * dE/dY_i`` (eq. 18),
    * ``dE/dB_i = dE/dY_i`` (eq. 19), summed over the batch, and over the pixels for a
      per-channel bias,
    * ``dE/dX_j = sum_i dE/dY_i *full rot180(K_ij)``: eq. 20 with a full *convolution*; the
      notes print the cross-correlation symbol, which the gradient check shows is wrong.

    Args:
        input_shape: ``(c_I, h_I, w_I)`` of one sample.
        kernel_size: ``h_K`` or ``(h_K, w_K)``.
        depth: ``c_O``, the number of kernels (output channels).
        padding: zeros on each side: an int, a pair, ``"valid"`` (0), ``"same"`` or ``"full"``.
        stride: an int or a pair, at least 1.
        bias: ``"channel"`` (one per output channel, ``B (c_O,)``), ``"pixel"`` (the notes'
            ``B_i`` with the shape of ``Y_i``, ``B (c_O, h_O, w_O)``) or ``"none"``.
    """

    def __init__(
        self,
        input_shape,
        kernel_size,
        depth: int,
        *,
        padding=0,
        stride=1,
        bias: str = "channel",
        seed=None,
        dtype: str = "float32",
    ):
        super().__init__(dtype=dtype)
        self._configure(input_shape, kernel_size, depth, padding=padding, stride=stride, bias=bias)
        rng = init.rng_from(seed)
        c, (kh, kw) = self.input_shape[0], self.kernel_size
        k0 = init.glorot_uniform(rng, (self.depth, c, kh, kw), c * kh * kw, self.depth * kh * kw)
        self.kernels = self.placement.asarray(k0, dtype=self.dtype)
        if bias != "none":
            self.biases = self.placement.zeros(self._parameter_shapes()["biases"], self.dtype)

    def _configure(
        self,
        input_shape,
        kernel_size,
        depth,
        *,
        padding=0,
        stride=1,
        bias="channel",
        seed=None,
        dtype="float32",
    ) -> None:
        """Validate the arguments and set the sizes (no allocation: ``parameter_shapes`` uses it)."""
        _validate.float_dtype(dtype, where="Convolutional")
        try:
            c, h, w = input_shape
        except (TypeError, ValueError):
            raise ValueError(
                "Convolutional: Expected input_shape=(channels, height, width). "
                f"Received input_shape={input_shape!r}."
            ) from None
        c, h, w = (
            _validate.positive_int(v, f"input_shape[{i}]", "Convolutional") for i, v in enumerate((c, h, w))
        )
        depth = _validate.positive_int(depth, "depth", "Convolutional")
        if bias not in BIAS_MODES:
            raise ValueError(
                f"Convolutional: Expected bias to be one of {BIAS_MODES}. Received bias={bias!r}."
            )
        self.input_shape = (c, h, w)
        self.kernel_size = _validate.pair(kernel_size, "kernel_size", 1, "Convolutional")
        self.depth = int(depth)
        self.padding = _padding(padding, self.kernel_size)
        self.stride = _validate.pair(stride, "stride", 1, "Convolutional")
        self.bias_mode = bias
        for size, k, p, name in zip((h, w), self.kernel_size, self.padding, ("height", "width"), strict=True):
            if k > size + 2 * p:
                raise ValueError(
                    f"Convolutional: kernel {name} {k} is larger than the padded input {name} {size + 2 * p} "
                    f"(input {size}, padding {p})."
                )
        self.output_hw = tuple(
            conv_output_size(s, k, st, p)
            for s, k, st, p in zip((h, w), self.kernel_size, self.stride, self.padding, strict=True)
        )
        self.param_names = ("kernels",) if bias == "none" else ("kernels", "biases")

    def config(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "kernel_size": list(self.kernel_size),
            "depth": self.depth,
            "padding": list(self.padding),
            "stride": list(self.stride),
            "bias": self.bias_mode,
            "dtype": self.dtype,
        }

    @classmethod
    def parameter_shapes(cls, config: dict) -> dict:
        """Computed with the constructor's own rules, on a layer that allocates nothing."""
        probe = cls.__new__(cls)
        probe._configure(**config)
        return probe._parameter_shapes()

    def _parameter_shapes(self) -> dict:
        shapes: dict[str, tuple[int, ...]] = {"kernels": (self.depth, self.input_shape[0], *self.kernel_size)}
        if self.bias_mode != "none":
            shapes["biases"] = (self.depth,) if self.bias_mode == "channel" else (self.depth, *self.output_hw)
        return shapes

    def output_shape(self, input_shape=None) -> tuple:
        return (self.depth, *self.output_hw)

    def _check_sample_shape(self, sample, batch):
        expected, received = ", ".join(map(str, self.input_shape)), shown(batch, sample)
        if len(sample) != 3:
            hint = single_sample_hint(batch, sample, self.input_shape)
            if not hint and len(sample) == 2 and self.input_shape == (1, *sample):
                hint = " Hint: single-channel images need a channel axis, e.g. x[:, None]."
            raise ValueError(
                f"{self.label}: expected input of rank 4 (batch, channels, height, width) = "
                f"(n, {expected}), received shape {received}.{hint}"
            )
        if sample != self.input_shape:
            hint = ""
            if sample[-1] == self.input_shape[0] and sample[:2] == self.input_shape[1:]:
                hint = " The data looks channels-last (NHWC): transpose it to NCHW with permute_dims(x, (0, 3, 1, 2))."
            raise ValueError(
                f"{self.label}: expected input of shape (n, {expected}), received {received}.{hint}"
            )

    def _forward(self, xp, x):
        self._input = x
        y = correlation.trusted_forward(xp, x, self.kernels, self.stride, self.padding)
        if self.bias_mode == "channel":
            return y + xp.reshape(self.biases, (self.depth, 1, 1))
        if self.bias_mode == "pixel":
            return y + self.biases
        return y

    def _backward(self, xp, output_gradient, input_gradient):
        x = self._input
        dx, dk = correlation.trusted_backward(
            xp, x, self.kernels, output_gradient, self.stride, self.padding, input_gradient
        )  # input_gradient False (the first layer in fit): dx is None
        self.grads = {"kernels": dk}  # eq. 18
        if self.bias_mode == "channel":
            self.grads["biases"] = xp.sum(output_gradient, axis=(0, 2, 3))  # eq. 19
        elif self.bias_mode == "pixel":
            self.grads["biases"] = xp.sum(output_gradient, axis=0)  # eq. 19
        return dx  # eq. 20 (None when input_gradient is False)
