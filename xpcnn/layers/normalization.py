"""Batch normalization (Ioffe and Szegedy, 2015) over the channels of NCHW or (N, features)."""

from __future__ import annotations

import math

from .. import _validate
from .base import Layer, register, shown


@register
class BatchNorm(Layer):
    """``Y = gamma * (X - mu) / sqrt(var + eps) + beta`` per channel (axis 1).

    Shapes: ``X``, ``Y`` ``(N, C)`` or ``(N, C, H, W)`` (any rank >= 2: the statistics of a
    channel are taken over every axis but 1); ``gamma``, ``beta`` and the running statistics
    ``(C,)``.  Let ``M`` be the number of values per channel (``N``, or ``N H W``) and sums run
    over them.

    Training mode: the batch statistics

        mu = (1/M) sum x,  var = (1/M) sum (x - mu)^2,  x_hat = (x - mu) / s,  s = sqrt(var + eps)   (25)

    normalize, ``y = gamma x_hat + beta`` (26), and the running statistics move towards them,
    ``r_mu <- (1 - m) r_mu + m mu``, ``r_var <- (1 - m) r_var + m var M / (M - 1)`` (the
    unbiased variance, as PyTorch keeps it; ``m`` is ``momentum``), in channels whose batch
    statistics are finite (a batch with an infinite or NaN value leaves them, so a batch that
    ``fit`` skips as non-finite does not spoil evaluation).  Evaluation mode: eq. 25-26
    with ``mu = r_mu``, ``var = r_var`` (constants).

    Backward.  From eq. 26, ``dE/dbeta = sum g`` and ``dE/dgamma = sum g x_hat`` (27) with
    ``g = dE/dY``; let ``h = gamma g`` (``dE/dx_hat``).  In evaluation mode ``mu`` and ``s`` are
    constants, so ``dE/dX = h / s`` (28).  In training mode every ``x`` also moves ``mu`` and
    ``var``: ``d x_hat_k / d x_l = (delta_kl - 1/M - x_hat_k x_hat_l / M) / s`` (using
    ``d mu / d x_l = 1/M`` and ``d var / d x_l = 2 (x_l - mu) / M``), hence

        dE/dx_l = (1 / s) (h_l - (1/M) sum_k h_k - x_hat_l (1/M) sum_k h_k x_hat_k)   (29)

    Args:
        num_features: ``C``; optional (taken from the first input, or ``Sequential``'s
            ``input_shape``).
        momentum: ``m`` in (0, 1], the weight of the new batch in the running statistics.
        eps: added to the variance, > 0.
    """

    param_names = ("gamma", "beta")
    state_names = ("running_mean", "running_var")

    def __init__(self, num_features: int | None = None, *, momentum: float = 0.1, eps: float = 1e-5,
                 dtype: str = "float32"):  # fmt: skip
        super().__init__(dtype=dtype)
        self.momentum = _validate.unit_interval(momentum, "momentum", closed=True, where="BatchNorm")
        if self.momentum == 0:
            raise ValueError("BatchNorm: Expected momentum in (0, 1]. Received momentum=0.")
        self.eps = _validate.positive(eps, "eps", "BatchNorm")
        self.num_features: int | None = None
        self.built = False
        if num_features is not None:
            self.build((_validate.positive_int(num_features, "num_features", "BatchNorm"),))

    def _build(self, input_shape):
        self._check_sample_shape(input_shape, None)
        self.num_features = c = int(input_shape[0])
        self.values_per_sample = math.prod(input_shape[1:])  # per channel: 1 for (N, C) inputs
        self.gamma = self.placement.zeros((c,), self.dtype) + 1.0
        self.beta = self.placement.zeros((c,), self.dtype)
        self.running_mean = self.placement.zeros((c,), self.dtype)
        self.running_var = self.placement.zeros((c,), self.dtype) + 1.0

    def config(self) -> dict:
        return {
            "num_features": self.num_features,
            "momentum": self.momentum,
            "eps": self.eps,
            "dtype": self.dtype,
        }

    @classmethod
    def parameter_shapes(cls, config: dict) -> dict:
        c = _validate.positive_int(config.get("num_features"), "num_features", cls.__name__)
        return {name: (c,) for name in (*cls.param_names, *cls.state_names)}

    def _check_sample_shape(self, sample, batch):
        if len(sample) < 1:
            raise ValueError(
                f"{self.label}: expected input of rank >= 2 (batch, channels, ...), received shape "
                f"{shown(batch, sample)}."
            )
        if self.num_features is not None and sample[0] != self.num_features:
            raise ValueError(
                f"{self.label}: expected {self.num_features} channels on axis 1, received {sample[0]} "
                f"(input shape {shown(batch, sample)})."
            )

    def _check_shape(self, x):
        super()._check_shape(x)
        if self.training and math.prod(x.shape) // max(1, int(x.shape[1])) < 2:
            raise ValueError(
                f"{self.label}: training mode needs more than one value per channel to take batch "
                f"statistics, received input of shape {tuple(x.shape)}; use a larger batch, or eval()."
            )

    def _channel(self, xp, v, ndim):
        return xp.reshape(v, (1, -1) + (1,) * (ndim - 2))

    def _forward(self, xp, x):
        self._input = x
        axes = (0, *range(2, x.ndim))
        if self.training:
            count = math.prod(x.shape) // max(1, int(x.shape[1]))
            if count < 2:  # checked here too: batches after the first skip _check_shape
                raise ValueError(
                    f"{self.label}: training mode needs more than one value per channel, received input "
                    f"of shape {tuple(x.shape)} (a last batch of one sample? choose batch_size so that no "
                    "batch holds a single sample, or drop that sample)."
                )
            mu = xp.mean(x, axis=axes)
            centred = x - self._channel(xp, mu, x.ndim)
            var = xp.mean(centred * centred, axis=axes)  # eq. 25, biased
            m = self.momentum
            finite = xp.isfinite(mu) & xp.isfinite(var)  # a non-finite batch leaves them (no host read)
            self.running_mean = xp.where(finite, (1 - m) * self.running_mean + m * mu, self.running_mean)
            self.running_var = xp.where(
                finite, (1 - m) * self.running_var + (m * count / (count - 1)) * var, self.running_var
            )
        else:
            mu, var = self.running_mean, self.running_var
            centred = x - self._channel(xp, mu, x.ndim)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        self._x_hat = centred * self._channel(xp, inv_std, x.ndim)
        self._inv_std, self._batch_statistics = inv_std, self.training
        return self._x_hat * self._channel(xp, self.gamma, x.ndim) + self._channel(
            xp, self.beta, x.ndim
        )  # eq. 26

    def _backward(self, xp, output_gradient, input_gradient):
        g, x_hat, nd = output_gradient, self._x_hat, output_gradient.ndim
        axes = (0, *range(2, nd))
        dgamma, dbeta = xp.sum(g * x_hat, axis=axes), xp.sum(g, axis=axes)
        self.grads = {"gamma": dgamma, "beta": dbeta}  # eq. 27
        if not input_gradient:
            return None
        scale = self._channel(xp, self.gamma * self._inv_std, nd)
        if not self._batch_statistics:  # the forward ran in evaluation mode
            return g * scale  # eq. 28
        # eq. 29 with h = gamma g: (1/M) sum h = gamma dbeta / M, (1/M) sum h x_hat = gamma dgamma / M
        m = math.prod(int(g.shape[i]) for i in axes)
        return scale * (g - self._channel(xp, dbeta / m, nd) - x_hat * self._channel(xp, dgamma / m, nd))
