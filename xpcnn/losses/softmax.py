"""Softmax cross-entropy from logits, on integer class labels or on probability rows."""

from __future__ import annotations

from .. import backend
from .base import Loss, as_0d, values_outside


def log_softmax(xp, x):
    """``log softmax(x)`` along axis 1 through log-sum-exp: ``x - m - log(sum exp(x - m))``
    with ``m`` the row maximum, so no ``exp`` ever overflows (finite for finite ``x``)."""
    shifted = x - xp.max(x, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


class SoftmaxCrossEntropy(Loss):
    """``E = -(1/N) sum_n sum_c t_nc log softmax(x_n)_c``: the mean over the batch of each
    sample's cross-entropy (summed over its classes).

    Shapes: ``prediction`` holds logits ``x (N, C)`` (the raw outputs of the last Dense
    layer: do not put a Softmax layer in front of this loss).  ``target`` is either

    * integer class labels ``(N,)`` in ``[0, C)`` (any integer dtype, compared as int64, so
      uint8 labels work with 300 classes; out-of-range labels raise, as NumPy would wrap
      negative ones and CuPy every one silently), or
    * one-hot or probability rows ``(N, C)`` (any non-negative weights, cast to the
      prediction's dtype; a negative or NaN entry raises ``ValueError``).

    Gradient: ``dE/dx_n = (softmax(x_n) sum_c t_nc - t_n) / N``, i.e.
    ``(softmax(x_n) - t_n) / N`` for rows that sum to 1.  The log-sum-exp form keeps logits
    of +-1000 in float32 finite and exact.
    """

    def check_targets(self, target, outputs: tuple, where: str = "fit") -> None:
        """Check a whole data set's targets once (``fit`` does, before the first step):
        integer labels ``(N,)`` must lie in ``[0, C)`` for ``outputs == (C,)``, the model's
        per-sample output shape, and probability rows must be non-negative.  One pass over
        ``target`` (host or device: one read); the batches then skip that check
        (:meth:`trusted_value_and_gradient`), which on a GPU would wait for the device at
        every step."""
        lx = backend.array_namespace(target)
        if int(target.shape[0]) == 0 or len(outputs) != 1:
            return
        if target.ndim == 2 and not lx.isdtype(target.dtype, "bool"):
            values_outside(
                lx, target, 0, None, "target rows", "with non-negative entries in y", f"{where}: {self.name}"
            )
            return
        if target.ndim != 1 or not lx.isdtype(target.dtype, "integral"):
            return
        c = int(outputs[0])
        low, high = int(lx.min(target)), int(lx.max(target))
        if low < 0 or high >= c:
            raise ValueError(
                f"{where}: {self.name}: expected class labels in [0, {c}) for the model's {c} outputs, "
                f"received labels from {low} to {high} in y."
            )

    def _prepare(self, prediction, target, targets_checked: bool = False):
        xp = self._check_prediction(prediction)
        if prediction.ndim != 2:
            raise ValueError(
                f"{self.name}: expected logits of shape (N, C), received shape {tuple(prediction.shape)}. "
                f"Hint: add a Flatten layer, or reshape to (N, C)."
            )
        self._check_target(prediction, target)
        n, c = (int(s) for s in prediction.shape)
        if target.ndim == 1:
            if int(target.shape[0]) != n:
                raise ValueError(
                    f"{self.name}: expected {n} class labels (shape ({n},)) for logits of shape "
                    f"{(n, c)}, received target of shape {tuple(target.shape)}."
                )
            if not xp.isdtype(target.dtype, "integral"):
                raise TypeError(
                    f"{self.name}: expected integer class labels of shape ({n},), received dtype "
                    f"{backend.dtype_name(target.dtype)}. Hint: convert them with astype(int64), or pass "
                    f"one-hot rows of shape {(n, c)}."
                )
            # Compared in int64: uint8/int8 labels cannot hold c >= 256 (128), and an arange(c)
            # in their dtype would wrap and match some labels twice.
            lx = backend.array_namespace(target)
            target = lx.astype(target, lx.int64, copy=False)
            if not targets_checked and bool(lx.any((target < 0) | (target >= c))):
                low, high = int(lx.min(target)), int(lx.max(target))
                raise ValueError(
                    f"{self.name}: expected class labels in [0, {c}) for {c} classes, received labels "
                    f"from {low} to {high}."
                )
            labels = lx.arange(c, dtype=lx.int64, device=backend.device(target))
            one_hot = xp.astype(target[:, None] == labels, prediction.dtype)
            return xp, prediction, one_hot
        if tuple(target.shape) != (n, c):
            raise ValueError(
                f"{self.name}: expected target of shape ({n},) (class labels) or {(n, c)} (one-hot or "
                f"probability rows) for logits of shape {(n, c)}, received {tuple(target.shape)}."
            )
        target = self._cast_target(xp, prediction, target)
        if not targets_checked:
            values_outside(xp, target, 0, None, "target rows", "with non-negative entries", self.name)
        return xp, prediction, target

    def _value(self, xp, prediction, target):
        n = int(prediction.shape[0])
        return -xp.sum(target * log_softmax(xp, prediction)) / n

    def _gradient(self, xp, prediction, target):
        n = int(prediction.shape[0])
        p = xp.exp(log_softmax(xp, prediction))
        return (p * xp.sum(target, axis=1, keepdims=True) - target) / n

    def _value_and_gradient(self, xp, prediction, target):
        n = int(prediction.shape[0])
        logp = log_softmax(xp, prediction)
        value = as_0d(xp, -xp.sum(target * logp) / n, prediction)
        return value, (xp.exp(logp) * xp.sum(target, axis=1, keepdims=True) - target) / n
