"""Binary cross-entropy, notes section 3.3.1 (eq. 21-22): on probabilities and from logits."""

from __future__ import annotations

from .. import backend
from ..activations import sigmoid
from .base import Loss, element_count, values_outside


class _UnitTargets(Loss):
    """Targets are 0/1 labels or soft targets in [0, 1]: anything else is refused."""

    def check_targets(self, target, outputs: tuple, where: str = "fit") -> None:
        xp = backend.array_namespace(target)
        if not xp.isdtype(target.dtype, "bool") and int(target.shape[0]) > 0:
            values_outside(
                xp,
                target,
                0,
                1,
                "targets",
                "in [0, 1] (0/1 labels or soft targets) in y",
                f"{where}: {self.name}",
            )

    def _prepare(self, prediction, target, targets_checked: bool = False):
        xp, prediction, target = super()._prepare(prediction, target, targets_checked)
        if not targets_checked:
            values_outside(xp, target, 0, 1, "targets", "in [0, 1] (0/1 labels or soft targets)", self.name)
        return xp, prediction, target


class BinaryCrossEntropy(_UnitTargets):
    """``E = -(1/M) sum_m [t_m log(y_m) + (1 - t_m) log(1 - y_m)]`` (eq. 21).

    ``prediction`` ``y`` holds probabilities in [0, 1] (e.g. a sigmoid's output, eq. 23),
    ``target`` ``t`` the 0/1 labels (or soft targets in [0, 1]; others raise ``ValueError``),
    same shape ``(N, ...)``;
    ``M`` is the number of elements, so ``E`` is the mean over the batch of the per-sample
    mean over outputs (eq. 21's ``1/n`` with ``n = M``).  Gradient (eq. 22)::

        dE/dy_m = (1/M) ((1 - t_m)/(1 - y_m) - t_m/y_m) = (1/M) (y_m - t_m) / (y_m (1 - y_m))

    Predictions outside [0, 1] (or NaN) raise ``ValueError``.  Exact 0 and 1 are allowed:
    ``y`` is clipped to ``[eps, 1 - eps]`` with ``eps`` the machine epsilon of its dtype
    (``finfo(dtype).eps``: 1.19e-7 for float32, 2.22e-16 for float64) before the logarithms
    and in eq. 22, so a confident wrong answer costs ``-log(eps)`` (15.9 in float32, 36.0 in
    float64) and its gradient stays finite and points the right way.  For a sigmoid output
    prefer :class:`BinaryCrossEntropyFromLogits`, which needs no clipping.
    """

    def _prepare(self, prediction, target, targets_checked: bool = False):
        xp, prediction, target = super()._prepare(prediction, target, targets_checked)
        outside = ~((prediction >= 0) & (prediction <= 1))  # NaN is outside too
        if bool(xp.any(outside)):
            count = int(xp.sum(xp.astype(outside, xp.int64)))
            low, high = float(xp.min(prediction)), float(xp.max(prediction))
            raise ValueError(
                f"{self.name}: expected probabilities in [0, 1], received {count} value(s) outside "
                f"(min {low:g}, max {high:g}). Hint: apply a Sigmoid layer first, or use "
                f"BinaryCrossEntropyFromLogits on the raw outputs."
            )
        return xp, prediction, target

    @staticmethod
    def _clipped(xp, prediction):
        eps = float(xp.finfo(prediction.dtype).eps)
        return xp.clip(prediction, eps, 1.0 - eps)

    def _value(self, xp, prediction, target):
        y = self._clipped(xp, prediction)
        total = xp.sum(target * xp.log(y) + (1.0 - target) * xp.log1p(-y))  # eq. 21
        return -total / element_count(prediction)

    def _gradient(self, xp, prediction, target):
        y = self._clipped(xp, prediction)
        return (y - target) / (y * (1.0 - y) * element_count(prediction))  # eq. 22


class BinaryCrossEntropyFromLogits(_UnitTargets):
    """Eq. 21 with ``y = sigmoid(x)`` (eq. 23), computed from the logits ``x`` directly.

    Per element, ``-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]`` is evaluated as
    ``max(x, 0) - x t + log1p(exp(-|x|))``, which never overflows and is exact for large
    ``|x|``.  ``E`` is the mean over all ``M`` elements (as for :class:`BinaryCrossEntropy`),
    and ``dE/dx_m = (sigmoid(x_m) - t_m) / M``.

    Shapes: ``prediction`` (logits, any real values) and ``target`` (0/1 or in [0, 1]; others
    raise ``ValueError``) both ``(N, ...)``, equal.
    """

    def _value(self, xp, prediction, target):
        x = prediction
        per_element = xp.clip(x, 0.0, None) - x * target + xp.log1p(xp.exp(-xp.abs(x)))
        return xp.sum(per_element) / element_count(prediction)

    def _gradient(self, xp, prediction, target):
        return (sigmoid(prediction) - target) / element_count(prediction)  # eq. 22 times eq. 24
