"""The neuron and TLU (notes 1.1) and gradient descent (notes 1.3, eq. 1)."""

import itertools

import numpy as np
import pytest

import xpcnn
from xpcnn.backend import dtype_name, placement_of


def test_neuron_is_phi_of_weighted_sum(be, rng):
    w, b = rng.normal(size=3), 0.25
    x = rng.normal(size=(5, 3))
    neuron = xpcnn.Neuron(w, b, "sigmoid")
    expected = 1 / (1 + np.exp(-(x @ w + b)))
    for dtype, rtol in (("float64", 1e-13), ("float32", 1e-6)):
        y = neuron(be.asarray(x, dtype))
        assert tuple(y.shape) == (5,) and dtype_name(y.dtype) == dtype and placement_of(y) == be.place
        np.testing.assert_allclose(be.to_host(y), expected, rtol=rtol)
    single = neuron(be.asarray(x[0]))
    assert tuple(single.shape) == ()
    np.testing.assert_allclose(float(be.to_host(single)), expected[0], rtol=1e-13)
    batched = neuron(be.asarray(x.reshape(5, 1, 3)))  # any leading axes
    np.testing.assert_allclose(be.to_host(batched), expected.reshape(5, 1), rtol=1e-13)
    np.testing.assert_allclose(be.to_host(neuron.preactivation(be.asarray(x))), x @ w + b, rtol=1e-13)


def test_neuron_activations_and_errors(rng):
    x = rng.normal(size=(4, 2))
    relu = xpcnn.Neuron([1.0, -1.0], 0.0, xpcnn.relu)
    np.testing.assert_allclose(relu(x), np.maximum(x[:, 0] - x[:, 1], 0))
    identity = xpcnn.Neuron([2.0, 3.0], 1.0)
    np.testing.assert_allclose(identity(x), 2 * x[:, 0] + 3 * x[:, 1] + 1)
    with pytest.raises(
        ValueError, match=r"Neuron: expected x with 2 inputs on its last axis, received shape \(4, 3\)"
    ):
        identity(np.ones((4, 3)))
    with pytest.raises(ValueError, match="Neuron: unknown activation 'sigmoyd'"):
        xpcnn.Neuron([1.0], 0.0, "sigmoyd")
    with pytest.raises(ValueError, match="Neuron: expected a non-empty 1-D sequence of weights"):
        xpcnn.Neuron([[1.0, 2.0]], 0.0)
    with pytest.raises(ValueError, match=r"Neuron: Expected a finite value. Received bias=nan"):
        xpcnn.Neuron([1.0], float("nan"))
    assert repr(identity) == "Neuron(weights=[2.0, 3.0], bias=1.0, activation=linear)"


@pytest.mark.parametrize(
    "threshold, table",
    [
        (1.5, {(0, 0): 0, (0, 1): 0, (1, 0): 0, (1, 1): 1}),
        (0.5, {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 1}),
    ],
    ids=["AND", "OR"],
)
def test_tlu_and_or(threshold, table):
    tlu = xpcnn.ThresholdLogicUnit([1.0, 1.0], threshold)
    for a, b in itertools.product((False, True), repeat=2):
        fired = tlu.fire([a, b])
        assert type(fired) is bool and fired == bool(table[(int(a), int(b))]), (a, b)


def test_tlu_threshold_is_strict_and_inputs_are_checked():
    tlu = xpcnn.ThresholdLogicUnit([1.0, 1.0], 2.0)
    assert tlu.fire([True, True]) is False  # T = 2 is not > 2
    assert xpcnn.ThresholdLogicUnit([-1.0], -0.5).fire([False]) is True  # NOT
    assert xpcnn.ThresholdLogicUnit([0.5, 0.5, 0.5], 1.0).fire(np.array([True, False, True])) is False
    with pytest.raises(
        ValueError, match=r"ThresholdLogicUnit: expected 2 inputs \(one per weight\), received 3"
    ):
        tlu.fire([True, False, True])
    with pytest.raises(TypeError, match=r"input 1 must be a boolean \(or 0/1\). Received 0.5"):
        tlu.fire([True, 0.5])


def _quadratic(be):
    """F(x) = 1/2 x^T A x - b^T x with eigenvalues 2 and 4 (L = 4): minimum at A^-1 b."""
    a_host = np.array([[3.0, 1.0], [1.0, 3.0]])
    a, b = be.asarray(a_host), be.asarray([1.0, -2.0])
    xp = be.xp

    def f(x):
        return float(be.to_host(0.5 * xp.sum(x * xp.matmul(a, x)) - xp.sum(b * x)))

    def grad(x):
        return xp.matmul(a, x) - b

    return f, grad, a_host, np.linalg.solve(a_host, [1.0, -2.0])


