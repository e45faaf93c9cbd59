"""A whole small network, conv -> activation -> reshape -> dense -> softmax cross-entropy,
checked end to end in float64 on every backend.

The layers are chained by hand (forward in order, backward in reverse, notes 2.1), so this
checks the layers and the loss together without depending on Sequential.
"""

import numpy as np
import pytest

import xpcnn
from xpcnn.backend import dtype_name, placement_of


def forward(layers, x):
    for layer in layers:
        x = layer.forward(x)
    return x


def backward(layers, output_gradient):
    for layer in reversed(layers):
        output_gradient = layer.backward(output_gradient)
    return output_gradient


def build(be, rng, *, input_shape, conv, activation, flatten, classes):
    c = xpcnn.Convolutional(input_shape, **conv, seed=1, dtype="float64").to(be.place)
    if "biases" in c.param_names:  # non-zero biases, so their gradients matter
        c.biases = be.asarray(0.1 * rng.normal(size=tuple(c.biases.shape)))
    features = int(np.prod(c.output_shape()))
    shape_layer = xpcnn.Flatten() if flatten else xpcnn.Reshape(c.output_shape(), (features,))
    dense = xpcnn.Dense(features, classes, seed=2, dtype="float64").to(be.place)
    dense.bias = be.asarray(0.1 * rng.normal(size=classes))
    return [c, activation(), shape_layer, dense]


NETWORKS = {
    "tanh-valid": dict(input_shape=(2, 6, 6), conv=dict(kernel_size=3, depth=3), activation=xpcnn.Tanh),
    "sigmoid-pad-stride-pixel-bias": dict(
        input_shape=(3, 7, 6),
        conv=dict(kernel_size=(3, 2), depth=2, padding=1, stride=2, bias="pixel"),
        activation=xpcnn.Sigmoid,
    ),
    "relu-flatten": dict(
        input_shape=(1, 6, 5), conv=dict(kernel_size=2, depth=2), activation=xpcnn.ReLU, flatten=True
    ),
}


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("target", ["labels", "one-hot"])
def test_network_gradients_against_finite_differences(be, rng, name, target):
    spec = dict(NETWORKS[name])
    flatten = spec.pop("flatten", False)
    classes, n = 4, 3
    layers = build(be, rng, **spec, flatten=flatten, classes=classes)
    loss = xpcnn.SoftmaxCrossEntropy()
    x = be.asarray(rng.normal(size=(n, *spec["input_shape"])))
    labels = rng.integers(0, classes, size=n)
    t = be.asarray(labels, "int64") if target == "labels" else be.asarray(np.eye(classes)[labels])

    def total(x_):
        return loss(forward(layers, x_), t)

    dx = backward(layers, loss.gradient(forward(layers, x), t))
    analytic = {("input", "x"): dx}
    for i, layer in enumerate(layers):
        for pname, g in layer.gradients().items():
            p = layer.parameters()[pname]
            assert tuple(g.shape) == tuple(p.shape) and g.dtype == p.dtype and placement_of(g) == be.place
            analytic[(i, pname)] = g
    assert set(analytic) == {("input", "x"), (0, "kernels"), (0, "biases"), (3, "weights"), (3, "bias")}

    numeric = {("input", "x"): xpcnn.numerical_gradient(total, x)}
    for i, layer in enumerate(layers):
        for pname, value in layer.parameters().items():

            def f(p, layer=layer, pname=pname):
                saved = getattr(layer, pname)
                setattr(layer, pname, p)
                try:
                    return total(x)
                finally:
                    setattr(layer, pname, saved)

            numeric[(i, pname)] = xpcnn.numerical_gradient(f, value)

    for key, g in analytic.items():
        # reliability.md: |analytic - numeric| <= 1e-5 + 1e-3 |numeric|, elementwise
        np.testing.assert_allclose(be.to_host(g), numeric[key], rtol=1e-3, atol=1e-5, err_msg=str(key))
        assert np.abs(numeric[key]).max() > 1e-6, f"{key}: a vanishing gradient checks nothing"


def _direction(be, rng, shapes):
    return [be.asarray(rng.normal(size=s)) for s in shapes]


def test_network_random_direction_at_a_realistic_shape(be, rng):
    """<g, (f(t + e v) - f(t - e v)) / 2e> against <J^T g, v> over the input and every
    parameter at once, for the logits (random g) and for the loss (g = 1); relative 1e-5."""
    layers = build(
        be,
        rng,
        input_shape=(3, 16, 16),
        conv=dict(kernel_size=3, depth=8, padding=1),
        activation=xpcnn.Tanh,
        flatten=False,
        classes=10,
    )
    loss = xpcnn.SoftmaxCrossEntropy()
    x = be.asarray(rng.normal(size=(8, 3, 16, 16)))
    t = be.asarray(rng.integers(0, 10, size=8), "int64")
    params = [(layer, name) for layer in layers for name in layer.param_names]
    values = [x] + [getattr(layer, name) for layer, name in params]
    v = _direction(be, rng, [tuple(a.shape) for a in values])
    eps = 1e-6

    def at(step):
        """The logits and the loss at t + step v (parameters restored afterwards)."""
        saved = [getattr(layer, name) for layer, name in params]
        try:
            for (layer, name), value, d in zip(params, values[1:], v[1:], strict=True):
                setattr(layer, name, value + step * d)
            logits = forward(layers, values[0] + step * v[0])
            return be.to_host(logits), float(loss(logits, t))
        finally:
            for (layer, name), value in zip(params, saved, strict=True):
                setattr(layer, name, value)

    (plus_logits, plus_loss), (minus_logits, minus_loss) = at(eps), at(-eps)

    def directional(g):
        """<J^T g, v> from one backward pass with output gradient g."""
        dx = backward(layers, g)
        grads = [dx] + [layer.gradients()[name] for layer, name in params]
        return sum(float(be.xp.sum(a * d)) for a, d in zip(grads, v, strict=True))

    # the logits with a random output gradient g
    logits = forward(layers, x)
    g_host = rng.normal(size=tuple(logits.shape))
    expected = float(np.sum(g_host * (plus_logits - minus_logits)) / (2 * eps))
    got = directional(be.asarray(g_host))
    assert got == pytest.approx(expected, rel=1e-5)

    # the loss: g = dE/dlogits from the loss itself
    logits = forward(layers, x)
    expected = (plus_loss - minus_loss) / (2 * eps)
    got = directional(loss.gradient(logits, t))
    assert got == pytest.approx(expected, rel=1e-5)
    assert abs(expected) > 1e-3  # the check has something to compare


def test_network_float32_forward_and_backward_follow_the_input(be, rng):
    layers = build(
        be,
        rng,
        input_shape=(2, 6, 6),
        conv=dict(kernel_size=3, depth=3),
        activation=xpcnn.ReLU,
        flatten=True,
        classes=4,
    )
    for layer in layers:
        layer.to(be.place, dtype="float32")
    x = be.asarray(rng.normal(size=(5, 2, 6, 6)), "float32")
    t = be.asarray(rng.integers(0, 4, size=5), "int64")
    loss = xpcnn.SoftmaxCrossEntropy()
    logits = forward(layers, x)
    value, g = loss.value_and_gradient(logits, t)
    dx = backward(layers, g)
    for a in (value, g, dx):
        assert dtype_name(a.dtype) == "float32" and placement_of(a) == be.place
    assert tuple(dx.shape) == (5, 2, 6, 6) and np.isfinite(float(value))
