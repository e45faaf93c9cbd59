"""Cross-correlation and convolution: the notes' worked examples and the NCHW primitive."""

import re

import numpy as np
import pytest

import xpcnn
from xpcnn import testing as reference

NOTES_INPUT = [[1, 6, 2], [5, 3, 1], [7, 0, 4]]
NOTES_KERNEL = [[1, 2], [-1, 0]]


def test_eq14_valid_cross_correlation(be):
    y = xpcnn.correlate2d(be.asarray(NOTES_INPUT), be.asarray(NOTES_KERNEL), mode="valid")
    np.testing.assert_array_equal(be.to_host(y), [[8, 7], [4, 5]])
    assert xpcnn.backend.placement_of(y) == be.place


def test_eq16_full_cross_correlation(be):
    y = xpcnn.correlate2d(be.asarray(NOTES_INPUT), be.asarray(NOTES_KERNEL), mode="full")
    expected = [[0, -1, -6, -2], [2, 8, 7, 1], [10, 4, 5, -3], [14, 7, 8, 4]]
    np.testing.assert_array_equal(be.to_host(y), expected)


@pytest.mark.parametrize("mode", ["valid", "full"])
def test_eq15_convolution_is_correlation_with_rot180(be, rng, mode):
    x, k = rng.normal(size=(6, 5)), rng.normal(size=(3, 2))
    conv = be.to_host(xpcnn.convolve2d(be.asarray(x), be.asarray(k), mode=mode))
    corr = be.to_host(xpcnn.correlate2d(be.asarray(x), be.asarray(k[::-1, ::-1].copy()), mode=mode))
    np.testing.assert_allclose(conv, corr, rtol=1e-12)
    # and against the definition of convolution: y[a, b] = sum x[a - i, b - j] k[i, j] (full mode)
    if mode == "full":
        ref = np.zeros((8, 6))
        for i in range(3):
            for j in range(2):
                ref[i : i + 6, j : j + 5] += k[i, j] * x
        np.testing.assert_allclose(conv, ref, rtol=1e-12, atol=1e-12)


def test_2d_bad_input(be):
    x = be.asarray(np.ones((3, 3)))
    with pytest.raises(
        ValueError, match=r'correlate2d: Expected mode "valid" or "full"\. Received mode=\'same\'\.'
    ):
        xpcnn.correlate2d(x, x, mode="same")
    with pytest.raises(ValueError, match="must fit inside the input"):
        xpcnn.correlate2d(be.asarray(np.ones((2, 2))), x)
    with pytest.raises(ValueError, match="expected a 2-D input"):
        xpcnn.correlate2d(be.asarray(np.ones((1, 3, 3))), x)
    with pytest.raises(TypeError, match="expected input to be an array"):
        xpcnn.correlate2d([[1.0]], x)