def test_gradient_descent_decreases_with_a_small_learning_rate(be):
    f, grad, a, minimum = _quadratic(be)
    L = np.linalg.eigvalsh(a).max()
    path = xpcnn.gradient_descent(f, grad, be.asarray([5.0, 5.0]), 0.5 / L, 40)
    assert len(path) == 41 and len(path.values) == 41
    assert all(b < a for a, b in zip(path.values[:-1], path.values[1:], strict=True))  # eq. 1, strictly
    assert path.is_decreasing()
    assert placement_of(path.x) == be.place
    np.testing.assert_allclose(be.to_host(path.x), minimum, atol=1e-4)


def test_gradient_descent_diverges_when_the_learning_rate_is_too_large(be):
    f, grad, a, _ = _quadratic(be)
    L = np.linalg.eigvalsh(a).max()
    path = xpcnn.gradient_descent(f, grad, be.asarray([5.0, 5.0]), 2.2 / L, 60)
    assert not path.is_decreasing()
    assert path.value > 1e4 * path.values[0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_descend_is_eq1_exactly_in_a_fresh_array(be, rng, dtype):
    """``descend`` computes ``a - gamma g`` bit for bit (as ``-gamma g``, then ``+= a``), in a new
    array: ``a`` and ``g`` keep their values; numbers and mixed shapes take the plain form."""
    a_host, g_host = rng.normal(size=(2, 7, 5))
    a, g = be.asarray(a_host, dtype), be.asarray(g_host, dtype)
    new = xpcnn.descend(a, g, 0.37)
    expected = a_host.astype(dtype) - np.asarray(0.37, dtype=dtype) * g_host.astype(dtype)
    np.testing.assert_array_equal(be.to_host(new), expected)
    np.testing.assert_array_equal(be.to_host(a), a_host.astype(dtype))
    np.testing.assert_array_equal(be.to_host(g), g_host.astype(dtype))
    assert new is not a and new is not g and placement_of(new) == be.place
    assert xpcnn.descend(1.5, 2.0, 0.25) == 1.0
    row = xpcnn.descend(a, be.asarray(g_host[0], dtype), 0.5)  # g broadcast along a's rows
    np.testing.assert_allclose(be.to_host(row), a_host - 0.5 * g_host[0], rtol=1e-6)


def test_gradient_descent_on_numbers():
    path = xpcnn.gradient_descent(lambda x: (x - 3) ** 2, lambda x: 2 * (x - 3), 0.0, 0.1, 50)
    assert path.points[0] == 0.0 and abs(path.x - 3) < 1e-4 and path.is_decreasing()
    assert path.points[1] == pytest.approx(0.6)  # a_1 = a_0 - gamma F'(a_0)
    assert len(xpcnn.gradient_descent(lambda x: x * x, lambda x: 2 * x, 1.0, 0.1, 0)) == 1
    assert repr(path).startswith("DescentPath(steps=50, F: 9 ->")


@pytest.mark.parametrize(
    "lr, error, rule",
    [(lr, ValueError, "a strictly positive, finite value") for lr in (0, -0.1, float("nan"), float("inf"))]
    + [(lr, TypeError, "a real number") for lr in (True, "0.1")],
)
def test_gradient_descent_rejects_bad_learning_rates(lr, error, rule):
    with pytest.raises(error, match=rf"gradient_descent: Expected {rule}\. Received learning_rate={lr!r}\."):
        xpcnn.gradient_descent(lambda x: x * x, lambda x: 2 * x, 1.0, lr, 10)


def test_gradient_descent_rejects_bad_arguments():
    sq, dsq = (lambda x: x * x), (lambda x: 2 * x)
    for steps in (-1, 2.5, True):
        with pytest.raises(ValueError, match=r"Expected a non-negative integer. Received steps="):
            xpcnn.gradient_descent(sq, dsq, 1.0, 0.1, steps)
    with pytest.raises(TypeError, match="expected x0 to be a real number or an array, received list"):
        xpcnn.gradient_descent(sq, dsq, [1.0, 2.0], 0.1, 3)
    with pytest.raises(TypeError, match="expected grad to be callable"):
        xpcnn.gradient_descent(sq, None, 1.0, 0.1, 3)
    with pytest.raises(
        ValueError, match=r"grad returned shape \(3,\) at step 0, expected the shape of x0, \(2,\)"
    ):
        xpcnn.gradient_descent(lambda x: float(np.sum(x * x)), lambda x: np.ones(3), np.ones(2), 0.1, 3)
