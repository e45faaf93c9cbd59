"""Dense and Convolutional: float64 finite-difference checks and placement rules."""

import re

import numpy as np
import pytest

import xpcnn
from xpcnn.backend import dtype_name, placement_of


def _check(layer, x):
    before = {
        k: v.copy() for k, v in ((k, np.array(xpcnn.to_host(v))) for k, v in layer.parameters().items())
    }
    x_before = np.array(xpcnn.to_host(x))
    xpcnn.check_layer_gradients(layer, x)
    # forward and backward never mutate their inputs or the parameters (without a learning rate)
    np.testing.assert_array_equal(xpcnn.to_host(x), x_before)
    for k, v in layer.parameters().items():
        np.testing.assert_array_equal(xpcnn.to_host(v), before[k])
    for name, g in layer.gradients().items():
        p = layer.parameters()[name]
        assert tuple(g.shape) == tuple(p.shape) and g.dtype == p.dtype and placement_of(g) == placement_of(p)


def test_dense_gradients(be, rng):
    layer = xpcnn.Dense(5, 3, seed=1, dtype="float64").to(be.place)
    layer.bias = be.asarray(rng.normal(size=3))
    _check(layer, be.asarray(rng.normal(size=(4, 5))))


@pytest.mark.parametrize("n", [1, 3])
def test_dense_weight_gradient_is_eq9_at_every_batch_size(be, rng, n):
    """``dE/dW = dY^T X`` (eq. 9); at batch 1 it is computed as the outer product, each entry
    one product, so it equals the matrix product exactly."""
    layer = xpcnn.Dense(6, 4, seed=0, dtype="float64").to(be.place)
    x, dy = rng.normal(size=(n, 6)), rng.normal(size=(n, 4))
    layer.forward(be.asarray(x))
    layer.backward(be.asarray(dy))
    d_w = be.to_host(layer.grads["weights"])
    if n == 1:
        np.testing.assert_array_equal(d_w, dy.T * x)
    np.testing.assert_allclose(d_w, dy.T @ x, rtol=1e-14)
    _check(layer, be.asarray(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_shape=(2, 6, 5), kernel_size=3, depth=3),
        dict(input_shape=(1, 7, 6), kernel_size=(2, 3), depth=2, bias="pixel"),
        dict(input_shape=(3, 7, 7), kernel_size=3, depth=2, padding=1, stride=2),
        dict(input_shape=(2, 6, 8), kernel_size=(3, 2), depth=2, padding=(2, 1), stride=(1, 3), bias="none"),
        dict(input_shape=(2, 5, 5), kernel_size=3, depth=1, padding="same"),
    ],
    ids=["valid", "pixel-bias", "pad-stride", "asym", "same"],
)
def test_convolutional_gradients(be, rng, kwargs):
    layer = xpcnn.Convolutional(**kwargs, seed=2, dtype="float64").to(be.place)
    if "biases" in layer.param_names:
        layer.biases = be.asarray(rng.normal(size=tuple(layer.biases.shape)))
    x = be.asarray(rng.normal(size=(2, *kwargs["input_shape"])))
    _check(layer, x)


def test_convolutional_forward_is_eq17(rng):
    layer = xpcnn.Convolutional((2, 5, 4), 3, 2, bias="pixel", seed=0, dtype="float64")
    layer.biases = rng.normal(size=(2, 3, 2))
    x = rng.normal(size=(1, 2, 5, 4))
    y = layer.forward(x)
    k = layer.kernels
    for i in range(2):
        expected = layer.biases[i] + sum(xpcnn.correlate2d(x[0, j], k[i, j], mode="valid") for j in range(2))
        np.testing.assert_allclose(y[0, i], expected, rtol=1e-12)


def test_outputs_keep_namespace_device_dtype(be, rng):
    for dtype in ("float32", "float64"):
        conv = xpcnn.Convolutional((1, 6, 6), 3, 2, seed=0, dtype=dtype).to(be.place)
        x = be.asarray(rng.normal(size=(3, 1, 6, 6)), dtype)
        y = conv.forward(x)
        assert dtype_name(y.dtype) == dtype and placement_of(y) == be.place
        dx = conv.backward(be.asarray(np.ones((3, 2, 4, 4)), dtype))
        assert dtype_name(dx.dtype) == dtype and placement_of(dx) == be.place


