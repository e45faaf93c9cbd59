"""The CUDA path of the NCHW cross-correlation: CuPy RawKernels (issue 5, notes eq. 17-20).

:func:`conv2d_forward` and :func:`conv2d_backward` compute exactly what the generic Array API
path (:mod:`xpcnn.ops._flat_shift`) computes, with the kernels of ``kernels/conv2d.cu``:

* forward: a tiled cross-correlation (shared-memory input tile with halo, ``RY x OCB`` outputs
  per thread), stride and zero padding handled in the kernel; two output tiles, 16 x 32 and
  8 x 16 for small outputs, picked per shape by :func:`forward_plan`;
* ``dX`` (eq. 20 as a full *convolution*): the same forward kernel applied to ``dY`` with the
  kernels flipped in both spatial axes and transposed to ``(c_I, c_O, h_K, w_K)``, padding
  ``(h_K - 1 - p_h, w_K - 1 - p_w)`` (negative means a crop) and stride 1; for a stride above
  1, ``dY`` is first spread on the stride-1 grid with zeros in between (explicitly, here);
* ``dK`` (eq. 18): partial sums over groups of samples, one block per ``(c_O, c_I)`` pair and
  group, then the groups summed in a fixed order by a second kernel (no float atomics, so the
  result is deterministic).

The bias gradient (eq. 19) is a plain sum and stays in the layer.  A forward whose shared
input tile cannot fit 48 KiB even one channel at a time (float64: a stride of 4 or more, or a
kernel from about 25 x 25; float32: a stride of 6, or from about 35 x 35) is not taken here:
:func:`supports` says so, and :mod:`xpcnn.ops.correlation`, where the one dispatch decision
lives, runs the Array-API path on CuPy instead.  The inputs were validated there: this module
only makes them contiguous and reads their device.

CuPy is imported lazily, here only.  The module is compiled once per device, on first use,
through ``cupy.RawModule(code=..., options=OPTIONS, name_expressions=NAME_EXPRESSIONS)``, and
every kernel is fetched with exactly the string it was declared with.  Arrays are made
contiguous, dtypes and devices asserted, every scalar passed as ``numpy.int32`` /
``numpy.int64``, and nothing is launched for an empty output.

The orchestration (:func:`_forward`, :func:`_backward`) is written against a small runtime
(``xp`` plus ``launch``) so that the tests run it, unchanged, on the CPU against the same
``.cu`` source compiled for the host (``tests/cuda_host_shim.cpp``).
"""

from __future__ import annotations

import functools
import threading
from importlib import resources

import numpy as np

from .geometry import conv_output_size

__all__ = ["NAME_EXPRESSIONS", "OPTIONS", "conv2d_backward", "conv2d_forward", "source", "supports"]

# Tile constants, passed to the compiler as -D options (the .cu has no defaults).
FWD_BX, FWD_BY, FWD_RY, FWD_OCB = 32, 4, 4, 8
#: The forward's large tile (TILE = 0) is BY * RY = 16 rows by BX = 32 columns; its small tile
#: (TILE = 1): 8 x 16 outputs, 64 threads of 2 rows each.
FWD_SMALL_BX, FWD_SMALL_BY, FWD_SMALL_RY = 16, 4, 2
#: ``(block x, block y, rows per thread)`` of each forward tile, by its template index.
FWD_TILES = ((FWD_BX, FWD_BY, FWD_RY), (FWD_SMALL_BX, FWD_SMALL_BY, FWD_SMALL_RY))
#: The small tile is used when the positions it computes (its tiles over the output, padding
#: included) are at most this fraction of the large tile's: e.g. 10 x 10 outputs (LeNet-5's
#: second layer) 256 against 512, 24 x 24 768 against 1024; 56 x 56 (3584 against 4096)
#: keeps the large tile, whose four rows per thread reuse each weight load four times.
FWD_SMALL_RATIO = 0.75
GRAD_THREADS, GRAD_MAXT = 256, 16
SUM_THREADS = 256
SHARED_BUDGET = 48 * 1024  # bytes of dynamic shared memory a launch may use without opting in
FWD_MAX_CHUNK = 8  # input channels staged per shared-memory pass, at most
GRAD_TARGET_BLOCKS = 1024  # enough (o, c, group) blocks to fill an H100's 132 SMs a few times
SPECIALISED = (3, 5)  # square kernel sizes with their own template instance
GRID_YZ_MAX = 65535
GRID_X_MAX = 2**31 - 1
INT32_MAX = 2**31 - 1

