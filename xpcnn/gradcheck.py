"""Finite-difference gradient checks for any layer, loss or function, on any backend.

Central differences ``(f(t + eps e_k) - f(t - eps e_k)) / 2 eps`` against the analytic
gradient, elementwise ``|analytic - numeric| <= atol + rtol |numeric|`` (PyTorch
gradcheck's defaults: ``eps=1e-6, atol=1e-5, rtol=1e-3``).  Use float64: float32
differences are too noisy for these tolerances.

The scalar checked for a layer is ``L = sum(G * layer.forward(X))`` with a fixed random
``G``, so ``dL/dY = G`` and every output element is exercised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backend

__all__ = [
    "GradientCheckError",
    "check_layer_gradients",
    "check_loss_gradient",
    "numerical_gradient",
]


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with the finite-difference estimate."""


@dataclass
class GradientComparison:
    name: str
    max_abs_error: float
    worst_index: tuple
    analytic: float
    numeric: float


def numerical_gradient(f, t, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of a scalar function ``f`` at array ``t`` (host float64 result).

    ``t`` is never modified: each evaluation gets a perturbed copy in ``t``'s namespace and
    device.
    """
    xp = backend.array_namespace(t)
    host = backend.to_host(t)
    grad = np.zeros(host.shape, dtype=np.float64)
    for index in np.ndindex(*host.shape):
        values = []
        for step in (eps, -eps):
            shifted = xp.asarray(t, copy=True)
            shifted[index] = t[index] + step
            values.append(float(f(shifted)))
        grad[index] = (values[0] - values[1]) / (2 * eps)
    return grad


def _compare(name, analytic, numeric, atol, rtol) -> GradientComparison:
    analytic = np.asarray(backend.to_host(analytic), dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise GradientCheckError(
            f"{name}: analytic gradient has shape {analytic.shape}, expected {numeric.shape}."
        )
    error = np.abs(analytic - numeric)
    bad = error > atol + rtol * np.abs(numeric)
    worst = np.unravel_index(int(np.argmax(error)), error.shape) if error.size else ()
    result = GradientComparison(
        name,
        float(error.max()) if error.size else 0.0,
        tuple(int(i) for i in worst),
        float(analytic[worst]) if error.size else 0.0,
        float(numeric[worst]) if error.size else 0.0,
    )
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GradientCheckError(
            f"{name}: {int(bad.sum())} of {bad.size} elements differ beyond atol={atol}, rtol={rtol}; "
            f"e.g. at {first}: analytic {analytic[first]:.10g}, numeric {numeric[first]:.10g}."
        )
    return result


def check_layer_gradients(
    layer, x, *, seed: int = 0, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3
) -> list:
    """Check ``dE/dX`` and every parameter gradient of ``layer`` at input ``x``.

    ``x`` must live where the layer's parameters live (use ``layer.to(x)``).  Raises
    :class:`GradientCheckError` on a mismatch; returns a list of comparisons otherwise.
    Neither ``x`` nor the parameters are changed.
    """
    xp = backend.array_namespace(x)
    y = layer.forward(x)
    rng = np.random.default_rng(seed)
    g = backend.placement_of(y).asarray(
        rng.standard_normal(tuple(y.shape)), dtype=backend.dtype_name(y.dtype)
    )

    def scalar(output):
        return xp.sum(g * output)

    layer.forward(x)
    dx = layer.backward(g)
    results = [
        _compare(
            f"{layer.label} dE/dX",
            dx,
            numerical_gradient(lambda t: scalar(layer.forward(t)), x, eps),
            atol,
            rtol,
        )
    ]
    for leaf in layer.leaves():  # a container's parameters live in its layers
        grads = leaf.gradients()
        for name, value in leaf.parameters().items():

            def f(p, leaf=leaf, name=name):
                saved = getattr(leaf, name)
                setattr(leaf, name, p)
                try:
                    return scalar(layer.forward(x))
                finally:
                    setattr(leaf, name, saved)

            results.append(
                _compare(
                    f"{leaf.label} dE/d{name}", grads[name], numerical_gradient(f, value, eps), atol, rtol
                )
            )
    return results


def check_loss_gradient(
    loss, prediction, target, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3
) -> list:
    """Check ``loss.gradient(prediction, target)`` against finite differences of ``loss(prediction, target)``."""
    analytic = loss.gradient(prediction, target)
    numeric = numerical_gradient(lambda p: loss(p, target), prediction, eps)
    return [_compare(f"{type(loss).__name__} dE/dprediction", analytic, numeric, atol, rtol)]
