"""Every path of the generic convolution agrees with the per-sample loops of xpcnn.testing.

Paths of :mod:`xpcnn.ops._flat_shift`: one chunk or several (``CHUNK_BYTES``), ``dX`` by
the fold or by correlating the padded ``dY`` grid (``DX_METHOD``), one product per chunk or
per-sample products (``BATCHED``), and the work-buffer cache
(on, or evicted at every call through a tiny ``CACHE_BYTES``).  Random shapes include odd
sizes, padding, strides, rectangular kernels and one input channel.
"""

import functools

import numpy as np
import pytest

import xpcnn
from xpcnn import testing as reference
from xpcnn.ops import _flat_shift

PATHS = {  # dX method, CHUNK_BYTES, CACHE_BYTES (None: default), per-sample products
    "fold, 1 chunk": ("fold", 1 << 40, None, False),
    "correlate, 1 chunk": ("correlate", 1 << 40, None, False),
    "fold, chunks": ("fold", 1, None, False),
    "correlate, chunks": ("correlate", 1, None, False),
    "fold, batched, chunks": ("fold", 2000, None, True),
    "correlate, batched, 1 chunk": ("correlate", 1 << 40, None, True),
    "auto, no cache": ("auto", 700, 1, "auto"),
}


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    method, chunk, cache, batched = PATHS[request.param]
    monkeypatch.setattr(_flat_shift, "DX_METHOD", method)
    monkeypatch.setattr(_flat_shift, "BATCHED", batched)
    monkeypatch.setattr(_flat_shift, "CHUNK_BYTES", chunk)
    if cache is not None:
        monkeypatch.setattr(_flat_shift, "CACHE_BYTES", cache)
    _flat_shift.clear_buffers()
    yield request.param
    _flat_shift.clear_buffers()


def _random_case(seed):
    r = np.random.default_rng(seed)
    n, c, o = int(r.integers(1, 5)), int(r.choice([1, 1, 2, 3, 5])), int(r.integers(1, 6))
    kh, kw = int(r.integers(1, 5)), int(r.integers(1, 5))
    ph, pw = int(r.integers(0, 3)), int(r.integers(0, 3))
    sh, sw = int(r.integers(1, 4)), int(r.integers(1, 4))
    h = int(r.integers(max(1, kh - 2 * ph), 12))
    w = int(r.integers(max(1, kw - 2 * pw), 12))
    return n, c, o, h, w, kh, kw, (sh, sw), (ph, pw)


CASES = [_random_case(seed) for seed in range(8)] + [
    (3, 1, 8, 28, 28, 3, 3, (1, 1), (0, 0)),  # the first LeNet layer (C_in = 1)
    (2, 8, 16, 13, 11, 3, 3, (1, 1), (1, 1)),  # odd sizes, "same" padding
    (5, 3, 2, 9, 7, 3, 3, (2, 2), (0, 0)),  # c_I > c_O, stride 2
    (1, 2, 3, 3, 3, 3, 3, (1, 1), (0, 0)),  # a 1x1 output
]


@functools.cache
def _data(case):
    """Seeded inputs and the loops' results for ``case``, computed once (the loops are slow)."""
    n, c, o, h, w, kh, kw, stride, padding = case
    rng = np.random.default_rng(CASES.index(case))
    x, k = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, kh, kw))
    y_ref = reference.conv2d_forward(x, k, stride, padding)
    dy = rng.normal(size=y_ref.shape)
    return (x, k, dy), (y_ref, *reference.conv2d_backward(x, k, dy, stride, padding))


def _run(be, case, dtype):
    (x, k, dy), ref = _data(case)
    args = dict(stride=case[7], padding=case[8])
    y = xpcnn.conv2d_forward(be.asarray(x, dtype), be.asarray(k, dtype), **args)
    dx, dk = xpcnn.conv2d_backward(be.asarray(x, dtype), be.asarray(k, dtype), be.asarray(dy, dtype), **args)
    return (y, dx, dk), ref


@pytest.mark.parametrize("case", CASES, ids=str)
def test_paths_match_reference(be, path, case):
    got, ref = _run(be, case, "float64")
    for g, r in zip(got, ref, strict=True):
        host = be.to_host(g)
        assert host.shape == r.shape
        np.testing.assert_allclose(host, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES[-4:], ids=str)
