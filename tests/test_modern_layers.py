"""BatchNorm, Dropout, GlobalAvgPool2D / GlobalMaxPool2D and the training / evaluation modes
(issue 11): float64 gradient checks on every backend in both modes, PyTorch as the oracle
(1e-10), the running statistics and the dropout masks against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

import xpcnn
from xpcnn.backend import dtype_name, placement_of
from xpcnn.layers.dropout import _M32, _MIX, _key


def _keeps_placement(be, y, x):
    assert placement_of(y) == placement_of(x) and dtype_name(y.dtype) == dtype_name(x.dtype)
    assert type(y) is type(x)


# ------------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 4)], ids=["features", "nchw"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_gradients(be, rng, shape, training):
    layer = xpcnn.BatchNorm(dtype="float64").to(be.place)
    x = be.asarray(rng.standard_normal(shape) * 2 + 1)
    layer.forward(x)  # built, and the running statistics moved once
    layer.set_parameters(
        {"gamma": be.asarray(rng.standard_normal(3)), "beta": be.asarray(rng.standard_normal(3))}
    )
    layer.train(training)
    _keeps_placement(be, layer.forward(x), x)
    xpcnn.check_layer_gradients(layer, x)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 4)], ids=["features", "nchw"])
def test_batchnorm_matches_pytorch_in_both_modes(rng, shape):
    torch = pytest.importorskip("torch")
    ours = xpcnn.BatchNorm(momentum=0.3, eps=1e-3, dtype="float64")
    theirs = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        3, momentum=0.3, eps=1e-3, dtype=torch.float64
    )
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    ours.build(shape[1:])
    ours.set_parameters({"gamma": gamma, "beta": beta})
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(gamma))
        theirs.bias.copy_(torch.tensor(beta))
    for step in range(3):  # training steps, then evaluation with the running statistics
        training = step < 2
        ours.train(training)
        theirs.train(training)
        x = rng.standard_normal(shape) * 3 - 1
        g = rng.standard_normal(shape)
        t = torch.tensor(x, requires_grad=True)
        ty = theirs(t)
        ty.backward(torch.tensor(g))
        y = ours.forward(x)
        dx = ours.backward(g)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(dx, t.grad.numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=0, atol=1e-12)
        theirs.weight.grad = theirs.bias.grad = None


def test_batchnorm_running_statistics_by_hand(rng):
    layer = xpcnn.BatchNorm(2, momentum=0.25, dtype="float64")
    a, b = rng.standard_normal((5, 2, 3, 3)), rng.standard_normal((5, 2, 3, 3)) + 4
    layer.forward(a)
    layer.forward(b)
    mean, var = np.zeros(2), np.ones(2)
    for x in (a, b):
        m = x.mean(axis=(0, 2, 3))
        v = x.var(axis=(0, 2, 3), ddof=1)  # the unbiased variance over the 45 values of a channel
        mean, var = 0.75 * mean + 0.25 * m, 0.75 * var + 0.25 * v
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-14)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-14)
    layer.eval()
    y = layer.forward(b)
    np.testing.assert_allclose(
        y, (b - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5), rtol=1e-13
    )
    assert np.array_equal(layer.running_mean, mean)  # evaluation does not move them


def test_batchnorm_refuses_bad_input_clearly():
    with pytest.raises(ValueError, match=r"BatchNorm: Expected momentum in \(0, 1\]"):
        xpcnn.BatchNorm(momentum=0)
    with pytest.raises(ValueError, match=r"BatchNorm: .*eps=-1"):
        xpcnn.BatchNorm(eps=-1)
    layer = xpcnn.BatchNorm(3, dtype="float64")
    with pytest.raises(ValueError, match=r"expected 3 channels on axis 1, received 4"):
        layer.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"more than one value per channel"):
        layer.forward(np.zeros((1, 3)))
    layer.eval().forward(np.zeros((1, 3)))  # evaluation takes a single sample


def test_batchnorm_state_moves_and_is_not_trained(rng):
    layer = xpcnn.BatchNorm(3, dtype="float64")
    assert set(layer.parameters()) == {"gamma", "beta"} and set(layer.state()) == {
        "running_mean",
        "running_var",
    }
    layer.forward(rng.standard_normal((4, 3)))
    before = {k: v.copy() for k, v in layer.state().items()}
    layer.to(dtype="float32")
    assert all(dtype_name(v.dtype) == "float32" for v in layer.state().values())
    np.testing.assert_allclose(layer.running_var, before["running_var"], rtol=1e-7)
    with pytest.raises(ValueError, match=r"state array 'running_mean' must have shape \(3,\)"):
        layer.set_state({"running_var": np.ones(3, np.float32), "running_mean": np.ones(2, np.float32)})
    np.testing.assert_allclose(layer.running_var, before["running_var"], rtol=1e-7)  # unchanged


# ------------------------------------------------------------------------------- Dropout
def _mask_by_hand(seed, step, shape, rate):
    """The documented mask, element by element with Python integers."""
    key = _key(seed, step)
    keep = []
    for i in range(int(np.prod(shape))):
        h = (i ^ key) & _M32
        for _ in range(3):
            h = ((h ^ (h >> 16)) * _MIX) & _M32
        h ^= h >> 16
        keep.append(h >= int(rate * 2**32))
    return np.array(keep).reshape(shape)


def test_dropout_masks_by_hand_and_identical_on_every_backend(be, rng):
    x = rng.standard_normal((3, 4, 5)) + 10  # never zero
    layer = xpcnn.Dropout(0.4, seed=17)
    y0 = be.to_host(layer.forward(be.asarray(x)))
    y1 = be.to_host(layer.forward(be.asarray(x)))
    for step, y in enumerate((y0, y1)):
        keep = _mask_by_hand(17, step, x.shape, 0.4)
        np.testing.assert_array_equal(y != 0, keep)
        np.testing.assert_allclose(y[keep], x[keep] / 0.6, rtol=1e-15)
    assert layer.steps == 2 and not np.array_equal(y0 != 0, y1 != 0)  # a new mask each step


def test_dropout_keeps_the_expected_fraction():
    layer = xpcnn.Dropout(0.2, seed=3)
    kept = layer.mask(xpcnn.placement("cpu").xp, (200_000,), None, step=0).mean()
    assert abs(kept - 0.8) < 0.005  # 0.8 +- 5 standard deviations (0.0009)


def test_dropout_gradients_and_evaluation_identity(be, rng):
    x = be.asarray(rng.standard_normal((4, 6)))

    class Pinned(xpcnn.Dropout):  # one mask for every forward of the finite differences
        def _forward(self, xp, x):
            self.steps = 5
            return super()._forward(xp, x)

    xpcnn.check_layer_gradients(Pinned(0.5, seed=1), x)
    layer = xpcnn.Dropout(0.5, seed=1).eval()
    y = layer.forward(x)
    _keeps_placement(be, y, x)
    np.testing.assert_array_equal(be.to_host(y), be.to_host(x))
    assert layer.steps == 0
    xpcnn.check_layer_gradients(layer, x)


def test_dropout_refuses_bad_arguments():
    for rate in (1.0, -0.1, "half", True):
        with pytest.raises(ValueError, match=r"Dropout: Expected rate in \[0, 1\)"):
            xpcnn.Dropout(rate)
    with pytest.raises(TypeError, match=r"Dropout: Expected seed"):
        xpcnn.Dropout(0.5, seed=-1)


# ------------------------------------------------------------------------- global pooling
def test_global_pooling_gradients_and_pytorch(be, rng):
    torch = pytest.importorskip("torch")
    host = rng.standard_normal((3, 4, 5, 6))
    x = be.asarray(host)
    for layer, oracle in (
        (xpcnn.GlobalAvgPool2D(), lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1).flatten(1)),
        (xpcnn.GlobalMaxPool2D(), lambda t: torch.nn.functional.adaptive_max_pool2d(t, 1).flatten(1)),
    ):
        y = layer.forward(x)
        _keeps_placement(be, y, x)
        g = rng.standard_normal((3, 4))
        dx = layer.backward(be.asarray(g))
        t = torch.tensor(host, requires_grad=True)
        oracle(t).backward(torch.tensor(g))
        np.testing.assert_allclose(be.to_host(y), oracle(torch.tensor(host)).numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(be.to_host(dx), t.grad.numpy(), rtol=0, atol=1e-12)
        xpcnn.check_layer_gradients(layer, x)
        assert layer.output_shape((4, 5, 6)) == (4,)


def test_global_max_pool_propagates_nan(be):
    host = np.arange(2 * 4, dtype=np.float64).reshape(1, 2, 2, 2)
    host[0, 0, 0, 1] = host[0, 0, 1, 1] = np.nan
    layer = xpcnn.GlobalMaxPool2D()
    y = be.to_host(layer.forward(be.asarray(host)))
    assert np.isnan(y[0, 0]) and y[0, 1] == 7
    dx = be.to_host(layer.backward(be.asarray(np.ones((1, 2)))))
    np.testing.assert_array_equal(dx[0, 0], [[0, 1], [0, 0]])  # the first NaN
    np.testing.assert_array_equal(dx[0, 1], [[0, 0], [0, 1]])


# ------------------------------------------------------------------------------- modes
def _net(seed=0):
    return xpcnn.Sequential(
        [
            xpcnn.Dense(4, seed=seed),
            xpcnn.BatchNorm(),
            xpcnn.ReLU(),
            xpcnn.Dropout(0.5, seed=seed),
            xpcnn.Dense(3, seed=seed),
        ],
        input_shape=(5,),
    )


def test_fit_trains_in_training_mode_and_evaluation_runs_in_evaluation_mode(rng):
    model = _net()
    x, y = rng.standard_normal((40, 5)).astype(np.float32), rng.integers(0, 3, 40)
    seen = []

    class Watch(xpcnn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(self.model.training)

    model.eval()
    model.fit(x, y, loss="softmax_crossentropy", optimizer="adam", batch_size=10, epochs=2, progress=False,
              validation_data=(x, y), callbacks=[Watch()])  # fmt: skip
    assert seen and all(seen)  # every step in training mode
    assert not model.training  # the mode before fit is back
    dropout = model.layers[3]
    steps = dropout.steps
    assert steps == 8  # 2 epochs x 4 batches: validation did not draw masks
    model.train()
    p1, p2 = model.predict(x), model.predict(x)  # evaluation mode: no dropout, running statistics
    np.testing.assert_array_equal(p1, p2)
    assert dropout.steps == steps and model.training
    model.evaluate(x, y)
    assert dropout.steps == steps and model.training


def test_one_seed_one_model_on_every_backend(be):
    a, b = _net(seed=3), _net(seed=3).to(be.place)
    for la, lb in zip(a.layers, b.layers, strict=True):
        for name, value in la.tensors().items():
            np.testing.assert_array_equal(xpcnn.to_host(value), be.to_host(lb.tensors()[name]))
