"""The quadratic loss, notes eq. 2 (and the error of section 2, step 2)."""

from __future__ import annotations

from .._validate import positive
from .base import Loss, element_count


class QuadraticLoss(Loss):
    """``lambda(x) = C (t - x)^2`` (eq. 2), averaged over every element.

    Shapes: ``prediction`` ``x`` and ``target`` ``t`` both ``(N, ...)``, equal.  With ``M``
    the number of elements (``N`` times the per-sample size)::

        E = (1/M) sum_m C (t_m - x_m)^2          dE/dx_m = (2C/M) (x_m - t_m)

    i.e. the mean over the batch of the per-sample mean over outputs.  ``C = 1/2`` (the
    default) is the notes' ``E = 1/2 (y_hat - y)^2``; ``C = 1`` is the usual mean squared
    error (``losses.get("mse")``).
    """

    def __init__(self, C: float = 0.5):
        self.C = positive(C, "C", "QuadraticLoss")

    def config(self) -> dict:
        return {"C": self.C}

    def _value(self, xp, prediction, target):
        diff = target - prediction
        return xp.sum(diff * diff) * (self.C / element_count(prediction))  # eq. 2

    def _gradient(self, xp, prediction, target):
        return (prediction - target) * (2.0 * self.C / element_count(prediction))