def test_paths_float32(be, path, case):
    got, ref = _run(be, case, "float32")
    for g, r in zip(got, ref, strict=True):
        assert xpcnn.backend.dtype_name(g.dtype) == "float32"
        np.testing.assert_allclose(be.to_host(g), r, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(r).max()))


def test_input_gradient_false(be, path):
    case = CASES[-3]
    (x, k, dy), (_, _, dk_ref) = _data(case)
    dx, dk = xpcnn.conv2d_backward(
        be.asarray(x), be.asarray(k), be.asarray(dy), stride=case[7], padding=case[8], input_gradient=False
    )
    assert dx is None
    np.testing.assert_allclose(be.to_host(dk), dk_ref, rtol=1e-10, atol=1e-10)


def test_results_never_alias_work_buffers(be, path, rng):
    """Two calls with the same shapes, both results kept: the first must not change."""
    n, c, o, h, w = 3, 2, 4, 9, 8
    args = dict(stride=1, padding=1)
    x1, x2 = rng.normal(size=(2, n, c, h, w))
    k = be.asarray(rng.normal(size=(o, c, 3, 3)))
    dy1, dy2 = rng.normal(size=(2, n, o, h, w))
    y1 = xpcnn.conv2d_forward(be.asarray(x1), k, **args)
    dx1, dk1 = xpcnn.conv2d_backward(be.asarray(x1), k, be.asarray(dy1), **args)
    saved = [np.array(be.to_host(a), copy=True) for a in (y1, dx1, dk1)]
    y2 = xpcnn.conv2d_forward(be.asarray(x2), k, **args)
    dx2, dk2 = xpcnn.conv2d_backward(be.asarray(x2), k, be.asarray(dy2), **args)
    for before, after in zip(saved, (y1, dx1, dk1), strict=True):
        np.testing.assert_array_equal(be.to_host(after), before)
    for first, second in zip((y1, dx1, dk1), (y2, dx2, dk2), strict=True):
        assert not np.array_equal(be.to_host(first), be.to_host(second))
    # and writing into a result does not leak into the next call
    y1[...] = 0
    y3 = xpcnn.conv2d_forward(be.asarray(x2), k, **args)
    np.testing.assert_array_equal(be.to_host(y3), be.to_host(y2))


@pytest.mark.parametrize("batched", [False, True])
def test_results_are_contiguous_nchw(monkeypatch, rng, batched):
    """Y and dX come back C-contiguous in NCHW (no gaps, no permuted view): elementwise
    layers, Flatten and the next layer read them in order."""
    monkeypatch.setattr(_flat_shift, "BATCHED", batched)
    monkeypatch.setattr(_flat_shift, "CHUNK_BYTES", 2000)  # several chunks
    x, k = rng.normal(size=(4, 3, 9, 8)), rng.normal(size=(5, 3, 3, 3))
    y = xpcnn.conv2d_forward(x, k, padding=1)
    dx, _ = xpcnn.conv2d_backward(x, k, rng.normal(size=y.shape), padding=1)
    for a in (y, dx):
        assert a.flags.c_contiguous


def test_buffer_cache_is_bounded(monkeypatch, rng):
    monkeypatch.setattr(_flat_shift, "CACHE_BYTES", 512 << 10)
    _flat_shift.clear_buffers()
    x = rng.normal(size=(4, 3, 20, 20))
    k = rng.normal(size=(5, 3, 3, 3))
    for size in (20, 18, 16):
        xpcnn.conv2d_forward(x[:, :, :size, :size], k)
        assert 0 < _flat_shift.buffer_bytes() <= 512 << 10
    _flat_shift.clear_buffers()
    assert _flat_shift.buffer_bytes() == 0


