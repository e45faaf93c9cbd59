"""Activation functions (notes 1.2, eq. 23-24) and activation layers (eq. 12-13)."""

import warnings

import numpy as np
import pytest

import xpcnn
from xpcnn import activations as A
from xpcnn.backend import dtype_name, placement_of

# name -> (keyword parameters, a non-default setting); every elementwise function is covered
PARAMS = {
    "linear": {"a": 0.5, "b": -2.0},
    "relu": {},
    "heaviside": {},
    "sigmoid": {},
    "tanh": {},
    "gaussian": {"c": 0.3, "sigma": 0.7},
    "multiquadratic": {"c": -0.2, "a": 0.8},
    "inverse_multiquadratic": {"c": 0.4, "a": -1.3},
    "leaky_relu": {"negative_slope": 0.2},
    "elu": {"alpha": 0.7},
    "softplus": {},
    "silu": {},
    "gelu": {},
    "gelu_tanh": {},
}
LAYERS = {
    "linear": lambda: xpcnn.Linear(a=0.5, b=-2.0),
    "relu": xpcnn.ReLU,
    "heaviside": xpcnn.Heaviside,
    "sigmoid": xpcnn.Sigmoid,
    "tanh": xpcnn.Tanh,
    "gaussian": lambda: xpcnn.Gaussian(c=0.3, sigma=0.7),
    "multiquadratic": lambda: xpcnn.Multiquadratic(c=-0.2, a=0.8),
    "inverse_multiquadratic": lambda: xpcnn.InverseMultiquadratic(c=0.4, a=-1.3),
    "softmax": xpcnn.Softmax,
    "leaky_relu": lambda: xpcnn.LeakyReLU(0.2),
    "elu": lambda: xpcnn.ELU(alpha=0.7),
    "softplus": xpcnn.Softplus,
    "silu": xpcnn.SiLU,
    "gelu": xpcnn.GELU,
    "gelu_tanh": lambda: xpcnn.GELU(approximate="tanh"),
}


def _away_from_kinks(rng, shape):
    """Normal data pushed at least 0.1 away from 0 (the kink of ReLU and the step of Heaviside)."""
    x = rng.normal(size=shape)
    return np.sign(x) * (0.1 + np.abs(x))


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_derivative_matches_finite_differences(be, rng, name):
    f, f_prime = A.FUNCTIONS[name]
    kw = PARAMS[name]
    host = _away_from_kinks(rng, (4, 5)) * 2
    v, eps = be.asarray(host), 1e-6
    numeric = (be.to_host(f(be.asarray(host + eps), **kw)) - be.to_host(f(be.asarray(host - eps), **kw))) / (
        2 * eps
    )
    np.testing.assert_allclose(be.to_host(f_prime(v, **kw)), numeric, rtol=1e-3, atol=1e-5)


