"""The convolutional layer, notes section 3.2, batched NCHW."""

from __future__ import annotations

from .. import _validate
from .. import init as _init
from ..ops import correlation
from ..ops.geometry import conv_output_size
from .base import Layer, register, shown, single_sample_hint

BIAS_MODES = ("channel", "pixel", "none")


def _is_kernel(value) -> bool:
    """An int or a pair of ints: a kernel size, not an input shape."""
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value)


def _padding(value, kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    span = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)  # the dilated window
    if isinstance(value, str):
        if value == "valid":
            return (0, 0)
        if value == "same":
            if span[0] % 2 == 0 or span[1] % 2 == 0:
                raise ValueError(
                    f'Convolutional: padding="same" needs an odd kernel size. Received kernel_size={kernel}.'
                )
            return ((span[0] - 1) // 2, (span[1] - 1) // 2)
        if value == "full":
            return (span[0] - 1, span[1] - 1)
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
        input_shape: ``(c_I, h_I, w_I)`` of one sample; optional: ``Convolutional(3, 16)``
            (kernel size and depth only) takes it from the first input (or ``Sequential``'s
            ``input_shape``) and creates the kernels then, from ``seed``.
        kernel_size: ``h_K`` or ``(h_K, w_K)``.
        depth: ``c_O``, the number of kernels (output channels).
        padding: zeros on each side: an int, a pair, ``"valid"`` (0), ``"same"`` or ``"full"``.
        stride: an int or a pair, at least 1.
        init: the kernels' initializer, a name of :data:`xpcnn.init.INITIALIZERS`
            (``"glorot_uniform"`` by default; ``"he_normal"`` for ReLU networks).
        dilation: an int or a pair, at least 1: the kernel's taps ``d`` apart, the window
            spanning ``d (h_K - 1) + 1``, so ``h_O = (h_I + 2 p_h - d_h (h_K - 1) - 1) // s_h + 1``.
        groups: ``G`` dividing ``c_I`` and ``depth``: each group's ``depth / G`` kernels see
            only its ``c_I / G`` channels, ``K (c_O, c_I / G, h_K, w_K)``; ``groups = c_I`` is a
            depthwise convolution.  (Eq. 17-20 hold within each group.)  The CUDA kernels have
            neither option: on CuPy such a layer takes the Array-API path.
        bias: ``"channel"`` (one per output channel, ``B (c_O,)``), ``"pixel"`` (the notes'
            ``B_i`` with the shape of ``Y_i``, ``B (c_O, h_O, w_O)``) or ``"none"``.
    """

    def __init__(
        self,
        input_shape=None,
        kernel_size=None,
        depth: int | None = None,
        *,
        padding=0,
        stride=1,
        dilation=1,
        groups: int = 1,
        bias: str = "channel",
        seed=None,
        dtype: str = "float32",
        init: str = "glorot_uniform",
    ):
        super().__init__(dtype=dtype)
        if depth is None and kernel_size is not None and _is_kernel(input_shape):
            input_shape, kernel_size, depth = None, input_shape, kernel_size  # Convolutional(3, 16)
        self._configure(input_shape, kernel_size, depth, padding=padding, stride=stride, dilation=dilation,
                        groups=groups, bias=bias)  # fmt: skip
        self.init = init
        self._initializer = _init.initializer(init, "Convolutional")
        self._rng = _init.rng_from(seed)
        self.built = False
        if self.input_shape is not None:
            self.build(self.input_shape)

    def _build(self, input_shape):
        if self.input_shape is None:
            if len(input_shape) != 3:
                self._check_sample_shape(input_shape, None)  # names the rank rule
            self._configure_input(input_shape)
        c, (kh, kw), g = self.input_shape[0] // self.groups, self.kernel_size, self.groups
        k0 = self._initializer(self._rng, (self.depth, c, kh, kw), c * kh * kw, self.depth // g * kh * kw)
        self.kernels = self.placement.asarray(k0, dtype=self.dtype)
        if self.bias_mode != "none":
            self.biases = self.placement.zeros(self._parameter_shapes()["biases"], self.dtype)

    def _configure(
        self,
        input_shape,
        kernel_size,
        depth,
        *,
        padding=0,
        stride=1,
        dilation=1,
        groups=1,
        bias="channel",
        seed=None,
        dtype="float32",
        init="glorot_uniform",
    ) -> None:
        """Validate the arguments and set the sizes (no allocation: ``parameter_shapes`` uses it);
        with ``input_shape=None`` the input's sizes wait for :meth:`build`."""
        _validate.float_dtype(dtype, where="Convolutional")
        if kernel_size is None or depth is None:
            raise TypeError(
                "Convolutional: expected kernel_size and depth, e.g. Convolutional((1, 28, 28), 3, 16) or "
                f"Convolutional(3, 16). Received kernel_size={kernel_size!r}, depth={depth!r}."
            )
        depth = _validate.positive_int(depth, "depth", "Convolutional")
        if bias not in BIAS_MODES:
            raise ValueError(
                f"Convolutional: Expected bias to be one of {BIAS_MODES}. Received bias={bias!r}."
            )
        self.kernel_size = _validate.pair(kernel_size, "kernel_size", 1, "Convolutional")
        self.depth = int(depth)
        self.dilation = _validate.pair(dilation, "dilation", 1, "Convolutional")
        self.groups = _validate.positive_int(groups, "groups", "Convolutional")
        if self.depth % self.groups:
            raise ValueError(
                f"Convolutional: depth {self.depth} is not a multiple of groups={self.groups} (each group "
                "needs the same number of kernels)."
            )
        self.padding = _padding(padding, self.kernel_size, self.dilation)
        self.stride = _validate.pair(stride, "stride", 1, "Convolutional")
        self.bias_mode = bias
        self.param_names = ("kernels",) if bias == "none" else ("kernels", "biases")
        self.input_shape: tuple[int, int, int] | None = None
        self.output_hw: tuple[int, ...] | None = None
        if input_shape is not None:
            self._configure_input(input_shape)

    def _configure_input(self, input_shape) -> None:
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
        where = self.label if self.index is not None else "Convolutional"
        if c % self.groups:
            raise ValueError(
                f"{where}: {c} input channels do not split into groups={self.groups} (input shape {(c, h, w)})."
            )
        for size, k, p, d, name in zip((h, w), self.kernel_size, self.padding, self.dilation, ("height", "width"),
                                       strict=True):  # fmt: skip
            span = d * (k - 1) + 1
            if span > size + 2 * p:
                dilated = "" if d == 1 else f" (dilated to {span})"
                raise ValueError(
                    f"{where}: kernel {name} {k}{dilated} is larger than the padded input {name} "
                    f"{size + 2 * p} (input {size}, padding {p})."
                )
        self.input_shape = (c, h, w)
        self.output_hw = tuple(
            conv_output_size(s, k, st, p, d)
            for s, k, st, p, d in zip(
                (h, w), self.kernel_size, self.stride, self.padding, self.dilation, strict=True
            )
        )

    def config(self) -> dict:
        return {
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "kernel_size": list(self.kernel_size),
            "depth": self.depth,
            "padding": list(self.padding),
            "stride": list(self.stride),
            **({"dilation": list(self.dilation)} if self.dilation != (1, 1) else {}),
            **({"groups": self.groups} if self.groups != 1 else {}),
            "bias": self.bias_mode,
            "dtype": self.dtype,
            **({"init": self.init} if self.init != "glorot_uniform" else {}),
        }

    @classmethod
    def parameter_shapes(cls, config: dict) -> dict:
        """Computed with the constructor's own rules, on a layer that allocates nothing."""
        probe = cls.__new__(cls)
        probe.index = None
        probe._configure(**config)
        if probe.input_shape is None:
            raise ValueError("Convolutional: input_shape is not known (the layer was never built).")
        return probe._parameter_shapes()

    def _parameter_shapes(self) -> dict:
        assert self.input_shape is not None and self.output_hw is not None  # configured
        shapes: dict[str, tuple[int, ...]] = {
            "kernels": (self.depth, self.input_shape[0] // self.groups, *self.kernel_size)
        }
        if self.bias_mode != "none":
            shapes["biases"] = (self.depth,) if self.bias_mode == "channel" else (self.depth, *self.output_hw)
        return shapes

    def output_shape(self, input_shape=None) -> tuple:
        if self.output_hw is None:  # not built: the input shape decides
            if input_shape is None:
                raise ValueError(
                    f"{self.label}: the output shape needs the input shape (the layer is not built)."
                )
            self.build(input_shape)
        assert self.output_hw is not None
        return (self.depth, *self.output_hw)

    def _check_sample_shape(self, sample, batch):
        if self.input_shape is None:  # not built: only the rank is known
            if len(sample) != 3:
                raise ValueError(
                    f"{self.label}: expected input of rank 4 (batch, channels, height, width), received "
                    f"shape {shown(batch, sample)}."
                )
            return
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
        y = correlation.trusted_forward(
            xp, x, self.kernels, self.stride, self.padding, self.dilation, self.groups
        )
        if self.bias_mode == "channel":
            return y + xp.reshape(self.biases, (self.depth, 1, 1))
        if self.bias_mode == "pixel":
            return y + self.biases
        return y

    def _backward(self, xp, output_gradient, input_gradient):
        x = self._input
        dx, dk = correlation.trusted_backward(
            xp,
            x,
            self.kernels,
            output_gradient,
            self.stride,
            self.padding,
            input_gradient,
            self.dilation,
            self.groups,
            reuse_unfold=True,  # x is the input this layer's forward saw (and unfolded)
        )  # input_gradient False (the first layer in fit): dx is None
        self.grads = {"kernels": dk}  # eq. 18
        if self.bias_mode == "channel":
            self.grads["biases"] = xp.sum(output_gradient, axis=(0, 2, 3))  # eq. 19
        elif self.bias_mode == "pixel":
            self.grads["biases"] = xp.sum(output_gradient, axis=0)  # eq. 19
        return dx  # eq. 20 (None when input_gradient is False)
