"""The Loss base class: the contract every loss and metric follows, and its input checks.

Contract (``fit()`` is built on it):

* ``loss(prediction, target)`` returns a 0-d array in the prediction's namespace, on its
  device and in its dtype: the mean over the batch (each loss documents its reduction).
* ``loss.gradient(prediction, target)`` returns ``dE/dprediction`` with the prediction's
  shape, dtype and placement; it is the derivative of exactly the value above, so the
  reduction's ``1/N`` is in it.
* The batch is axis 0 of ``prediction``.  Shapes must match exactly: (N, 1) is never
  broadcast against (N,).  The target is cast to the prediction's dtype (labels given as
  integers or booleans are fine); it must live where the prediction lives.
"""

from __future__ import annotations

from .. import backend
from ..backend import Array


class Loss:
    """Base class.  Subclasses implement ``_value(xp, prediction, target)`` and
    ``_gradient(xp, prediction, target)`` on validated inputs, or override
    :meth:`_prepare` for other target forms.

    ``differentiable`` is False for metrics (their ``gradient`` raises).
    """

    differentiable = True

    # ----------------------------------------------------------------- naming
    @property
    def name(self) -> str:
        return type(self).__name__

    def config(self) -> dict:
        """The constructor arguments (JSON-serialisable) that rebuild this loss."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{self.name}({args})"

    # ------------------------------------------------------------ the contract
    def __call__(self, prediction: Array, target: Array) -> Array:
        """The loss value ``E``: a 0-d array (prediction's namespace, device and dtype)."""
        xp, prediction, target = self._prepare(prediction, target)
        return as_0d(xp, self._value(xp, prediction, target), prediction)

    def gradient(self, prediction: Array, target: Array) -> Array:
        """``dE/dprediction``: the prediction's shape, dtype and placement."""
        xp, prediction, target = self._prepare(prediction, target)
        return self._gradient(xp, prediction, target)

    def value_and_gradient(self, prediction: Array, target: Array) -> tuple[Array, Array]:
        """``(E, dE/dprediction)`` with one validation (and shared work where a loss has it)."""
        return self._value_and_gradient(*self._prepare(prediction, target))

    def _value_and_gradient(self, xp, prediction, target):
        return as_0d(xp, self._value(xp, prediction, target), prediction), self._gradient(
            xp, prediction, target
        )

    # ------------------------------------------- targets checked once per data set
    def check_targets(self, target, outputs: tuple, where: str = "fit") -> None:
        """Check a whole data set's targets once, before any step (``fit`` and ``evaluate``
        do), against ``outputs``, the model's per-sample output shape: the rules on target
        values that would otherwise cost a device read per batch (label ranges, values in
        [0, 1], non-negative rows).  The batches then take :meth:`trusted_value_and_gradient`.
        None by default."""

    def trusted_value_and_gradient(self, prediction: Array, target: Array) -> tuple[Array, Array]:
        """:meth:`value_and_gradient` for targets already checked by :meth:`check_targets`."""
        return self._value_and_gradient(*self._prepare(prediction, target, targets_checked=True))

    def trusted_value(self, prediction: Array, target: Array) -> Array:
        """The loss value for targets already checked by :meth:`check_targets`."""
        xp, prediction, target = self._prepare(prediction, target, targets_checked=True)
        return as_0d(xp, self._value(xp, prediction, target), prediction)

    def _value(self, xp, prediction, target):
        raise NotImplementedError

    def _gradient(self, xp, prediction, target):
        raise NotImplementedError

    # ------------------------------------------------------------------ checks
    def _prepare(self, prediction, target, targets_checked: bool = False):
        """Validate an elementwise loss's inputs: same shape, same placement; cast target.
        ``targets_checked``: :meth:`check_targets` already checked the target values."""
        xp = self._check_prediction(prediction)
        self._check_target(prediction, target)
        self._check_same_shape(prediction, target)
        return xp, prediction, self._cast_target(xp, prediction, target)

    def _check_prediction(self, prediction, *, floating: bool = True):
        if not backend.is_array(prediction):
            raise TypeError(
                f"{self.name}: expected prediction to be an array, received {type(prediction).__name__}."
            )
        xp = backend.array_namespace(prediction)
        received = backend.dtype_name(prediction.dtype)
        if floating and received not in backend.FLOAT_DTYPES:
            raise TypeError(
                f"{self.name}: expected a prediction with a floating dtype (float32 or float64), "
                f"received dtype {received}. Pass the network's output here, and the labels as target."
            )
        if prediction.ndim == 0:
            raise ValueError(
                f"{self.name}: expected a prediction with the batch along axis 0, received a 0-d array "
                f"(shape ()). Hint: reshape a single value to (1,)."
            )
        if prediction.shape[0] == 0:
            raise ValueError(
                f"{self.name}: received an empty batch (prediction shape {tuple(prediction.shape)}); "
                f"the mean over the batch needs at least one sample."
            )
        if 0 in tuple(prediction.shape):
            raise ValueError(
                f"{self.name}: received a prediction with no elements (shape {tuple(prediction.shape)})."
            )
        return xp

    def _check_target(self, prediction, target):
        if not backend.is_array(target):
            raise TypeError(
                f"{self.name}: expected target to be an array, received {type(target).__name__}. "
                f"Hint: copy it where the prediction lives, e.g. with xpcnn.placement(prediction).asarray(...)."
            )
        got, expected = backend.placement_of(target), backend.placement_of(prediction)
        if got != expected:
            raise ValueError(
                f"{self.name}: target is on {got.name} but prediction is on {expected.name}; "
                f"move the target to {expected.name} first."
            )

    def _check_same_shape(self, prediction, target):
        p, t = tuple(prediction.shape), tuple(target.shape)
        if p != t:
            hint = ""
            if len(p) == len(t) + 1 and p[-1] == 1 and p[:-1] == t:
                hint = f" Reshape the target to {p} (never broadcast: (N, 1) against (N,) would give (N, N))."
            elif len(t) == len(p) + 1 and t[-1] == 1 and t[:-1] == p:
                hint = f" Reshape the target to {p} (never broadcast: (N,) against (N, 1) would give (N, N))."
            raise ValueError(
                f"{self.name}: expected target of the prediction's shape {p}, received {t}.{hint}"
            )

    def _cast_target(self, xp, prediction, target):
        if target.dtype == prediction.dtype:
            return target
        return xp.astype(target, prediction.dtype)


def values_outside(xp, x, low: float, high: float | None, what: str, rule: str, where: str) -> None:
    """Raise ``ValueError`` when an element of ``x`` is outside ``[low, high]`` (or NaN): one
    device read when all are inside."""
    inside = x >= low if high is None else (x >= low) & (x <= high)
    if not bool(xp.all(inside)):
        count = int(xp.sum(xp.astype(~inside, xp.int64)))
        finite = xp.isfinite(x) if xp.isdtype(x.dtype, "real floating") else None
        lo, hi = float(xp.min(x)), float(xp.max(x))
        nan = "" if finite is None or bool(xp.all(finite | xp.isinf(x))) else ", some NaN"
        raise ValueError(
            f"{where}: expected {what} {rule}, received {count} value(s) outside (min {lo:g}, max {hi:g}{nan})."
        )


def element_count(x) -> int:
    """The number of elements of ``x`` (a Python int)."""
    count = 1
    for size in x.shape:
        count *= int(size)
    return count


def as_0d(xp, value, like):
    """``value`` as a 0-d array where ``like`` lives (NumPy reductions return scalars, which
    are not arrays: ``numpy.float32`` is turned into a 0-d ``ndarray`` here too)."""
    if backend.is_host_scalar(value):
        return backend.host_0d(value)  # like lives on the host: the scalar is its result
    if getattr(value, "ndim", None) == 0:
        return value
    return xp.asarray(value, device=backend.device(like))
