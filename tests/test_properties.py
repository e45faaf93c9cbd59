"""Property-based tests (hypothesis), reliability.md "Property-based tests".

Arrays come from ``make_strategies_namespace(array_api_strict)`` and are moved to
``Device("device1")``, so any array xpcnn creates without ``device=`` fails here.  Every
property runs 100 derandomized examples without a deadline.
"""

import array_api_strict as strict
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.array_api import make_strategies_namespace

import xpcnn
from xpcnn import backend

xps = make_strategies_namespace(strict)
DEVICE = strict.Device("device1")
PLACE = xpcnn.Placement.of(strict, DEVICE)
PROPERTY = settings(max_examples=100, deadline=None, derandomize=True)


def arrays(shape, low=-10.0, high=10.0):
    """float64 arrays of ``shape`` on device1, with finite normal (or zero) elements."""
    elements = st.floats(low, high, allow_nan=False, allow_subnormal=False)
    return xps.arrays(strict.float64, shape, elements=elements).map(lambda a: a.to_device(DEVICE))


def host(a):
    return xpcnn.to_host(a)


def close(a, b, scale=1.0, rtol=1e-12):
    np.testing.assert_allclose(host(a), host(b), rtol=rtol, atol=rtol * scale)


def conv_layer(input_shape, kernel, depth, padding=0, stride=1, bias="channel", seed=0):
    layer = xpcnn.Convolutional(
        input_shape, kernel, depth, padding=padding, stride=stride, bias=bias, seed=seed, dtype="float64"
    ).to(PLACE)
    if bias != "none":
        layer.biases = PLACE.asarray(
            np.linspace(-1, 1, int(np.prod(layer.biases.shape))).reshape(layer.biases.shape)
        )
    return layer


# ------------------------------------------------------------------ shapes
@st.composite
def conv_geometry(draw):
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, h + 2 * ph)), draw(st.integers(1, w + 2 * pw))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return dict(
        n=draw(st.integers(1, 3)),
        c=c,
        h=h,
        w=w,
        k=(kh, kw),
        p=(ph, pw),
        s=(sh, sw),
        depth=draw(st.integers(1, 3)),
    )


@PROPERTY
@given(conv_geometry())
def test_conv_output_shape_matches_the_formula(g):
    layer = conv_layer((g["c"], g["h"], g["w"]), g["k"], g["depth"], padding=g["p"], stride=g["s"])
    expected_hw = tuple(
        (size + 2 * p - k) // s + 1
        for size, k, p, s in zip((g["h"], g["w"]), g["k"], g["p"], g["s"], strict=True)
    )
    x = PLACE.zeros((g["n"], g["c"], g["h"], g["w"]), "float64")
    y = layer.forward(x)
    assert tuple(y.shape) == (g["n"], g["depth"], *expected_hw)
    assert layer.output_shape((g["c"], g["h"], g["w"])) == (g["depth"], *expected_hw)
    dx = layer.backward(PLACE.zeros(tuple(y.shape), "float64"))
    assert tuple(dx.shape) == tuple(x.shape) and dx.device == DEVICE
    assert tuple(layer.gradients()["kernels"].shape) == (g["depth"], g["c"], *g["k"])


# ------------------------------------------------- one sample alone or in a batch
@PROPERTY
@given(st.data())
def test_a_sample_is_the_same_alone_or_in_a_batch(data):
    n = data.draw(st.integers(2, 4), label="n")
    stride = data.draw(st.integers(1, 2), label="stride")
    x = data.draw(arrays((n, 2, 5, 5)), label="x")
    i = data.draw(st.integers(0, n - 1), label="i")
    conv = conv_layer((2, 5, 5), 3, 3, padding=1, stride=stride, bias="pixel")
    dense = xpcnn.Dense(2 * 5 * 5, 4, seed=1, dtype="float64").to(PLACE)
    flat = strict.reshape(x, (n, 50))
    for layer, batch in ((conv, x), (dense, flat)):
        together = layer.forward(batch)
        alone = layer.forward(batch[i : i + 1, ...])
        close(together[i : i + 1, ...], alone, scale=10.0)