def test_layer_matches_reference_with_chunks(monkeypatch, rng):
    """The Convolutional layer on several chunks: eq. 17-20 against the loops, bias included."""
    monkeypatch.setattr(_flat_shift, "CHUNK_BYTES", 1)
    layer = xpcnn.Convolutional((3, 7, 6), 3, 4, padding=1, seed=2, dtype="float64")
    layer.biases = layer.placement.asarray(rng.normal(size=4), dtype="float64")
    x = rng.normal(size=(5, 3, 7, 6))
    y = layer.forward(layer.placement.asarray(x, dtype="float64"))
    k = xpcnn.to_host(layer.kernels)
    b = xpcnn.to_host(layer.biases)
    np.testing.assert_allclose(
        xpcnn.to_host(y), reference.conv2d_forward(x, k, (1, 1), (1, 1)) + b[:, None, None]
    )
    dy = rng.normal(size=y.shape)
    dx = layer.backward(layer.placement.asarray(dy, dtype="float64"))
    dx_ref, dk_ref = reference.conv2d_backward(x, k, dy, (1, 1), (1, 1))
    np.testing.assert_allclose(xpcnn.to_host(dx), dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xpcnn.to_host(layer.grads["kernels"]), dk_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xpcnn.to_host(layer.grads["biases"]), dy.sum(axis=(0, 2, 3)), rtol=1e-10)


def test_buffers_of_equal_shape_from_different_geometries(be, rng):
    """Two geometries whose padded-input / dY-grid buffers have the same shape but their zeros
    in different places (padding, wrap-around columns): the cache must not mix them up."""
    k = rng.normal(size=(1, 1, 3, 3))
    x12, x10 = rng.normal(size=(1, 1, 12, 12)), rng.normal(size=(1, 1, 10, 10))
    xpcnn.conv2d_forward(be.asarray(x12), be.asarray(k))  # writes rows/cols 0..11 of a 13x12 buffer
    y = xpcnn.conv2d_forward(be.asarray(x10), be.asarray(k), padding=1)  # needs row/col 0 zero
    np.testing.assert_allclose(be.to_host(y), reference.conv2d_forward(x10, k, (1, 1), (1, 1)), atol=1e-12)
    x = rng.normal(size=(1, 1, 6, 8))
    k31, k33 = rng.normal(size=(1, 1, 3, 1)), rng.normal(size=(1, 1, 3, 3))
    dy81, dy63 = rng.normal(size=(1, 1, 4, 8)), rng.normal(size=(1, 1, 4, 6))
    xpcnn.conv2d_backward(be.asarray(x), be.asarray(k31), be.asarray(dy81))  # fills all 8 grid columns
    dx, dk = xpcnn.conv2d_backward(be.asarray(x), be.asarray(k33), be.asarray(dy63))  # 2 wrap columns
    dx_ref, dk_ref = reference.conv2d_backward(x, k33, dy63)
    np.testing.assert_allclose(be.to_host(dx), dx_ref, atol=1e-12)
    np.testing.assert_allclose(be.to_host(dk), dk_ref, atol=1e-12)


def test_buffer_cache_evicts_across_namespaces(monkeypatch):
    """A small cache budget forces eviction of one namespace's buffers by another's; the byte
    count stays exact and results stay right."""
    import array_api_strict as strict

    from xpcnn import testing as reference
    from xpcnn.ops import _flat_shift

    rng = np.random.default_rng(3)
    x, k = rng.normal(size=(4, 2, 9, 9)), rng.normal(size=(3, 2, 3, 3))
    strict_place = xpcnn.backend.Placement.of(strict, strict.Device("device1"))
    monkeypatch.setattr(_flat_shift, "CACHE_BYTES", 60_000)
    _flat_shift.clear_buffers()
    try:
        for place in (xpcnn.placement("cpu"), strict_place, xpcnn.placement("cpu")):
            y = xpcnn.conv2d_forward(place.asarray(x), place.asarray(k), padding=1)
            np.testing.assert_allclose(
                xpcnn.to_host(y), reference.conv2d_forward(x, k, padding=(1, 1)), rtol=1e-12
            )
            assert 0 < _flat_shift.buffer_bytes() <= 60_000
            assert _flat_shift.buffer_bytes() == sum(n for _, n in _flat_shift._local.entries.values())
    finally:
        _flat_shift.clear_buffers()


