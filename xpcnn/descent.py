"""Gradient descent on any differentiable function (notes section 1.3, eq. 1).

``a_{n+1} = a_n - gamma grad F(a_n)``: for a small enough learning rate ``gamma > 0``,
``F(a_0) >= F(a_1) >= ... >= F(a_n)`` (eq. 1).  For a quadratic whose Hessian has largest
eigenvalue ``L`` this holds for ``0 < gamma < 2 / L``; beyond it the iterates diverge.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from . import backend
from ._validate import non_negative_int, positive

__all__ = ["DescentPath", "descend", "descend_layers", "gradient_descent"]


def descend(a, gradient, learning_rate: float) -> backend.Array:
    """One step of eq. 1, ``a - gamma grad F(a)``: the rule of :func:`gradient_descent`, of
    ``Layer.backward(..., learning_rate=...)`` and of :class:`xpcnn.SGD` without momentum.
    ``learning_rate`` is a Python float (a NumPy scalar would drag a device array to NumPy).

    The result is a fresh array (``a`` itself is never written).  For two arrays of one shape
    and dtype it is computed as ``-gamma g`` followed by ``+= a`` on that new array: exactly
    ``a - gamma g`` (negation is exact, and ``a + (-b)`` is ``a - b`` in IEEE arithmetic),
    with one temporary instead of two (measured 17 against 28 us on a 10 x 9216 float32)."""
    if (
        backend.is_array(a)
        and backend.is_array(gradient)
        and a.shape == gradient.shape
        and a.dtype == gradient.dtype
    ):
        new = gradient * -learning_rate
        new += a
        return new
    return a - learning_rate * gradient


def descend_layers(layers, learning_rate: float) -> None:
    """Eq. 1 on every parameter of ``layers`` (layers holding ``grads``: a container's
    ``leaves()``), from the gradients of their last backward."""
    for layer in layers:
        for name, grad in layer.grads.items():
            setattr(layer, name, descend(getattr(layer, name), grad, learning_rate))


@dataclass
class DescentPath:
    """The iterates ``points = [a_0, ..., a_n]`` and ``values = [F(a_0), ..., F(a_n)]``."""

    points: list = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def x(self):
        """The last point ``a_n``."""
        return self.points[-1]

    @property
    def value(self) -> float:
        """``F(a_n)``."""
        return self.values[-1]

    def is_decreasing(self) -> bool:
        """True when ``F(a_0) >= F(a_1) >= ... >= F(a_n)`` (eq. 1)."""
        return all(b <= a for a, b in zip(self.values[:-1], self.values[1:], strict=True))

    def __len__(self) -> int:
        return len(self.points)

    def __repr__(self) -> str:
        return f"DescentPath(steps={len(self.points) - 1}, F: {self.values[0]:.6g} -> {self.values[-1]:.6g})"


def gradient_descent(f, grad, x0, learning_rate: float, steps: int) -> DescentPath:
    """Run ``steps`` iterations of eq. 1 from ``x0``.

    Args:
        f: ``F``, returning a real scalar (a Python number or a 0-d array).
        grad: ``grad F``, returning an array of ``x0``'s shape (or a number for a number ``x0``).
        x0: the start point: a real number or an array in any namespace; iterates stay there.
        learning_rate: ``gamma``, finite and strictly positive.
        steps: the number of updates, an integer >= 0.

    Returns:
        A :class:`DescentPath` with ``steps + 1`` points and their ``F`` values.  It stops early
        only if ``F`` becomes NaN or infinite (divergence), with that value as the last one.
    """
    for name, fn in (("f", f), ("grad", grad)):
        if not callable(fn):
            raise TypeError(f"gradient_descent: expected {name} to be callable. Received {name}={fn!r}.")
    # gamma is a Python float: a NumPy scalar would drag x to NumPy
    gamma = positive(learning_rate, "learning_rate", "gradient_descent")
    steps = non_negative_int(steps, "steps", "gradient_descent")
    if isinstance(x0, bool) or not (isinstance(x0, numbers.Real) or backend.is_array(x0)):
        raise TypeError(
            f"gradient_descent: expected x0 to be a real number or an array, received {type(x0).__name__}."
        )
    shape = tuple(getattr(x0, "shape", ()))
    x = x0
    path = DescentPath([x], [float(f(x))])
    for n in range(steps):
        if not math.isfinite(path.values[-1]):
            break
        g = grad(x)
        if tuple(getattr(g, "shape", ())) != shape:
            raise ValueError(
                f"gradient_descent: grad returned shape {tuple(getattr(g, 'shape', ()))} at step {n}, "
                f"expected the shape of x0, {shape}."
            )
        x = descend(x, g, gamma)  # eq. 1
        path.points.append(x)
        path.values.append(float(f(x)))
    return path