def test_function_values_against_formulas(rng):
    v = rng.normal(size=50) * 3
    np.testing.assert_allclose(A.sigmoid(v), 1 / (1 + np.exp(-v)), rtol=1e-14)  # eq. 23
    s = 1 / (1 + np.exp(-v))
    np.testing.assert_allclose(A.sigmoid_prime(v), s * (1 - s), rtol=1e-12)  # eq. 24
    np.testing.assert_allclose(A.linear(v, 0.5, -2.0), 0.5 - 2.0 * v, rtol=1e-15)
    np.testing.assert_allclose(A.gaussian(v, 0.3, 0.7), np.exp(-((v - 0.3) ** 2) / (2 * 0.49)), rtol=1e-13)
    np.testing.assert_allclose(A.multiquadratic(v, -0.2, 0.8), np.sqrt((v + 0.2) ** 2 + 0.64), rtol=1e-14)
    np.testing.assert_allclose(
        A.inverse_multiquadratic(v, 0.4, 1.3), ((v - 0.4) ** 2 + 1.69) ** -0.5, rtol=1e-14
    )
    np.testing.assert_array_equal(A.heaviside(np.array([-1.0, 0.0, 1e-300])), [0.0, 0.0, 1.0])  # strict > 0
    np.testing.assert_array_equal(A.heaviside_prime(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(A.relu(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 2.0])


def test_softmax_jacobian_and_vjp(be, rng):
    host, eps = rng.normal(size=(3, 4)), 1e-6
    jac = be.to_host(A.softmax_jacobian(be.asarray(host)))
    assert jac.shape == (3, 4, 4)
    for j in range(4):
        step = np.zeros(4)
        step[j] = eps
        col = (
            be.to_host(A.softmax(be.asarray(host + step))) - be.to_host(A.softmax(be.asarray(host - step)))
        ) / (2 * eps)
        np.testing.assert_allclose(jac[:, :, j], col, rtol=1e-3, atol=1e-6)
    g = rng.normal(size=(3, 4))
    s = A.softmax(be.asarray(host))
    np.testing.assert_allclose(
        be.to_host(A.softmax_vjp(s, be.asarray(g))), np.einsum("nij,ni->nj", jac, g), rtol=1e-10, atol=1e-14
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_is_stable_at_1e4(be, dtype):
    host = np.array([-1e4, -1e3, -88.8, -1.0, 0.0, 1.0, 88.8, 1e3, 1e4])
    x = be.asarray(host, dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        for fn in (A.sigmoid, A.sigmoid_prime, xpcnn.Sigmoid().forward):
            out = fn(x)
            got = be.to_host(out)
            assert (
                np.all(np.isfinite(got)) and dtype_name(out.dtype) == dtype and placement_of(out) == be.place
            )
        got = be.to_host(A.sigmoid(x))
    assert got[0] == 0.0 and got[-1] == 1.0 and got[4] == 0.5
    np.testing.assert_allclose(got[3], 1 / (1 + np.exp(1.0)), rtol=1e-6)


def test_softmax_rows_sum_to_one_and_ignore_a_constant(be, rng):
    host = rng.normal(size=(5, 7)) * 10
    for dtype, tol in (("float32", 1e-6), ("float64", 1e-13)):
        s = A.softmax(be.asarray(host, dtype))
        np.testing.assert_allclose(be.to_host(s).sum(axis=-1), 1.0, rtol=tol)
        for c in (100.0, -1000.0):
            np.testing.assert_allclose(
                be.to_host(A.softmax(be.asarray(host + c, dtype))), be.to_host(s), rtol=50 * tol, atol=tol
            )
    big = be.to_host(A.softmax(be.asarray([[1000.0, -1000.0, 0.0]], "float32")))
    np.testing.assert_array_equal(big, [[1.0, 0.0, 0.0]])


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_gradients(be, rng, name):
    layer = LAYERS[name]()
    for shape in ((3, 4), (2, 2, 3, 3)):
        x = be.asarray(_away_from_kinks(rng, shape))
        before = be.to_host(x).copy()
        xpcnn.check_layer_gradients(layer, x)
        np.testing.assert_array_equal(be.to_host(x), before)  # inputs are never mutated


def test_generic_activation_and_a_wrong_derivative_fails(be, rng):
    x = be.asarray(rng.normal(size=(3, 4)))
    xpcnn.check_layer_gradients(xpcnn.Activation(lambda v: v * v * v, lambda v: 3 * v * v), x)
    xpcnn.check_layer_gradients(xpcnn.Activation(xpcnn.tanh, xpcnn.tanh_prime), x)
    with pytest.raises(xpcnn.GradientCheckError, match="dE/dX"):
        xpcnn.check_layer_gradients(xpcnn.Activation(xpcnn.tanh, xpcnn.sigmoid_prime), x)


def test_eq13_backward_is_elementwise_product(rng):
    layer = xpcnn.Linear(a=1.0, b=3.0)
    x, g = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    np.testing.assert_allclose(layer.forward(x), 1.0 + 3.0 * x)
    np.testing.assert_allclose(layer.backward(g), 3.0 * g)
    heaviside = xpcnn.Heaviside()
    heaviside.forward(x)
    np.testing.assert_array_equal(heaviside.backward(g), np.zeros((2, 3)))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_keep_placement_dtype_empty_and_noncontiguous(be, rng, name):
    layer = LAYERS[name]()
    for dtype in ("float32", "float64"):
        x = be.asarray(_away_from_kinks(rng, (3, 4)), dtype)
        y = layer.forward(x)
        dx = layer.backward(be.asarray(np.ones((3, 4)), dtype))
        for out in (y, dx):
            assert (
                dtype_name(out.dtype) == dtype
                and placement_of(out) == be.place
                and tuple(out.shape) == (3, 4)
            )
    empty = be.asarray(np.zeros((0, 4)))
    assert tuple(layer.forward(empty).shape) == (0, 4)
    assert tuple(layer.backward(empty).shape) == (0, 4)
    host = _away_from_kinks(rng, (4, 3))
    xt = be.xp.matrix_transpose(be.asarray(host))  # a non-contiguous view
    np.testing.assert_allclose(
        be.to_host(layer.forward(xt)), be.to_host(layer.forward(be.asarray(host.T.copy()))), rtol=1e-15
    )


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_named_layers_rebuild_from_registry(rng, name):
    layer = LAYERS[name]()
    cls = xpcnn.REGISTRY[type(layer).__name__]
    rebuilt = cls(**layer.config())
    x = _away_from_kinks(rng, (2, 5))
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))
    assert repr(rebuilt) == repr(layer)


def test_aliases_and_generic_activation_is_not_saveable():
    assert xpcnn.Logistic is xpcnn.Sigmoid and A.logistic is A.sigmoid
    generic = xpcnn.Activation(xpcnn.tanh, xpcnn.tanh_prime)
    assert "Activation" not in xpcnn.REGISTRY
    assert repr(generic) == "Activation(f=tanh, f_prime=tanh_prime)"
    with pytest.raises(TypeError, match="cannot be saved; use a named activation layer"):
        generic.config()


class TestBadInput:
    def test_parameters(self):
        with pytest.raises(
            ValueError, match=r"Gaussian: Expected a strictly positive, finite value. Received sigma=0"
        ):
            xpcnn.Gaussian(sigma=0)
        with pytest.raises(
            ValueError, match=r"Multiquadratic: Expected a non-zero, finite value. Received a=0"
        ):
            xpcnn.Multiquadratic(a=0)
        with pytest.raises(
            ValueError, match=r"InverseMultiquadratic: Expected a non-zero, finite value. Received a=0.0"
        ):
            xpcnn.InverseMultiquadratic(c=1.0, a=0.0)
        with pytest.raises(ValueError, match=r"Linear: Expected a finite value. Received a=inf"):
            xpcnn.Linear(a=float("inf"))
        with pytest.raises(TypeError, match=r"Expected a real number. Received b='2'"):
            xpcnn.Linear(b="2")
        with pytest.raises(
            ValueError, match=r"gaussian: Expected a strictly positive, finite value. Received sigma=-1"
        ):
            A.gaussian(np.ones(3), sigma=-1)
        with pytest.raises(ValueError, match=r"inverse_multiquadratic: Expected a non-zero, finite value"):
            A.inverse_multiquadratic(np.ones(3), a=0)
        with pytest.raises(
            TypeError, match=r"Activation: expected f_prime to be callable. Received f_prime=2"
        ):
            xpcnn.Activation(xpcnn.tanh, 2)

    def test_inputs(self, be):
        with pytest.raises(TypeError, match="Sigmoid: expected the input with a floating dtype.*Hint"):
            xpcnn.Sigmoid().forward(be.asarray(np.ones((2, 2), dtype=np.int64), "int64"))
        with pytest.raises(TypeError, match="sigmoid: expected v to be an array, received list"):
            A.sigmoid([1.0, 2.0])
        with pytest.raises(RuntimeError, match=r"ReLU: backward\(\) was called before forward\(\)"):
            xpcnn.ReLU().backward(be.asarray(np.ones((2, 2))))
        layer = xpcnn.Tanh()
        layer.forward(be.asarray(np.ones((2, 3))))
        with pytest.raises(
            ValueError, match=r"expected output_gradient of shape \(2, 3\).*received \(3, 2\)"
        ):
            layer.backward(be.asarray(np.ones((3, 2))))
        with pytest.raises(ValueError, match="Softmax: expected input with at least one class"):
            xpcnn.Softmax().forward(be.asarray(np.ones((2, 0))))


# ------------------------------------------------------------- the activations used today
TORCH = {
    "leaky_relu": lambda F, t: F.leaky_relu(t, 0.2),
    "elu": lambda F, t: F.elu(t, alpha=0.7),
    "softplus": lambda F, t: F.softplus(t, threshold=1000.0),  # the exact function, no cut-off
    "silu": lambda F, t: F.silu(t),
    "gelu": lambda F, t: F.gelu(t),
    "gelu_tanh": lambda F, t: F.gelu(t, approximate="tanh"),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_new_activations_match_pytorch(be, rng, name):
    torch = pytest.importorskip("torch")
    host = np.concatenate([rng.normal(size=300) * 4, [-30.0, -7.0, -2.5, -1e-3, 0.0, 1e-3, 2.5, 7.0, 30.0]])
    layer = LAYERS[name]()
    y = layer.forward(be.asarray(host))
    g = rng.normal(size=host.shape)
    dx = layer.backward(be.asarray(g))
    t = torch.tensor(host, requires_grad=True)
    ty = TORCH[name](torch.nn.functional, t)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(be.to_host(y), ty.detach().numpy(), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(be.to_host(dx), t.grad.numpy(), rtol=1e-12, atol=1e-10)


def test_erf_against_the_standard_library():
    import math

    v = np.concatenate([np.linspace(-7, 7, 4001), [-np.inf, np.inf, 2.5, -2.5, 1e-300]])
    exact = np.array([math.erf(t) for t in v])
    np.testing.assert_allclose(A.erf(v), exact, rtol=0, atol=3e-15)
    assert np.isnan(A.erf(np.array([np.nan])))[0]
    f32 = A.erf(v.astype(np.float32))
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, exact, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(TORCH))
def test_new_activations_are_finite_for_large_inputs_in_float32(name):
    f, f_prime = A.FUNCTIONS[name]
    kw = PARAMS[name]
    v = np.array([-3e38, -1e30, -1e4, -100.0, 100.0, 1e4, 1e30, 3e38], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no invalid value
        y, d = f(v, **kw), f_prime(v, **kw)
    assert y.dtype == d.dtype == np.float32
    assert np.isfinite(y).all() and np.isfinite(d).all()
    big = v > 0
    np.testing.assert_allclose(y[big], v[big] if name != "leaky_relu" else v[big], rtol=1e-6)


def test_gelu_refuses_an_unknown_form():
    with pytest.raises(
        ValueError, match=r'GELU: Expected approximate "none" or "tanh"\. Received approximate=\'fast\''
    ):
        xpcnn.GELU("fast")
