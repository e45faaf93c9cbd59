"""The CUDA kernels' index arithmetic, checked on the CPU.

``kernels/conv2d.cu`` is compiled for the host with g++ (tests/cuda_host_shim.cpp emulates the
grid, the block's threads as fibers, ``__syncthreads`` as phases and the dynamic shared memory)
and driven by the CuPy module's own orchestration (``xpcnn.ops.cuda._forward`` /
``_backward``), then compared with the per-sample loops of :mod:`xpcnn.ops.reference`.
This checks indices, tiling, halos, padding, strides, chunking of channels, the batch split
of the kernel gradient and the launch plans; it does not check GPU timing, memory
coalescing or anything the CPU cannot see (tools/gpu_check runs the suite on a GPU).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from xpcnn import testing as reference
from xpcnn.ops import cuda

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cuda_host  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found: the host shim needs it")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return cuda_host.build(tmp_path_factory.mktemp("cuda_shim"))


@pytest.fixture
def rt(lib, monkeypatch):
    # Fewer sample groups in the kernel gradient than on a GPU (1024 target blocks): the
    # emulation pays for every block's barriers.  The split itself is tested below with the
    # default target too (test_kernel_gradient_is_deterministic, ..._split_over_groups).
    monkeypatch.setattr(cuda, "GRAD_TARGET_BLOCKS", 96)
    return cuda_host.HostRuntime(lib)


# n, c_I, c_O, h, w, kh, kw, stride, padding: odd sizes; channel counts that do not divide the
# output-channel block (8) nor the channel chunk (8); outputs that do not divide the 16 x 32 tile.
SHAPES = [
    (2, 3, 4, 7, 9, 3, 3, (1, 1), (1, 1)),  # 3x3, "same"
    (3, 9, 11, 17, 33, 3, 3, (1, 1), (0, 0)),  # 9 channels: two chunks; 11 outputs: two blocks
    (2, 2, 5, 19, 21, 5, 5, (1, 1), (2, 2)),  # 5x5
    (2, 3, 3, 13, 11, 5, 5, (2, 3), (1, 0)),  # 5x5 strided
    (3, 2, 5, 8, 7, 3, 3, (2, 3), (1, 2)),  # 3x3 strided, asymmetric padding
    (2, 5, 2, 4, 6, 4, 3, (3, 2), (2, 0)),  # general 4x3
    (2, 2, 3, 6, 5, 1, 1, (2, 1), (0, 1)),  # 1x1 with padding: dX uses padding -1 (a crop)
    (1, 1, 1, 5, 5, 5, 5, (1, 1), (0, 0)),  # a single output
    (2, 1, 9, 11, 10, 7, 7, (1, 1), (3, 3)),  # general 7x7 (49 taps: 4 tap chunks)
    (1, 10, 17, 18, 34, 2, 2, (1, 1), (1, 0)),  # even kernel, 3 output blocks, 2x2 tiles
]


def _check(rt, shape, dtype, stride=None):
    n, c, o, h, w, kh, kw, stride, padding = shape
    rng = np.random.default_rng(sum(shape[:7]))
    x, k = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, kh, kw))
    y_ref = reference.conv2d_forward(x, k, stride, padding)
    dy = rng.normal(size=y_ref.shape)
    dx_ref, dk_ref = reference.conv2d_backward(x, k, dy, stride, padding)
    y = rt.forward(x.astype(dtype), k.astype(dtype), stride, padding)
    dx, dk = rt.backward(x.astype(dtype), k.astype(dtype), dy.astype(dtype), stride, padding)
    tol = 1e-12 if dtype == "float64" else 2e-5
    for got, ref in ((y, y_ref), (dx, dx_ref), (dk, dk_ref)):
        assert got.dtype == np.dtype(dtype)
        assert got.shape == ref.shape
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale)
    return y, dx, dk


#: FWD_SMALL_RATIO forcing one forward tile: the plan's own choice, always the large tile,
#: always the small one (so that both tiles run every shape).
TILE_MODES = {"auto": None, "large": -1.0, "small": float("inf")}


@pytest.fixture(params=list(TILE_MODES))
def tile_mode(request, monkeypatch):
    if TILE_MODES[request.param] is not None:
        monkeypatch.setattr(cuda, "FWD_SMALL_RATIO", TILE_MODES[request.param])
    return request.param


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernels_match_reference(rt, shape, dtype, tile_mode):
    _check(rt, shape, dtype)
    kh, kw = shape[5], shape[6]
    size = kh if kh == kw and kh in (3, 5) else 0
    ctype = cuda.CTYPES[dtype]
    names = {launch[0] for launch in rt.launches}
    tiles = {"auto": (0, 1), "large": (0,), "small": (1,)}[tile_mode]
    forwards = {name for name in names if "forward" in name}
    assert forwards and forwards <= {cuda.forward_name(ctype, size, t) for t in tiles}
    assert cuda.kernel_grad_name(ctype, size) in names


@pytest.mark.parametrize(
    ("out_hw", "tile", "waste"),
    [((10, 10), 1, 2.56), ((24, 24), 1, 768 / 576), ((28, 28), 0, 1024 / 784), ((56, 56), 0, 4096 / 3136)],
)
def test_small_outputs_take_the_small_tile(out_hw, tile, waste):
    """The plan picks the tile that computes the fewest positions outside the output: the
    small tile on LeNet-5's 10 x 10 (2.56x the useful multiply-adds, against 5.12x with the
    large tile) and on 24 x 24; the large tile on 28 x 28 (a tie) and 56 x 56."""
    oh, ow = out_hw
    plan = cuda.forward_plan((2, 6, oh + 4, ow + 4), (16, 6, 5, 5), 4, (1, 1), (0, 0))
    assert plan["tile"] == tile
    bx, by, ry = cuda.FWD_TILES[tile]
    assert plan["block"] == (bx, by, 1)
    tiles_x, tiles_y = plan["scalars"][13:15]
    assert tiles_x * bx * tiles_y * by * ry / (oh * ow) == pytest.approx(waste)


@pytest.mark.parametrize(
    "shape", [SHAPES[1], SHAPES[3], pytest.param(SHAPES[8], marks=pytest.mark.slow)], ids=str
)
@pytest.mark.parametrize("small_ratio", [-1.0, float("inf")], ids=["large tile", "small tile"])
def test_thread_order_does_not_matter(lib, shape, small_ratio, monkeypatch):
    """Running each phase's threads in the opposite order gives bit-identical results: no
    thread reads shared memory that another writes within the same phase."""
    monkeypatch.setattr(cuda, "GRAD_TARGET_BLOCKS", 96)
    monkeypatch.setattr(cuda, "FWD_SMALL_RATIO", small_ratio)
    forward = _check(cuda_host.HostRuntime(lib), shape, "float64")
    backward = _check(cuda_host.HostRuntime(lib, reverse=True), shape, "float64")
    for a, b in zip(forward, backward, strict=True):
        np.testing.assert_array_equal(a, b)


def test_kernel_gradient_split_over_groups(rt, monkeypatch):
    """Groups of samples with a remainder (5 samples in groups of 3 and 2), summed in order."""
    shape = (5, 3, 2, 9, 8, 3, 3, (1, 2), (1, 1))
    monkeypatch.setattr(cuda, "GRAD_TARGET_BLOCKS", 2 * 3 * 2)  # 6 pairs -> 2 groups
    plan = cuda.kernel_grad_plan((5, 3, 9, 8), (2, 3, 3, 3), (5, 2, 9, 4), 8, (1, 2), (1, 1))
    assert plan["groups"] == 2 and plan["scalars"][-1] == 3
    _check(rt, shape, "float64")
    assert any(name.startswith("xpcnn_sum_partials") for name, *_ in rt.launches)


def test_kernel_gradient_is_deterministic(lib):
    """Same input, same bits, run after run (no atomics)."""
    rng = np.random.default_rng(3)
    x, k = rng.normal(size=(4, 3, 9, 9)).astype("float32"), rng.normal(size=(5, 3, 3, 3)).astype("float32")
    dy = rng.normal(size=(4, 5, 9, 9)).astype("float32")
    runs = [cuda_host.HostRuntime(lib).backward(x, k, dy, (1, 1), (1, 1))[1] for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_output_channel_blocks_loop_when_grid_y_is_capped(rt, monkeypatch):
    """grid.y is capped at 65535 on the GPU; with the cap at 1 the kernel loops over the blocks."""
    monkeypatch.setattr(cuda, "GRID_YZ_MAX", 1)
    _check(rt, (2, 3, 19, 9, 10, 3, 3, (1, 1), (1, 1)), "float64")
    assert all(grid[1] == 1 for name, grid, *_ in rt.launches if "forward" in name)


def test_too_large_shared_tile_is_not_supported():
    """A stride of 8 makes the shared input tile exceed 48 KiB even for one channel: the kernels
    decline (``supports``) and the dispatcher in ops/correlation.py takes the Array-API path
    (run on CuPy by the cupy backends of test_correlation.py)."""
    assert cuda.forward_plan((1, 1, 200, 300), (2, 1, 3, 3), 8, (8, 8), (0, 0)) is None
    x, k = np.zeros((2, 2, 40, 300)), np.zeros((3, 2, 3, 3))
    assert not cuda.supports(x, k, (8, 8), (1, 1))
    assert cuda.supports(x, k, (1, 1), (1, 1))
    assert cuda.supports(x.astype("float32"), k.astype("float32"), (4, 4), (1, 1))
    # stride 6: the large tile's 93 x 189 input tile does not fit; the small tile's 45 x 93 does
    assert cuda.supports(x.astype("float32"), k.astype("float32"), (6, 6), (1, 1))
    assert cuda.forward_plan(x.shape, k.shape, 4, (6, 6), (1, 1))["tile"] == 1
    assert not cuda.supports(x.astype("float32"), k.astype("float32"), (12, 12), (1, 1))
    assert not cuda.supports(x.astype("int64"), k.astype("int64"), (1, 1), (1, 1))


def test_small_tile_when_the_large_one_does_not_fit(rt):
    """float64, stride 4: the large tile (63 x 127 inputs, 64 KB) would fit the 56 x 56 output
    better, but only the small one (31 x 63) fits the shared budget: the plan takes it."""
    shape = (1, 1, 2, 223, 223, 3, 3, (4, 4), (0, 0))
    assert cuda._tile_for(56, 56, cuda.FWD_TILES, cuda.FWD_SMALL_RATIO) == 0
    assert cuda.forward_plan((1, 1, 223, 223), (2, 1, 3, 3), 8, (4, 4), (0, 0))["tile"] == 1
    _check(rt, shape, "float64")


def test_shared_memory_within_budget_and_channels_chunked():
    for shape in SHAPES:
        n, c, o, h, w, kh, kw, stride, padding = shape
        for itemsize in (4, 8):
            plan = cuda.forward_plan((n, c, h, w), (o, c, kh, kw), itemsize, stride, padding)
            assert plan["shared"] <= cuda.SHARED_BUDGET
            assert plan["grid"][1] <= 65535
            assert all(type(s) is np.int32 for s in plan["scalars"])


def test_empty_outputs_launch_nothing(rt):
    y = rt.forward(np.ones((0, 2, 5, 5)), np.ones((3, 2, 3, 3)))
    assert y.shape == (0, 3, 3, 3)
    dx, dk = rt.backward(np.ones((0, 2, 5, 5)), np.ones((3, 2, 3, 3)), np.ones((0, 3, 3, 3)))
    assert dx.shape == (0, 2, 5, 5) and dk.shape == (3, 2, 3, 3) and not dk.any()
    assert rt.launches == []


def test_shim_rejects_wrong_argument_types(rt):
    """The shim checks the type string: a float64 array for a float* parameter is refused, and so
    is a Python int (CuPy would pass it as a 64-bit integer)."""
    plan = cuda.forward_plan((1, 1, 5, 5), (1, 1, 3, 3), 4, (1, 1), (0, 0))
    x, k, y = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), np.empty((1, 1, 3, 3))
    name = cuda.forward_name("float", 3, plan["tile"])
    with pytest.raises(cuda_host.ShimError, match="do not match the kernel's FFFiiii"):
        rt.launch(name, plan["grid"], plan["block"], plan["shared"], (x, k, y, *plan["scalars"]))
    with pytest.raises(cuda_host.ShimError, match="no explicit C type"):
        rt.launch(name, plan["grid"], plan["block"], plan["shared"], (x, k, y, 1))


def test_shim_refuses_launches_the_gpu_would_refuse(rt):
    x = np.ones((1, 1, 5, 5), dtype="float32")
    k = np.ones((1, 1, 3, 3), dtype="float32")
    y = np.empty((1, 1, 3, 3), dtype="float32")
    plan = cuda.forward_plan(x.shape, k.shape, 4, (1, 1), (0, 0))
    name = cuda.forward_name("float", 3, plan["tile"])
    args = (x, k, y, *plan["scalars"])
    with pytest.raises(cuda_host.ShimError, match="above 48 KiB"):
        rt.launch(name, plan["grid"], plan["block"], 48 * 1024 + 4, args)
    with pytest.raises(cuda_host.ShimError, match="over the CUDA limits"):
        rt.launch(name, (1, 65536, 1), plan["block"], plan["shared"], args)
    rt.launch(name, plan["grid"], plan["block"], plan["shared"], args)
    np.testing.assert_array_equal(y, 9.0)


def test_instances_match_the_runtime_names(rt):
    assert rt.names() == list(cuda.NAME_EXPRESSIONS)
    assert len(set(cuda.NAME_EXPRESSIONS)) == 20  # 2 dtypes x (3 sizes x 2 tiles + 3 sizes + 1 sum)


def test_source_is_package_data():
    text = cuda.source()
    for kernel in ("xpcnn_conv2d_forward", "xpcnn_conv2d_kernel_grad", "xpcnn_sum_partials"):
        assert "__global__ void __launch_bounds__" in text and kernel in text