OPTIONS = (
    "--std=c++17",
    f"-DXPCNN_FWD_BX={FWD_BX}",
    f"-DXPCNN_FWD_BY={FWD_BY}",
    f"-DXPCNN_FWD_RY={FWD_RY}",
    f"-DXPCNN_FWD_SMALL_BX={FWD_SMALL_BX}",
    f"-DXPCNN_FWD_SMALL_BY={FWD_SMALL_BY}",
    f"-DXPCNN_FWD_SMALL_RY={FWD_SMALL_RY}",
    f"-DXPCNN_FWD_OCB={FWD_OCB}",
    f"-DXPCNN_GRAD_THREADS={GRAD_THREADS}",
    f"-DXPCNN_GRAD_MAXT={GRAD_MAXT}",
)

CTYPES = {"float32": "float", "float64": "double"}


def _size_arg(kh: int, kw: int) -> int:
    """The template kernel size: 3 or 5 for those square kernels, 0 (general) otherwise."""
    return kh if kh == kw and kh in SPECIALISED else 0


def forward_name(ctype: str, size: int, tile: int = 0) -> str:
    """The forward instance: ``size`` 3, 5 or 0 (general), ``tile`` 0 (large) or 1 (small)."""
    return f"xpcnn_conv2d_forward<{ctype}, {size}, {size}, {tile}>"


def kernel_grad_name(ctype: str, size: int) -> str:
    return f"xpcnn_conv2d_kernel_grad<{ctype}, {size}, {size}>"


def sum_name(ctype: str) -> str:
    return f"xpcnn_sum_partials<{ctype}>"


NAME_EXPRESSIONS = tuple(
    [forward_name(t, s, tile) for t in CTYPES.values() for s in (*SPECIALISED, 0) for tile in (0, 1)]
    + [kernel_grad_name(t, s) for t in CTYPES.values() for s in (*SPECIALISED, 0)]
    + [sum_name(t) for t in CTYPES.values()]
)


def source_path():
    """The packaged ``kernels/conv2d.cu`` (a ``Traversable``)."""
    return resources.files("xpcnn.ops").joinpath("kernels", "conv2d.cu")


def source() -> str:
    """The CUDA source of the kernels."""
    return source_path().read_text(encoding="utf-8")


def _i32(value: int, what: str) -> np.int32:
    if not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise ValueError(f"xpcnn CUDA kernels: {what}={value} does not fit a 32-bit int.")
    return np.int32(value)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------------------------------------
# Launch plans and orchestration, shared by the CuPy runtime and the host-shim tests.
# ``rt`` has ``xp`` (cupy or numpy, the array module) and ``launch(name, grid, block,
# shared_bytes, args)``.
# ---------------------------------------------------------------------------------------------


def forward_plan(x_shape, k_shape, itemsize: int, stride, padding):
    """The launch configuration of the forward kernel, or None when no tile's shared input
    tile fits in :data:`SHARED_BUDGET` even one channel at a time (very large kernels or
    strides).  The tile is the one that computes the fewest positions outside the output
    (:data:`FWD_SMALL_RATIO`), or the small one when the large one does not fit.
    Cached per shape (the tile constants are part of the key, so tests may change them)."""
    limits = (SHARED_BUDGET, GRID_YZ_MAX, FWD_MAX_CHUNK, FWD_TILES, FWD_SMALL_RATIO)
    return _forward_plan(tuple(x_shape), tuple(k_shape), itemsize, tuple(stride), tuple(padding), limits)