def test_same_seed_same_weights_everywhere(be):
    a = xpcnn.Dense(4, 3, seed=7)
    b = xpcnn.Dense(4, 3, seed=7).to(be.place)
    np.testing.assert_array_equal(xpcnn.to_host(a.weights), xpcnn.to_host(b.weights))
    assert dtype_name(b.weights.dtype) == "float32"


def test_backward_with_learning_rate_is_gradient_descent(rng):
    layer = xpcnn.Dense(3, 2, seed=0, dtype="float64")
    w0 = np.array(layer.weights)
    x = rng.normal(size=(4, 3))
    layer.forward(x)
    g = rng.normal(size=(4, 2))
    layer.backward(g, learning_rate=0.1)
    np.testing.assert_allclose(layer.weights, w0 - 0.1 * g.T @ x, rtol=1e-12)
    with pytest.raises(ValueError, match="Received learning_rate=-1"):
        layer.backward(g, learning_rate=-1)


def test_empty_batch_and_noncontiguous(be, rng):
    conv = xpcnn.Convolutional((2, 5, 5), 3, 3, seed=0, dtype="float64").to(be.place)
    y = conv.forward(be.asarray(np.zeros((0, 2, 5, 5))))
    assert tuple(y.shape) == (0, 3, 3, 3)
    dense = xpcnn.Dense(4, 2, seed=0, dtype="float64").to(be.place)
    x = rng.normal(size=(4, 3))
    xt = be.xp.matrix_transpose(be.asarray(x))  # a transposed (non-contiguous) view
    np.testing.assert_allclose(
        be.to_host(dense.forward(xt)), x.T @ xpcnn.to_host(dense.weights).T, rtol=1e-12
    )


class TestBadInput:
    def test_dense(self, be):
        layer = xpcnn.Dense(4, 2, dtype="float64").to(be.place)
        with pytest.raises(RuntimeError, match=r"Dense: backward\(\) was called before forward\(\)"):
            layer.backward(be.asarray(np.ones((1, 2))))
        with pytest.raises(ValueError, match="rank 2.*Did you forget a Reshape or Flatten"):
            layer.forward(be.asarray(np.ones((1, 2, 2))))
        with pytest.raises(ValueError, match="expected 4 input features, received 3"):
            layer.forward(be.asarray(np.ones((1, 3))))
        with pytest.raises(TypeError, match="floating dtype.*received dtype int64.*Hint: convert and scale"):
            layer.forward(be.asarray(np.ones((1, 4), dtype=np.int64), dtype="int64"))
        with pytest.raises(TypeError, match="has dtype float32 but the parameters are float64"):
            layer.forward(be.asarray(np.ones((1, 4)), dtype="float32"))
        with pytest.raises(TypeError, match="expected the input to be an array, received list"):
            layer.forward([[1.0, 2.0, 3.0, 4.0]])
        with pytest.raises(ValueError, match="Received output_size=0"):
            xpcnn.Dense(3, 0)

    def test_data_on_another_placement(self, be):
        """NumPy data into a model elsewhere, and data from elsewhere into a NumPy model."""
        import array_api_strict as strict

        other = xpcnn.backend.Placement.of(strict, strict.Device("device1"))
        if be.place == other:
            other = xpcnn.placement("cpu")
        layer = xpcnn.Dense(4, 2, dtype="float64").to(be.place)
        x = other.asarray(np.ones((1, 4)), dtype="float64")
        with pytest.raises(
            ValueError,
            match=re.escape(f"the input is on {other.name} but the parameters are on {be.place.name}"),
        ):
            layer.forward(x)

    def test_convolutional(self, be):
        conv = xpcnn.Convolutional((3, 6, 6), 3, 2, dtype="float64").to(be.place)
        with pytest.raises(ValueError, match="expected input of rank 4"):
            conv.forward(be.asarray(np.ones((3, 6, 6))))
        with pytest.raises(ValueError, match="looks channels-last"):
            conv.forward(be.asarray(np.ones((2, 6, 6, 3))))
        with pytest.raises(
            ValueError, match=r"expected input of shape \(n, 3, 6, 6\), received \(2, 1, 6, 6\)"
        ):
            conv.forward(be.asarray(np.ones((2, 1, 6, 6))))
        with pytest.raises(ValueError, match="kernel height 7 is larger than the padded input height 6"):
            xpcnn.Convolutional((3, 6, 6), 7, 2)
        with pytest.raises(ValueError, match="Received depth=0"):
            xpcnn.Convolutional((3, 6, 6), 3, 0)
        with pytest.raises(ValueError, match="strictly positive integers for stride"):
            xpcnn.Convolutional((3, 6, 6), 3, 2, stride=0)
        with pytest.raises(ValueError, match="non-negative integers for padding"):
            xpcnn.Convolutional((3, 6, 6), 3, 2, padding=-1)
        with pytest.raises(ValueError, match="strictly positive integers for kernel_size"):
            xpcnn.Convolutional((3, 6, 6), 0, 2)


