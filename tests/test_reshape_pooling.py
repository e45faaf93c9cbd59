"""Reshape, Flatten, MaxPool2D and AvgPool2D."""

import numpy as np
import pytest

import xpcnn
from xpcnn.backend import dtype_name, placement_of

POOLS = [
    dict(pool_size=2),
    dict(pool_size=3, stride=2),  # overlapping windows, 7 is not divisible by 3
    dict(pool_size=(2, 3), stride=(1, 2)),
    dict(pool_size=3, stride=2, padding=1),
    dict(pool_size=(3, 2), stride=(3, 1), padding=(1, 0)),
]
IDS = ["2", "3s2", "2x3s1x2", "3s2p1", "3x2s3x1p1x0"]


def _pool_oracle(x, kind, pool_size, stride=None, padding=0):
    """Per-window loops on the host: the definition of pooling (floor output size)."""
    kh, kw = (pool_size, pool_size) if isinstance(pool_size, int) else pool_size
    sh, sw = (kh, kw) if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.empty((*x.shape[:2], ho, wo))
    for a in range(ho):
        for b in range(wo):
            win = xp[:, :, a * sh : a * sh + kh, b * sw : b * sw + kw]
            y[:, :, a, b] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return y


def _distinct(rng, shape):
    """Distinct values at least 1 apart (shuffled): no ties, no kinks for finite differences."""
    return rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) - np.prod(shape) / 2


