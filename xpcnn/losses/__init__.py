"""Losses (notes eq. 2, 21-22, and softmax cross-entropy) and metrics (eq. 3, accuracy).

Every loss follows one contract (see :mod:`xpcnn.losses.base`): ``loss(prediction,
target)`` is a 0-d array, the mean over the batch (each class documents its reduction
exactly), in the prediction's namespace, device and dtype; ``loss.gradient(prediction,
target)`` is ``dE/dprediction`` with the prediction's shape, dtype and placement.
:func:`get` resolves a name such as ``"mse"`` or ``"softmax_crossentropy"``.
"""

from __future__ import annotations

from .base import Loss
from .binary import BinaryCrossEntropy, BinaryCrossEntropyFromLogits
from .metrics import Accuracy, ZeroOneLoss, accuracy
from .quadratic import QuadraticLoss
from .softmax import SoftmaxCrossEntropy, log_softmax

__all__ = [
    "NAMES",
    "Accuracy",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyFromLogits",
    "Loss",
    "QuadraticLoss",
    "SoftmaxCrossEntropy",
    "ZeroOneLoss",
    "accuracy",
    "get",
    "log_softmax",
]

# name -> (class, constructor kwargs).  Names are matched case-insensitively, with "-" and
# " " read as "_".  "quadratic" is the notes' C = 1/2; "mse" is the usual C = 1.
NAMES: dict[str, tuple[type[Loss], dict]] = {
    "quadratic": (QuadraticLoss, {}),
    "quadratic_loss": (QuadraticLoss, {}),
    "mse": (QuadraticLoss, {"C": 1.0}),
    "mean_squared_error": (QuadraticLoss, {"C": 1.0}),
    "binary_crossentropy": (BinaryCrossEntropy, {}),
    "binary_cross_entropy": (BinaryCrossEntropy, {}),
    "bce": (BinaryCrossEntropy, {}),
    "binary_crossentropy_from_logits": (BinaryCrossEntropyFromLogits, {}),
    "binary_cross_entropy_from_logits": (BinaryCrossEntropyFromLogits, {}),
    "softmax_crossentropy": (SoftmaxCrossEntropy, {}),
    "softmax_cross_entropy": (SoftmaxCrossEntropy, {}),
    "categorical_crossentropy": (SoftmaxCrossEntropy, {}),
    "sparse_categorical_crossentropy": (SoftmaxCrossEntropy, {}),
    "cross_entropy": (SoftmaxCrossEntropy, {}),
    "zero_one": (ZeroOneLoss, {}),
    "zero_one_loss": (ZeroOneLoss, {}),
    "0_1": (ZeroOneLoss, {}),
    "accuracy": (Accuracy, {}),
    "acc": (Accuracy, {}),
}


def get(name_or_loss, kind: str = "loss") -> Loss:
    """Resolve a loss: a :class:`Loss` instance is returned as is, a Loss subclass is
    instantiated with its defaults, a name from :data:`NAMES` gives a new instance.

    Note that ``categorical_crossentropy`` and ``sparse_categorical_crossentropy`` both take
    *logits* (:class:`SoftmaxCrossEntropy` accepts labels or one-hot rows).  ``kind``
    (``"loss"`` or ``"metric"``) is the word the errors use.
    """
    if isinstance(name_or_loss, Loss):
        return name_or_loss
    if isinstance(name_or_loss, type) and issubclass(name_or_loss, Loss):
        return name_or_loss()
    if not isinstance(name_or_loss, str):
        raise TypeError(
            f"Expected a {kind} name or a Loss instance. Received {type(name_or_loss).__name__}: {name_or_loss!r}."
        )
    key = name_or_loss.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in NAMES:
        raise ValueError(f"Unknown {kind} {name_or_loss!r}. Known names: {', '.join(sorted(NAMES))}.")
    cls, kwargs = NAMES[key]
    return cls(**kwargs)