SHAPES = [
    # n, c_I, c_O, h, w, kh, kw, stride, padding
    (2, 3, 4, 7, 9, 3, 2, (1, 1), (0, 0)),
    (3, 2, 5, 8, 7, 3, 3, (2, 3), (1, 2)),
    (1, 1, 1, 5, 5, 5, 5, (1, 1), (0, 0)),
    (2, 2, 3, 6, 5, 1, 1, (2, 1), (0, 1)),
    (2, 1, 8, 11, 10, 3, 3, (1, 1), (1, 1)),
    (1, 5, 2, 4, 6, 4, 3, (3, 2), (2, 0)),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nchw_primitive_matches_per_sample_loops(be, rng, shape, dtype):
    n, c, o, h, w, kh, kw, stride, padding = shape
    x, k = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, kh, kw))
    y = xpcnn.conv2d_forward(be.asarray(x, dtype), be.asarray(k, dtype), stride=stride, padding=padding)
    y_ref = reference.conv2d_forward(x, k, stride, padding)
    dy = rng.normal(size=y_ref.shape)
    dx, dk = xpcnn.conv2d_backward(
        be.asarray(x, dtype), be.asarray(k, dtype), be.asarray(dy, dtype), stride=stride, padding=padding
    )
    dx_ref, dk_ref = reference.conv2d_backward(x, k, dy, stride, padding)
    for got, ref in ((y, y_ref), (dx, dx_ref), (dk, dk_ref)):
        assert xpcnn.backend.dtype_name(got.dtype) == dtype
        assert xpcnn.backend.placement_of(got) == be.place
        host = be.to_host(got)
        assert host.shape == ref.shape
        if dtype == "float64":
            np.testing.assert_allclose(host, ref, rtol=1e-7, atol=1e-7 * np.abs(ref).max())
        else:
            np.testing.assert_allclose(host, ref, rtol=0, atol=1e-5 * np.abs(ref).max() * 10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nchw_forward_too_large_for_the_kernel_tile(be, rng, dtype):
    """A stride whose shared input tile cannot fit 48 KiB (float64 from stride 4, float32 from 6;
    see xpcnn/ops/cuda.py): on CuPy the forward takes the Array-API path (_flat_shift) instead
    of the RawKernel, and must agree with the loops like every other path."""
    stride = 4 if dtype == "float64" else 6
    x, k = rng.normal(size=(2, 2, 20, 21)), rng.normal(size=(3, 2, 3, 3))
    y = xpcnn.conv2d_forward(be.asarray(x, dtype), be.asarray(k, dtype), stride=stride, padding=1)
    assert xpcnn.backend.placement_of(y) == be.place
    ref = reference.conv2d_forward(x, k, (stride, stride), (1, 1))
    np.testing.assert_allclose(be.to_host(y), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_nchw_empty_batch(be):
    x = be.asarray(np.zeros((0, 2, 5, 5)))
    k = be.asarray(np.ones((3, 2, 3, 3)))
    y = xpcnn.conv2d_forward(x, k)
    assert tuple(y.shape) == (0, 3, 3, 3)
    dx, dk = xpcnn.conv2d_backward(x, k, be.asarray(np.zeros((0, 3, 3, 3))))
    assert tuple(dx.shape) == (0, 2, 5, 5)
    np.testing.assert_array_equal(be.to_host(dk), 0)


def test_nchw_bad_input(be):
    x = be.asarray(np.zeros((1, 2, 5, 5)))
    k = be.asarray(np.ones((3, 2, 3, 3)))
    with pytest.raises(ValueError, match="x has 1 channels but the kernel expects 2"):
        xpcnn.conv2d_forward(be.asarray(np.zeros((1, 1, 5, 5))), k)
    with pytest.raises(ValueError, match="kernel height 3 is larger than the padded input height 2"):
        xpcnn.conv2d_forward(be.asarray(np.zeros((1, 2, 2, 5))), k)
    with pytest.raises(ValueError, match="strictly positive integers for stride"):
        xpcnn.conv2d_forward(x, k, stride=0)
    with pytest.raises(ValueError, match="non-negative integers for padding"):
        xpcnn.conv2d_forward(x, k, padding=-1)
    with pytest.raises(ValueError, match=r"expected dy of shape \(1, 3, 3, 3\)"):
        xpcnn.conv2d_backward(x, k, be.asarray(np.zeros((1, 3, 2, 2))))


def test_nchw_arrays_on_two_placements(be):
    """x, the kernel and dy must live together; the error names both placements."""
    import array_api_strict as strict

    strict_place = xpcnn.Placement.of(strict, strict.Device("device1"))
    other = xpcnn.placement("cpu") if be.name == "strict" else strict_place
    x = be.asarray(np.zeros((1, 2, 5, 5)))
    k = be.asarray(np.ones((3, 2, 3, 3)))
    k_elsewhere = other.asarray(np.ones((3, 2, 3, 3)), "float64")
    dy_elsewhere = other.asarray(np.zeros((1, 3, 3, 3)), "float64")
    here, there = re.escape(be.place.name), re.escape(other.name)
    with pytest.raises(ValueError, match=rf"conv2d_forward: the kernel is on {there} but x is on {here}\."):
        xpcnn.conv2d_forward(x, k_elsewhere)
    with pytest.raises(ValueError, match=rf"conv2d_backward: dy is on {there} but x is on {here}\."):
        xpcnn.conv2d_backward(x, k, dy_elsewhere)
    with pytest.raises(
        ValueError, match=rf"correlate2d: the kernel is on {there} but the input is on {here}\."
    ):
        xpcnn.correlate2d(x[0, 0, ...], k_elsewhere[0, 0, ...])