@pytest.mark.parametrize("kwargs", POOLS, ids=IDS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_forward_and_gradients(be, rng, kind, kwargs):
    cls = xpcnn.MaxPool2D if kind == "max" else xpcnn.AvgPool2D
    layer = cls(**kwargs)
    host = _distinct(rng, (2, 3, 7, 6))
    y = layer.forward(be.asarray(host))
    expected = _pool_oracle(host, kind, **kwargs)
    np.testing.assert_allclose(be.to_host(y), expected, rtol=1e-14)
    assert layer.output_shape((3, 7, 6)) == expected.shape[1:]
    x = be.asarray(host)
    xpcnn.check_layer_gradients(layer, x)
    np.testing.assert_array_equal(be.to_host(x), host)  # never mutated


def test_maxpool_routes_to_one_winner_on_ties(be):
    x = be.asarray(np.zeros((1, 2, 4, 5)))  # every window is a tie; the last column is dropped (floor)
    layer = xpcnn.MaxPool2D(2)
    g = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
    layer.forward(x)
    dx = be.to_host(layer.backward(be.asarray(g)))
    expected = np.zeros((1, 2, 4, 5))
    expected[:, :, 0:4:2, 0:4:2] = g  # the first element of each window (row-major) wins
    np.testing.assert_array_equal(dx, expected)
    overlapping = xpcnn.MaxPool2D(2, stride=1)  # stride < pool: gradients from overlapping windows add up
    x = be.asarray(np.array([[[[0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]]]))
    overlapping.forward(x)
    np.testing.assert_array_equal(
        be.to_host(overlapping.backward(be.asarray(np.ones((1, 1, 1, 2))))), [[[[0, 2, 0], [0, 0, 0]]]]
    )


@pytest.mark.parametrize("kwargs", POOLS, ids=IDS)
def test_maxpool_propagates_nan_as_pytorch_does(be, rng, kwargs):
    torch = pytest.importorskip("torch")
    host = _distinct(rng, (2, 3, 7, 6))
    flat = host.reshape(-1)
    flat[rng.choice(flat.size, size=12, replace=False)] = np.nan  # some windows hold two NaNs
    flat[0] = np.nan  # and one sits at a window's first position
    layer = xpcnn.MaxPool2D(**kwargs)
    y = layer.forward(be.asarray(host))
    g = rng.standard_normal(y.shape)
    dx = layer.backward(be.asarray(g))
    t = torch.tensor(host, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(
        t, kernel_size=layer.pool_size, stride=layer.stride, padding=layer.padding
    )
    ty.backward(torch.tensor(g))
    assert np.isnan(be.to_host(y)).sum() > 0
    np.testing.assert_array_equal(be.to_host(y), ty.detach().numpy())  # NaN where torch has NaN
    np.testing.assert_allclose(be.to_host(dx), t.grad.numpy(), rtol=1e-14, atol=0)  # same routing


def test_avgpool_backward_spreads_evenly():
    layer = xpcnn.AvgPool2D(2)
    layer.forward(np.ones((1, 1, 3, 4)))
    dx = layer.backward(np.full((1, 1, 1, 2), 4.0))
    np.testing.assert_array_equal(dx, [[[[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]]]])


@pytest.mark.parametrize(
    "make", [lambda: xpcnn.MaxPool2D(2), lambda: xpcnn.AvgPool2D((2, 3), stride=1)], ids=["max", "avg"]
)
def test_pooling_placement_empty_noncontiguous(be, rng, make):
    layer = make()
    for dtype in ("float32", "float64"):
        x = be.asarray(rng.normal(size=(2, 3, 4, 6)), dtype)
        y = layer.forward(x)
        dx = layer.backward(be.xp.ones_like(y))
        for out in (y, dx):
            assert dtype_name(out.dtype) == dtype and placement_of(out) == be.place
        assert tuple(dx.shape) == (2, 3, 4, 6)
    y = layer.forward(be.asarray(np.zeros((0, 3, 4, 6))))
    assert tuple(y.shape)[0] == 0 and tuple(layer.backward(be.xp.ones_like(y)).shape) == (0, 3, 4, 6)
    host = rng.normal(size=(2, 4, 6, 3))
    view = be.xp.permute_dims(be.asarray(host), (0, 3, 1, 2))  # NHWC data seen as NCHW: non-contiguous
    contiguous = be.asarray(np.ascontiguousarray(host.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(be.to_host(layer.forward(view)), be.to_host(layer.forward(contiguous)))


def test_pooling_config_round_trip():
    for layer in (xpcnn.MaxPool2D(3, stride=2, padding=1), xpcnn.AvgPool2D((2, 3))):
        rebuilt = xpcnn.REGISTRY[type(layer).__name__](**layer.config())
        assert repr(rebuilt) == repr(layer)
    assert repr(xpcnn.AvgPool2D((2, 3))) == "AvgPool2D(pool_size=[2, 3], stride=[2, 3], padding=[0, 0])"


def test_reshape_and_flatten(be, rng):
    host = rng.normal(size=(3, 2, 3, 4))
    reshape = xpcnn.Reshape((2, 3, 4), (6, 4))
    y = reshape.forward(be.asarray(host))
    np.testing.assert_array_equal(be.to_host(y), host.reshape(3, 6, 4))
    assert reshape.output_shape((2, 3, 4)) == (6, 4)
    xpcnn.check_layer_gradients(reshape, be.asarray(host))
    flatten = xpcnn.Flatten()
    np.testing.assert_array_equal(be.to_host(flatten.forward(be.asarray(host))), host.reshape(3, 24))
    assert flatten.output_shape((2, 3, 4)) == (24,)
    xpcnn.check_layer_gradients(flatten, be.asarray(host))
    assert tuple(flatten.forward(be.asarray(np.ones(4))).shape) == (4, 1)
    rebuilt = xpcnn.REGISTRY["Reshape"](**reshape.config())
    assert rebuilt.config() == {"input_shape": [2, 3, 4], "output_shape": [6, 4]}


def test_reshape_flatten_placement_empty_noncontiguous(be, rng):
    for layer in (xpcnn.Reshape((4, 3), (12,)), xpcnn.Flatten()):
        for dtype in ("float32", "float64"):
            x = be.asarray(rng.normal(size=(2, 4, 3)), dtype)
            y = layer.forward(x)
            dx = layer.backward(be.xp.ones_like(y))
            for out in (y, dx):
                assert dtype_name(out.dtype) == dtype and placement_of(out) == be.place
            assert tuple(dx.shape) == (2, 4, 3)
        empty = layer.forward(be.asarray(np.zeros((0, 4, 3))))
        assert tuple(empty.shape) == (0, 12) and tuple(layer.backward(empty).shape) == (0, 4, 3)
        host = rng.normal(size=(2, 3, 4))
        view = be.xp.permute_dims(be.asarray(host), (0, 2, 1))
        np.testing.assert_array_equal(be.to_host(layer.forward(view)), host.transpose(0, 2, 1).reshape(2, 12))


class TestBadInput:
    def test_reshape(self, be):
        with pytest.raises(
            ValueError,
            match=r"cannot reshape input_shape=\(2, 3\) \(6 elements\) into output_shape=\(4, 2\) \(8 elements\)",
        ):
            xpcnn.Reshape((2, 3), (4, 2))
        with pytest.raises(
            ValueError, match=r"strictly positive sizes in output_shape. Received output_shape=\(0, 6\)"
        ):
            xpcnn.Reshape((6,), (0, 6))
        with pytest.raises(ValueError, match="expected input_shape to be a tuple of integers"):
            xpcnn.Reshape(6, (6,))
        layer = xpcnn.Reshape((2, 3), (6,))
        with pytest.raises(
            ValueError, match=r"Reshape: expected input of shape \(n, 2, 3\), received \(4, 3, 2\)"
        ):
            layer.forward(be.asarray(np.ones((4, 3, 2))))
        with pytest.raises(RuntimeError, match=r"Flatten: backward\(\) was called before forward\(\)"):
            xpcnn.Flatten().backward(be.asarray(np.ones((2, 3))))

    def test_pooling(self, be):
        with pytest.raises(
            ValueError, match=r"Expected strictly positive integers for pool_size. Received pool_size=0"
        ):
            xpcnn.MaxPool2D(0)
        with pytest.raises(
            ValueError, match=r"strictly positive integers for stride. Received stride=\(1, 0\)"
        ):
            xpcnn.AvgPool2D(2, stride=(1, 0))
        with pytest.raises(ValueError, match="non-negative integers for padding. Received padding=-1"):
            xpcnn.MaxPool2D(2, padding=-1)
        with pytest.raises(
            ValueError, match=r"MaxPool2D: padding must be at most half the pool size. Received padding=2"
        ):
            xpcnn.MaxPool2D(3, padding=2)
        with pytest.raises(
            TypeError, match=r"AvgPool2D: Expected an int or a pair of ints\. Received pool_size='2'\."
        ):
            xpcnn.AvgPool2D("2")
        layer = xpcnn.MaxPool2D(3)
        with pytest.raises(
            ValueError, match=r"MaxPool2D: expected input of rank 4.*received shape \(2, 5, 5\)"
        ):
            layer.forward(be.asarray(np.ones((2, 5, 5))))
        with pytest.raises(ValueError, match=r"pool_size \(3, 3\) is larger than the padded input \(2, 5\)"):
            layer.forward(be.asarray(np.ones((1, 1, 2, 5))))
        with pytest.raises(TypeError, match="AvgPool2D: expected the input with a floating dtype"):
            xpcnn.AvgPool2D(2).forward(be.asarray(np.ones((1, 1, 2, 2), dtype=np.int32), "int32"))