def test_strided_unfold_matches_pytorch_on_random_configurations(be):
    """Strides above 1 take xpcnn.ops._strided (only the windows the stride visits)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2026)
    for _ in range(60):
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        sh = 2 if sh * sw == 1 else sh
        ph, pw = (int(v) for v in rng.integers(0, 3, 2))
        n, c, o = (int(v) for v in rng.integers(1, 4, 3))
        h, w = int(rng.integers(kh, 10)), int(rng.integers(kw, 10))
        x, k = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, kh, kw))
        t, tk = torch.tensor(x, requires_grad=True), torch.tensor(k, requires_grad=True)
        ty = torch.nn.functional.conv2d(t, tk, stride=(sh, sw), padding=(ph, pw))
        dy = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.tensor(dy))
        y = xpcnn.conv2d_forward(be.asarray(x), be.asarray(k), stride=(sh, sw), padding=(ph, pw))
        dx, dk = xpcnn.conv2d_backward(
            be.asarray(x), be.asarray(k), be.asarray(dy), stride=(sh, sw), padding=(ph, pw)
        )
        for got, want in ((y, ty), (dx, t.grad), (dk, tk.grad)):
            np.testing.assert_allclose(be.to_host(got), want.detach().numpy(), rtol=0, atol=1e-13)


def _count_unfolds(monkeypatch):
    """Count the fills of the padded-input work buffer (one per unfold actually computed)."""
    fills = []
    workspace = _flat_shift._workspace

    def counting(xp, role, *args):
        if isinstance(role, tuple) and role[0] == "x":
            fills.append(role)
        return workspace(xp, role, *args)

    monkeypatch.setattr(_flat_shift, "_workspace", counting)
    return fills


def test_layer_backward_reuses_its_forwards_unfold(monkeypatch, rng):
    """One chunk: the layer's backward takes the forward's unfold from the work buffer instead
    of computing it again, and its gradients are the loops' (eq. 18, 20)."""
    _flat_shift.clear_buffers()
    fills = _count_unfolds(monkeypatch)
    layer = xpcnn.Convolutional((3, 7, 6), 3, 4, padding=1, seed=2, dtype="float64")
    x, dy = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(2, 4, 7, 6))
    layer.forward(x)
    assert len(fills) == 1
    dx = layer.backward(dy)
    assert len(fills) == 1  # reused
    dx_ref, dk_ref = reference.conv2d_backward(x, xpcnn.to_host(layer.kernels), dy, (1, 1), (1, 1))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["kernels"], dk_ref, rtol=1e-10, atol=1e-12)
    # the functions stay stateless: conv2d_backward unfolds the x it is given
    xpcnn.conv2d_backward(x, layer.kernels, dy, padding=1)
    assert len(fills) == 2


def test_unfold_reuse_never_mixes_up_layers_or_inputs(be, rng):
    """Two layers of one geometry share the work buffers: forward A, forward B, backward A must
    unfold A's input again; an input changed in place and forwarded again is unfolded again;
    a new forward after a backward refills the buffer."""
    _flat_shift.clear_buffers()
    a, b = (xpcnn.Convolutional((2, 6, 5), 3, 3, seed=s, dtype="float64").to(be.place) for s in (0, 1))
    xa, xb = rng.normal(size=(2, 2, 2, 6, 5))
    dy = rng.normal(size=(2, 3, 4, 3))

    def dk_ref(x, layer):
        return reference.conv2d_backward(x, be.to_host(layer.kernels), dy)[1]

    a.forward(be.asarray(xa))
    b.forward(be.asarray(xb))
    a.backward(be.asarray(dy))
    np.testing.assert_allclose(be.to_host(a.grads["kernels"]), dk_ref(xa, a), rtol=1e-10, atol=1e-12)
    b.backward(be.asarray(dy))
    np.testing.assert_allclose(be.to_host(b.grads["kernels"]), dk_ref(xb, b), rtol=1e-10, atol=1e-12)
    x = be.asarray(xa)
    a.forward(x)
    x[...] = be.asarray(xb)  # the same array object, new values, forwarded again
    a.forward(x)
    a.backward(be.asarray(dy))
    np.testing.assert_allclose(be.to_host(a.grads["kernels"]), dk_ref(xb, a), rtol=1e-10, atol=1e-12)