def _tile_for(oh: int, ow: int, tiles, small_ratio: float) -> int:
    """0 (the large tile) or 1 (the small one, when it computes at most ``small_ratio`` of the
    positions the large one would; see :data:`FWD_SMALL_RATIO`)."""

    def positions(tile):
        bx, by, ry = tiles[tile]
        return _ceil_div(oh, by * ry) * by * ry * _ceil_div(ow, bx) * bx

    return 1 if positions(1) <= small_ratio * positions(0) else 0


@functools.lru_cache(maxsize=256)
def _forward_plan(x_shape, k_shape, itemsize, stride, padding, limits):
    shared_budget, grid_yz_max, max_chunk, tiles, small_ratio = limits
    n, c, h, w = x_shape
    o, _, kh, kw = k_shape
    sh, sw = stride
    ph, pw = padding
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    # the tile with the fewest wasted positions; failing the shared budget, the small one
    for tile in dict.fromkeys((_tile_for(oh, ow, tiles, small_ratio), 1)):
        bx, by, ry = tiles[tile]
        tile_h, tile_w = by * ry, bx
        in_h = (tile_h - 1) * sh + kh
        in_w = (tile_w - 1) * sw + kw
        per_channel = (in_h * in_w + kh * kw * FWD_OCB) * itemsize
        cb = min(c, max_chunk, shared_budget // per_channel)
        while cb > 0 and _forward_shared(cb, in_h, in_w, kh, kw, itemsize) > shared_budget:
            cb -= 1  # the 16-byte alignment of the weights may add a few bytes
        if cb >= 1:
            break
    else:
        return None
    tiles_y, tiles_x = _ceil_div(oh, tile_h), _ceil_div(ow, tile_w)
    grid_x = n * tiles_y * tiles_x
    if grid_x > GRID_X_MAX:
        raise ValueError(f"xpcnn CUDA forward: {grid_x} blocks exceed the grid limit; split the batch.")
    grid_y = min(_ceil_div(o, FWD_OCB), grid_yz_max)
    scalars = dict(
        N=n, C=c, H=h, W=w, O=o, OH=oh, OW=ow, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw,
        tiles_x=tiles_x, tiles_y=tiles_y, cb=cb, in_h=in_h, in_w=in_w,
    )  # fmt: skip
    return {
        "size": _size_arg(kh, kw),
        "tile": tile,
        "grid": (grid_x, grid_y, 1),
        "block": (bx, by, 1),
        "shared": _forward_shared(cb, in_h, in_w, kh, kw, itemsize),
        "out_shape": (n, o, oh, ow),
        "scalars": tuple(_i32(v, k) for k, v in scalars.items()),
    }


def _forward_shared(cb: int, in_h: int, in_w: int, kh: int, kw: int, itemsize: int) -> int:
    """Bytes of shared memory of the forward kernel: the input tiles rounded up to 16 bytes,
    then the weights (as in the kernel)."""
    tiles = -(-cb * in_h * in_w * itemsize // 16) * 16
    return tiles + cb * kh * kw * FWD_OCB * itemsize


def supports(x, k, stride, padding) -> bool:
    """True when the RawKernels compute this convolution: a float32 / float64 dtype, and launch
    plans that fit for the forward and for the ``dX`` launch (the forward kernel on ``dY``
    spread on the stride-1 grid; the two may use different tiles)."""
    dtype = str(x.dtype)
    if dtype not in CTYPES:
        return False
    itemsize = 4 if dtype == "float32" else 8
    if forward_plan(x.shape, k.shape, itemsize, stride, padding) is None:
        return False
    n, c, h, w = x.shape
    o, _, kh, kw = k.shape
    ph, pw = padding
    grid = (n, o, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1)  # dY on the stride-1 grid
    return forward_plan(grid, (c, o, kh, kw), itemsize, (1, 1), (kh - 1 - ph, kw - 1 - pw)) is not None


def kernel_grad_plan(x_shape, k_shape, dy_shape, itemsize: int, stride, padding):
    """The launch configuration of the kernel-gradient kernel (groups of samples per block)."""
    limits = (GRID_YZ_MAX, GRAD_TARGET_BLOCKS)
    shapes = tuple(x_shape), tuple(k_shape), tuple(dy_shape)
    return _kernel_grad_plan(*shapes, itemsize, tuple(stride), tuple(padding), limits)


@functools.lru_cache(maxsize=256)
def _kernel_grad_plan(x_shape, k_shape, dy_shape, itemsize, stride, padding, limits):
    grid_yz_max, target_blocks = limits
    n, c, h, w = x_shape
    o, _, kh, kw = k_shape
    _, _, oh, ow = dy_shape
    size = _size_arg(kh, kw)
    chunks = 1 if size else _ceil_div(kh * kw, GRAD_MAXT)
    pairs = o * c
    if pairs > GRID_X_MAX or chunks > grid_yz_max:
        raise ValueError(
            f"xpcnn CUDA kernel gradient: {pairs} channel pairs x {chunks} tap chunks is too large."
        )
    _i32(oh * ow, "h_O * w_O")
    groups = max(1, min(n, grid_yz_max, _ceil_div(target_blocks, pairs * chunks)))
    per_group = _ceil_div(n, groups)
    groups = _ceil_div(n, per_group)  # no empty group
    scalars = (n, c, h, w, o, oh, ow, kh, kw, stride[0], stride[1], padding[0], padding[1], per_group)
    return {
        "size": size,
        "grid": (pairs, groups, chunks),
        "block": (GRAD_THREADS, 1, 1),
        "shared": (kh * kw if size else GRAD_MAXT) * (GRAD_THREADS // 32) * itemsize,
        "groups": groups,
        "scalars": tuple(_i32(v, "size") for v in scalars),
    }


def _forward(rt, x, k, stride, padding):
    """``y = x * k`` (eq. 17 without bias) on contiguous arrays of one dtype."""
    xp = rt.xp
    ctype = CTYPES[str(x.dtype)]
    n, c, h, w = x.shape
    o, _, kh, kw = k.shape
    oh = conv_output_size(h, kh, stride[0], padding[0])
    ow = conv_output_size(w, kw, stride[1], padding[1])
    if n * o * oh * ow == 0 or c == 0:
        return xp.zeros((n, o, oh, ow), dtype=x.dtype)  # nothing to launch, or an empty sum
    plan = forward_plan(x.shape, k.shape, x.dtype.itemsize, stride, padding)
    if plan is None:  # supports() said no: the caller must not come here
        raise ValueError(f"xpcnn CUDA forward: no launch plan fits x {x.shape}, kernel {k.shape}.")
    y = xp.empty(plan["out_shape"], dtype=x.dtype)
    rt.launch(
        forward_name(ctype, plan["size"], plan["tile"]),
        plan["grid"],
        plan["block"],
        plan["shared"],
        (x, k, y, *plan["scalars"]),
    )
    return y


def _kernel_grad(rt, x, k, dy, stride, padding):
    """``dK`` of eq. 18: partial sums per group of samples, then a fixed-order sum."""
    xp = rt.xp
    ctype = CTYPES[str(x.dtype)]
    n, c = x.shape[:2]
    o, _, kh, kw = k.shape
    if o * c * kh * kw == 0:
        return xp.zeros(k.shape, dtype=x.dtype)
    if n * dy.shape[2] * dy.shape[3] == 0:
        return xp.zeros(k.shape, dtype=x.dtype)  # an empty sum
    plan = kernel_grad_plan(x.shape, k.shape, dy.shape, x.dtype.itemsize, stride, padding)
    groups = plan["groups"]
    count = o * c * kh * kw
    partial = xp.empty((groups, o, c, kh, kw), dtype=x.dtype)
    rt.launch(
        kernel_grad_name(ctype, plan["size"]), plan["grid"], plan["block"], plan["shared"],
        (x, dy, partial, *plan["scalars"]),
    )  # fmt: skip
    if groups == 1:
        return partial[0]
    dk = xp.empty(k.shape, dtype=x.dtype)
    blocks = min(_ceil_div(count, SUM_THREADS), 4096)
    rt.launch(
        sum_name(ctype),
        (blocks, 1, 1),
        (SUM_THREADS, 1, 1),
        0,
        (partial, dk, _i32(groups, "groups"), np.int64(count)),
    )
    return dk


def _backward(rt, x, k, dy, stride, padding, input_gradient):
    xp = rt.xp
    dk = _kernel_grad(rt, x, k, dy, stride, padding)
    if not input_gradient:
        return None, dk
    n, c, h, w = x.shape
    o, _, kh, kw = k.shape
    sh, sw = stride
    ph, pw = padding
    oh1, ow1 = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1  # the stride-1 output grid
    if (sh, sw) == (1, 1):
        spread = dy
    else:  # zeros between the strided outputs, and after the last one up to the stride-1 grid
        spread = xp.zeros((n, o, oh1, ow1), dtype=dy.dtype)
        oh, ow = dy.shape[2], dy.shape[3]
        spread[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw] = dy
    k_flipped = xp.ascontiguousarray(xp.transpose(k[:, :, ::-1, ::-1], (1, 0, 2, 3)))  # (c, o, kh, kw)
    dx = _forward(rt, spread, k_flipped, (1, 1), (kh - 1 - ph, kw - 1 - pw))
    return dx, dk


# ---------------------------------------------------------------------------------------------
# The CuPy runtime
# ---------------------------------------------------------------------------------------------

_modules: dict = {}
_functions: dict = {}
_lock = threading.Lock()


def _cupy():
    from .. import backend

    return backend._cupy()


def _module(cupy, device_id: int):
    """The RawModule of ``device_id``, built on first use (compiled lazily by CuPy)."""
    with _lock:
        module = _modules.get(device_id)
        if module is None:
            module = cupy.RawModule(code=source(), options=OPTIONS, name_expressions=list(NAME_EXPRESSIONS))
            _modules[device_id] = module
        return module


class _CupyRuntime:
    def __init__(self, cupy, device_id: int):
        self.xp = cupy
        self.device_id = device_id

    def launch(self, name, grid, block, shared, args):
        key = (self.device_id, name)  # the device id, an int: a CuPy 14 Device is unhashable
        fn = _functions.get(key)
        if fn is None:
            assert name in NAME_EXPRESSIONS, name
            with self.xp.cuda.Device(self.device_id):
                fn = _module(self.xp, self.device_id).get_function(name)
            _functions[key] = fn
        assert grid[1] <= GRID_YZ_MAX and grid[2] <= GRID_YZ_MAX and shared <= SHARED_BUDGET
        fn(grid, block, args, shared_mem=shared)


def _prepare(cupy, arrays):
    """The arrays made C-contiguous (kernels ignore strides), and their device's id.  Dtypes
    and devices were checked once, at the public edge (:mod:`xpcnn.ops.correlation`)."""
    return [a if a.flags.c_contiguous else cupy.ascontiguousarray(a) for a in arrays], arrays[0].device.id


def conv2d_forward(x, k, stride, padding):
    """``Y = X * K`` on CuPy arrays: ``x (n, c_I, h_I, w_I)``, ``k (c_O, c_I, h_K, w_K)``,
    ``stride`` and ``padding`` int pairs; returns ``(n, c_O, h_O, w_O)`` (eq. 17 without bias).
    Trusted: the caller validated the arrays and checked :func:`supports`."""
    cupy = _cupy()
    (x, k), device_id = _prepare(cupy, (x, k))
    with cupy.cuda.Device(device_id):
        return _forward(_CupyRuntime(cupy, device_id), x, k, stride, padding)


def conv2d_backward(x, k, dy, stride, padding, input_gradient=True):
    """``(dX, dK)`` on CuPy arrays (eq. 20 and 18); ``dX`` is None when ``input_gradient`` is False.
    Trusted, as :func:`conv2d_forward`."""
    cupy = _cupy()
    (x, k, dy), device_id = _prepare(cupy, (x, k, dy))
    with cupy.cuda.Device(device_id):
        return _backward(_CupyRuntime(cupy, device_id), x, k, dy, stride, padding, input_gradient)