def test_convolutional_results_are_fresh_arrays(be, rng):
    """Forward adds the bias in place and the ops reuse cached work buffers: a later call must
    never change an earlier output or gradient (nothing returned aliases a buffer)."""
    conv = xpcnn.Convolutional((8, 6, 6), 3, 8, padding=1, seed=0, dtype="float64").to(be.place)
    conv.biases = be.asarray(rng.normal(size=8))
    x1, x2 = be.asarray(rng.normal(size=(2, 8, 6, 6))), be.asarray(rng.normal(size=(2, 8, 6, 6)))
    g1, g2 = be.asarray(rng.normal(size=(2, 8, 6, 6))), be.asarray(rng.normal(size=(2, 8, 6, 6)))
    y1 = conv.forward(x1)
    dx1 = conv.backward(g1)
    dk1 = conv.gradients()["kernels"]
    saved = [np.array(be.to_host(a)) for a in (y1, dx1, dk1)]
    conv.forward(x2)
    conv.backward(g2)
    for before, a in zip(saved, (y1, dx1, dk1), strict=True):
        np.testing.assert_array_equal(be.to_host(a), before)


class TestParameterRules:
    def test_set_parameters_copies_and_never_casts(self, be):
        layer = xpcnn.Dense(3, 2, dtype="float64").to(be.place)
        host = np.ones((2, 3))
        layer.set_parameters({"weights": host})
        host[...] = 5.0  # the caller's array changes afterwards; the weights must not
        np.testing.assert_array_equal(xpcnn.to_host(layer.weights), 1.0)
        assert placement_of(layer.weights) == be.place
        with pytest.raises(TypeError, match="parameter 'weights' must have dtype float64, received float32"):
            layer.set_parameters({"weights": np.ones((2, 3), dtype=np.float32)})
        with pytest.raises(ValueError, match=r"parameter 'bias' must have shape \(2,\), received \(3,\)"):
            layer.set_parameters({"bias": np.ones(3)})

    def test_learning_rate_never_upcasts_and_bad_rate_changes_nothing(self, rng):
        layer = xpcnn.Dense(3, 2, seed=0)  # float32
        x = rng.normal(size=(4, 3)).astype("float32")
        layer.forward(x)
        g = np.ones((4, 2), dtype="float32")
        layer.backward(g, learning_rate=np.float64(0.1))
        assert layer.weights.dtype == np.float32 and layer.bias.dtype == np.float32
        before = layer.weights.copy()
        layer.grads = {}
        with pytest.raises(
            ValueError, match=r"Dense: Expected a strictly positive, finite value. Received learning_rate=nan"
        ):
            layer.backward(g, learning_rate=float("nan"))
        np.testing.assert_array_equal(layer.weights, before)
        assert layer.grads == {}  # backward did not run

    def test_output_gradient_on_another_placement(self, be):
        import array_api_strict as strict

        other = xpcnn.backend.Placement.of(strict, strict.Device("device1"))
        if be.place == other:
            other = xpcnn.placement("cpu")
        layer = xpcnn.Dense(3, 2, dtype="float64").to(be.place)
        layer.forward(be.asarray(np.ones((1, 3))))
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"output_gradient is on {other.name} but the forward input was on {be.place.name}"
            ),
        ):
            layer.backward(other.asarray(np.ones((1, 2)), dtype="float64"))

    def test_convolutional_sizes(self):
        with pytest.raises(ValueError, match=r"Received input_shape\[0\]=1.7"):
            xpcnn.Convolutional((1.7, 5, 5), 3, 2)
        with pytest.raises(ValueError, match=r"Received input_shape\[2\]=True"):
            xpcnn.Convolutional((1, 5, True), 3, 2)
        conv = xpcnn.Convolutional((np.int64(1), 5, 5), np.int64(3), np.int64(2))
        assert conv.kernel_size == (3, 3) and conv.depth == 2
        with pytest.raises(ValueError, match='Convolutional: padding="same" needs an odd kernel size'):
            xpcnn.Convolutional((1, 5, 5), 2, 2, padding="same")