# ------------------------------------------------------- bias-free Dense is linear
@PROPERTY
@given(arrays((3, 5)), arrays((3, 5)), st.floats(-3, 3), st.floats(-3, 3))
def test_bias_free_dense_is_linear(x, y, a, b):
    dense = xpcnn.Dense(5, 4, seed=3, dtype="float64").to(PLACE)
    dense.bias = PLACE.zeros((4,), "float64")
    lhs = dense.forward(a * x + b * y)
    rhs = a * dense.forward(x) + b * dense.forward(y)
    close(lhs, rhs, scale=100.0, rtol=1e-11)


# ---------------------------------------------------- conv commutes with shifts
@PROPERTY
@given(
    arrays((1, 2, 9, 9)),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from([(1, 1), (2, 3), (3, 3)]),
    st.integers(0, 1),
)
def test_stride_one_conv_commutes_with_shifts_on_the_interior(big, dy, dx, kernel, padding):
    """Shift the window by (dy, dx) before the convolution, or shift the output after it:
    the same values wherever the kernel sees no padding or border (the interior)."""
    h = w = 6
    kh, kw = kernel
    conv = conv_layer((2, h, w), kernel, 2, padding=padding)
    full = xpcnn.Convolutional((2, 9, 9), kernel, 2, seed=0, dtype="float64").to(PLACE)
    full.kernels, full.biases = conv.kernels, conv.biases
    whole = full.forward(big)  # valid: output (r, s) sees input rows r..r+kh-1
    shifted = conv.forward(big[:, :, dy : dy + h, dx : dx + w])
    # output (i, j) of the shifted window sees rows dy+i-padding ... (inside the window
    # for padding <= i <= h - kh + padding), i.e. whole[dy + i - padding]
    rows = slice(padding, h - kh + padding + 1)
    cols = slice(padding, w - kw + padding + 1)
    expected = whole[:, :, dy : dy + h - kh + 1, dx : dx + w - kw + 1]
    close(shifted[:, :, rows, cols], expected, scale=100.0)


# ----------------------------------------- softmax and cross-entropy invariances
@PROPERTY
@given(st.data())
def test_softmax_rows_sum_to_one(data):
    n, c = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6))
    logits = data.draw(arrays((n, c), -1000.0, 1000.0))
    y = xpcnn.Softmax().forward(logits)
    sums = host(strict.sum(y, axis=1))
    np.testing.assert_allclose(sums, np.ones(n), rtol=0, atol=1e-12)
    assert np.all(host(y) >= 0)
    p = strict.exp(xpcnn.losses.log_softmax(strict, logits))
    close(p, y, rtol=1e-12)


@PROPERTY
@given(st.data())
def test_cross_entropy_ignores_a_constant_added_to_the_logits(data):
    n, c = data.draw(st.integers(1, 5)), data.draw(st.integers(2, 6))
    logits = data.draw(arrays((n, c), -50.0, 50.0))
    shift = data.draw(st.floats(-1000, 1000), label="shift")
    per_row = data.draw(st.booleans(), label="per_row")
    if per_row:  # a different constant for every sample still changes nothing
        shift = data.draw(arrays((n, 1), -1000.0, 1000.0), label="shifts")
    labels = data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n), label="labels")
    t = PLACE.asarray(np.array(labels), "int64")
    loss = xpcnn.SoftmaxCrossEntropy()
    moved = logits + shift
    # adding up to 1000 rounds the logits by ~1e-13 (float64): compare at 1e-10
    close(loss(moved, t), loss(logits, t), scale=1.0, rtol=1e-10)
    close(loss.gradient(moved, t), loss.gradient(logits, t), scale=1.0, rtol=1e-10)
    assert backend.placement_of(loss(moved, t)) == PLACE
