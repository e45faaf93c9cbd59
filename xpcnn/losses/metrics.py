"""The 0-1 loss (eq. 3) and accuracy: metrics, not training losses (no gradient)."""

from __future__ import annotations

from .. import backend
from .._validate import real
from ..backend import Array
from .base import Loss, as_0d

MODES = ("auto", "categorical", "binary", "labels")

MODES_DOC = """
    Modes, shapes and reduction (``mode="auto"`` picks one from the prediction):

    * ``"categorical"``: ``prediction`` holds class scores ``(N, C)`` (logits or
      probabilities); the predicted class is the row's argmax (the first on ties).
      ``target``: integer labels ``(N,)`` or one-hot / probability rows ``(N, C)`` (their
      argmax).  One decision per sample.  Auto: a floating ``(N, C)`` prediction, ``C >= 2``.
    * ``"binary"``: ``prediction`` holds probabilities, the predicted class is
      ``prediction > threshold`` (0.5; use 0 for logits); the true class is
      ``target > 0.5``.  Same shapes; one decision per element (multi-label outputs need
      ``mode="binary"`` explicitly).  Auto: a floating ``(N,)`` or ``(N, 1)`` prediction.
    * ``"labels"``: ``prediction`` already holds integer labels, compared with the integer
      ``target`` of the same shape element by element (eq. 3 literally).  Auto: an integer
      prediction.

    The value is a 0-d array: the mean over all decisions (over the batch for
    ``"categorical"``), in the prediction's dtype (the namespace's default floating dtype
    for integer predictions), on the prediction's device.
    """


class _Metric(Loss):
    """Shared by :class:`ZeroOneLoss` and :class:`Accuracy` (modes and shapes: ``MODES_DOC``)."""

    differentiable = False

    def __init__(self, mode: str = "auto", threshold: float = 0.5):
        if mode not in MODES:
            raise ValueError(
                f"{type(self).__name__}: Expected mode to be one of {MODES}. Received mode={mode!r}."
            )
        self.mode = mode
        self.threshold = real(threshold, "threshold", where=type(self).__name__)

    def config(self) -> dict:
        return {"mode": self.mode, "threshold": self.threshold}

    def gradient(self, prediction, target):
        raise TypeError(
            f"{self.name} is a metric and has no gradient: the 0-1 loss (eq. 3) is piecewise constant, "
            f"so its derivative is zero wherever it exists and undefined at the jumps. Train with a "
            f"differentiable loss (e.g. SoftmaxCrossEntropy or BinaryCrossEntropy) and use {self.name} "
            f"to evaluate."
        )

    def value_and_gradient(self, prediction, target):
        return self.gradient(prediction, target)

    def _resolve_mode(self, xp, prediction) -> str:
        if self.mode != "auto":
            return self.mode
        if not xp.isdtype(prediction.dtype, "real floating"):
            return "labels"
        if prediction.ndim == 2 and prediction.shape[1] >= 2:
            return "categorical"
        if prediction.ndim == 1 or (prediction.ndim == 2 and prediction.shape[1] == 1):
            return "binary"
        raise ValueError(
            f"{self.name}: cannot tell how to decide a prediction of shape {tuple(prediction.shape)}; "
            f"pass mode='binary' (threshold every element) or mode='categorical' (argmax of (N, C) rows)."
        )

    def _correct(self, prediction, target):
        """``(xp, correct, dtype)``: a boolean array of the decisions that are right."""
        xp = self._check_prediction(prediction, floating=False)
        self._check_target(prediction, target)
        mode = self._resolve_mode(xp, prediction)
        if mode == "labels":
            for what, x in (("prediction", prediction), ("target", target)):
                if not xp.isdtype(x.dtype, "integral"):
                    raise TypeError(
                        f"{self.name}: mode 'labels' expects integer {what}, received dtype "
                        f"{backend.dtype_name(x.dtype)}."
                    )
            self._check_same_shape(prediction, target)
            info = xp.__array_namespace_info__()
            dtype = info.default_dtypes(device=backend.device(prediction))["real floating"]
            return xp, prediction == target, dtype
        if not xp.isdtype(prediction.dtype, "real floating"):
            raise TypeError(
                f"{self.name}: mode {mode!r} expects a floating prediction (scores or probabilities), "
                f"received dtype {backend.dtype_name(prediction.dtype)}; use mode='labels' for labels."
            )
        if mode == "binary":
            self._check_same_shape(prediction, target)
            target = self._cast_target(xp, prediction, target)
            return xp, (prediction > self.threshold) == (target > 0.5), prediction.dtype
        # categorical
        if prediction.ndim != 2:
            raise ValueError(
                f"{self.name}: mode 'categorical' expects class scores of shape (N, C), received "
                f"{tuple(prediction.shape)}."
            )
        n, c = (int(s) for s in prediction.shape)
        predicted = xp.argmax(prediction, axis=1)
        if target.ndim == 1 and int(target.shape[0]) == n:
            if not xp.isdtype(target.dtype, "integral"):
                raise TypeError(
                    f"{self.name}: expected integer class labels of shape ({n},), received dtype "
                    f"{backend.dtype_name(target.dtype)}. Hint: convert them with astype(int64)."
                )
            return xp, predicted == xp.astype(target, predicted.dtype), prediction.dtype
        if tuple(target.shape) != (n, c):
            raise ValueError(
                f"{self.name}: expected target of shape ({n},) (class labels) or {(n, c)} (one-hot rows) "
                f"for class scores of shape {(n, c)}, received {tuple(target.shape)}."
            )
        return xp, predicted == xp.argmax(target, axis=1), prediction.dtype


class ZeroOneLoss(_Metric):
    """The 0-1 loss ``L(y_hat, y) = [y != y_hat]`` (eq. 3, Iverson bracket), averaged: the
    fraction of wrong decisions, ``1 - accuracy``.  A metric: ``gradient`` raises
    ``TypeError``.
    """

    __doc__ = (__doc__ or "") + MODES_DOC

    def __call__(self, prediction, target):
        xp, correct, dtype = self._correct(prediction, target)
        return as_0d(xp, xp.mean(xp.astype(~correct, dtype)), prediction)


class Accuracy(_Metric):
    """The fraction of right decisions, ``1 - ZeroOneLoss``.  A metric: ``gradient`` raises
    ``TypeError``.
    """

    __doc__ = (__doc__ or "") + MODES_DOC

    def __call__(self, prediction, target):
        xp, correct, dtype = self._correct(prediction, target)
        return as_0d(xp, xp.mean(xp.astype(correct, dtype)), prediction)


def accuracy(prediction, target, *, mode: str = "auto", threshold: float = 0.5) -> Array:
    """The fraction of right decisions as a 0-d array; see :class:`Accuracy` for the modes
    (class scores ``(N, C)`` against labels ``(N,)`` or one-hot rows, or binary
    probabilities against 0/1 targets with a 0.5 threshold)."""
    return Accuracy(mode=mode, threshold=threshold)(prediction, target)
