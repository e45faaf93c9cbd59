"""Winograd F(2x2, 3x3) for 3x3, stride-1 layers (Lavin and Gray, 2016), in Array API calls.

Each 2x2 block of outputs of a 3x3 cross-correlation is computed from the 4x4 block of the
padded input that covers it, ``d``, and the kernel ``g``:

    ``Y_block = A^T [(G g G^T) (.) (B^T d B)] A``   (``(.)``: elementwise),

with ``B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]``,
``G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]`` and
``A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]``.  Summed over input channels, the elementwise
product becomes, for each of the 16 transform elements ``e``, one matrix product
``M[e] = U[e] @ V[e]`` with ``U (16, c_O, c_I)`` the transformed kernels and
``V (16, c_I, P)`` the transformed input blocks (``P = n * ceil(h_O/2) * ceil(w_O/2)``
blocks): one ``matmul`` with a leading batch of 16.  That is 16 multiply-adds per 4
outputs instead of 36: 2.25x fewer than im2col.

The transforms are small matrix products too: with the 16 blocks' elements stacked first,
``V = (B^T kron B^T) @ blocks``, ``U = (G kron G) @ g``, ``Y = (A^T kron A^T) @ M``.

Backward (notes eq. 18, 20):

* ``dX`` is again a 3x3 stride-1 cross-correlation: of ``dY`` padded by ``2 - p`` with the
  kernels rotated by 180 degrees and their channel axes swapped (``(c_I, c_O, 3, 3)``);
* ``dK``: the gradient of ``M = U V`` through the transforms:
  ``dU[e] = (A kron A) dY_block [e] @ V[e]^T`` summed over blocks, ``dK = (G kron G)^T dU``.

Accuracy: every transform matrix holds 0, +-1 and +-1/2, so rounding stays at the level of
the direct sum (tests/test_conv_formulations.py checks float32 against the float64
reference at ``rtol = 1e-5 * max|ref|``).

Used by :mod:`xpcnn.ops._flat_shift` when its switch ``WINOGRAD`` is on, for ``3x3``,
stride-1 layers with padding at most 2 and enough channels (:func:`applies`);
``forward``, ``backward_dx``, ``backward_dk`` are also called directly by the tests.  Arrays
are channel-major internally, as in ``_flat_shift``; the large intermediates (blocks,
``V``, ``M``) live in its cached work buffers, products written with
:func:`xpcnn.backend.matmul_into`.

Speed (2-vCPU development machine, batch 64, float32): the switch is off by default.  At
32->64 channels on 16x16 the forward took about as long as the flat-shift one (the batched
product itself is ~2.2x faster, but the 16 strided block copies, the transform products and
the 2x2 scatter cost the difference) and ``dX`` was ~1.8x slower (its input, ``dY`` padded by
2, has ``c_O`` channels and more blocks); at 8->16 it lost everywhere.
"""

from __future__ import annotations

from .. import backend
from ._flat_shift import _itemsize, _workspace

#: Target size in bytes of one batch chunk's transformed input ``V (16, c, m P_1)``.
CHUNK_BYTES = 4 << 20
#: Input channels at least this many (forward; ``c_O`` for ``dX``) use Winograd.
MIN_CHANNELS = 8

_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
_AT = ((1, 1, 1, 0), (0, 1, -1, -1))


def _kron(a, b):
    return [
        [a[i][j] * b[k][m] for j in range(len(a[0])) for m in range(len(b[0]))]
        for i in range(len(a))
        for k in range(len(b))
    ]


def _transpose(a):
    return [list(row) for row in zip(*a, strict=True)]


_HOST = {
    "BB": _kron(_BT, _BT),  # (16, 16): V = BB @ d (d's 4x4 block flattened)
    "GG": _kron(_G, _G),  # (16, 9): U = GG @ g
    "AA": _kron(_AT, _AT),  # (4, 16): Y = AA @ M
}
_HOST["AAt"] = _transpose(_HOST["AA"])  # (16, 4): dM = AAt @ dY
_HOST["GGt"] = _transpose(_HOST["GG"])  # (9, 16): dg = GGt @ dU

_CONSTS: dict = {}


def _const(xp, name: str, dtype, dev):
    key = (name, xp, dev, dtype)
    value = _CONSTS.get(key)
    if value is None:
        value = _CONSTS[key] = xp.asarray(_HOST[name], dtype=dtype, device=dev)
    return value


def applies(x, k, stride, padding, *, channels: int | None = None) -> bool:
    """True for 3x3 kernels, stride 1, padding <= 2 and at least :data:`MIN_CHANNELS`
    channels on the reduced axis (``c_I``, or ``channels`` when given)."""
    c = x.shape[1] if channels is None else channels
    return (
        tuple(k.shape[2:]) == (3, 3)
        and tuple(stride) == (1, 1)
        and max(padding) <= 2
        and min(padding) >= 0
        and c >= MIN_CHANNELS
    )


def kernel_transform(xp, k):
    """``U (16, c_O, c_I) = (G kron G) @ K``, for ``K (c_O, c_I, 3, 3)``."""
    o, c = k.shape[0], k.shape[1]
    k9 = xp.matrix_transpose(xp.reshape(k, (o * c, 9)))
    return xp.reshape(xp.matmul(_const(xp, "GG", k.dtype, backend.device(k)), k9), (16, o, c))


def _chunks(n: int, per_sample: int):
    size = max(1, min(n, CHUNK_BYTES // max(per_sample, 1)))
    count = -(-n // size)
    size = -(-n // count) if n else 1
    return [(a, min(a + size, n)) for a in range(0, n, size)] or [(0, 0)]


def _transform_input(xp, src, a, b, pad, th, tw, role):
    """``V (16, c, m th tw)``: blocks of samples ``a:b`` of ``src (c, n, h, w)`` padded by ``pad``."""
    c, _, h, w = src.shape
    m, dtype, dev = b - a, src.dtype, backend.device(src)
    ph, pw = pad
    # zeros: the padding and, for an odd output size, the rows/columns past the last block
    buf = _workspace(xp, (role + "-in", h, w, ph, pw), (c, m, 2 * th + 2, 2 * tw + 2), dtype, dev)
    buf[:, :, ph : ph + h, pw : pw + w] = src[:, a:b, ...]
    blocks = _workspace(xp, role + "-blocks", (16, c, m, th, tw), dtype, dev)
    for i in range(4):
        for j in range(4):
            blocks[4 * i + j, ...] = buf[:, :, i : i + 2 * th - 1 : 2, j : j + 2 * tw - 1 : 2]
    v = _workspace(xp, role + "-v", (16, c * m * th * tw), dtype, dev)
    backend.matmul_into(_const(xp, "BB", dtype, dev), xp.reshape(blocks, (16, c * m * th * tw)), v)
    return xp.reshape(v, (16, c, m * th * tw))


def correlate(xp, src, u, pad):
    """``Y (c_O, n, h_O, w_O)`` (fresh, contiguous): the 3x3 stride-1 cross-correlation of the
    channel-major ``src (c, n, h, w)`` padded by ``pad`` with transformed kernels ``u (16, c_O, c)``."""
    c, n, h, w = src.shape
    o = u.shape[1]
    oh, ow = h + 2 * pad[0] - 2, w + 2 * pad[1] - 2
    th, tw = -(-oh // 2), -(-ow // 2)
    dtype, dev = src.dtype, backend.device(src)
    y = xp.empty((o, n, oh, ow), dtype=dtype, device=dev)
    aa = _const(xp, "AA", dtype, dev)
    for a, b in _chunks(n, 16 * c * th * tw * _itemsize(xp, dtype)):
        m = b - a
        v = _transform_input(xp, src, a, b, pad, th, tw, "wino")
        p = m * th * tw
        mm = _workspace(xp, "wino-m", (16, o, p), dtype, dev)
        backend.matmul_into(u, v, mm)  # the 16 elementwise products, summed over c
        out = _workspace(xp, "wino-out", (4, o * p), dtype, dev)
        backend.matmul_into(aa, xp.reshape(mm, (16, o * p)), out)
        out = xp.reshape(out, (2, 2, o, m, th, tw))
        for r in range(2):
            for s in range(2):
                y[:, a:b, r::2, s::2] = out[r, s, :, :, : (oh - r + 1) // 2, : (ow - s + 1) // 2]
    return y


def forward(xp, x, k, padding):
    """``Y (n, c_O, h_O, w_O)`` (a view of a fresh channel-major array) for 3x3, stride 1."""
    y = correlate(xp, xp.permute_dims(x, (1, 0, 2, 3)), kernel_transform(xp, k), padding)
    return xp.permute_dims(y, (1, 0, 2, 3))


def backward_dx(xp, k, dy, padding):
    """``dX (n, c_I, h_I, w_I)`` (eq. 20): ``dY`` padded by ``2 - p`` correlated with the
    kernels rotated by 180 degrees, channel axes swapped.  Needs ``p <= 2``."""
    kt = xp.permute_dims(xp.flip(k, axis=(2, 3)), (1, 0, 2, 3))
    pad = (2 - padding[0], 2 - padding[1])
    dx = correlate(xp, xp.permute_dims(dy, (1, 0, 2, 3)), kernel_transform(xp, kt), pad)
    return xp.permute_dims(dx, (1, 0, 2, 3))


def backward_dk(xp, x, dy, padding):
    """``dK (c_O, c_I, 3, 3)`` (eq. 18) through the transforms: ``dU[e] = dM[e] @ V[e]^T``."""
    n, c, h, w = x.shape
    o, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    th, tw = -(-oh // 2), -(-ow // 2)
    dtype, dev = x.dtype, backend.device(x)
    xcm = xp.permute_dims(x, (1, 0, 2, 3))
    dycm = xp.permute_dims(dy, (1, 0, 2, 3))
    aat = _const(xp, "AAt", dtype, dev)
    du = None
    for a, b in _chunks(n, 16 * max(c, o) * th * tw * _itemsize(xp, dtype)):
        m = b - a
        v = _transform_input(xp, xcm, a, b, padding, th, tw, "wino-dk")
        # dY in 2x2 blocks (zero past an odd edge), the 4 elements first: (4, o m th tw)
        grid = _workspace(xp, ("wino-dy", oh, ow), (o, m, 2 * th, 2 * tw), dtype, dev)
        grid[:, :, :oh, :ow] = dycm[:, a:b, ...]
        blocks = _workspace(xp, "wino-dyblocks", (4, o, m, th, tw), dtype, dev)
        for r in range(2):
            for s in range(2):
                blocks[2 * r + s, ...] = grid[:, :, r::2, s::2]
        dm = _workspace(xp, "wino-dm", (16, o * m * th * tw), dtype, dev)
        backend.matmul_into(aat, xp.reshape(blocks, (4, o * m * th * tw)), dm)
        part = xp.matmul(xp.reshape(dm, (16, o, m * th * tw)), xp.matrix_transpose(v))  # (16, o, c)
        du = part if du is None else du + part
    dk = xp.matmul(_const(xp, "GGt", dtype, dev), xp.reshape(du, (16, o * c)))  # (9, o c)
    return xp.reshape(xp.matrix_transpose(dk), (o, c, 3, 3))


__all__ = ["applies", "backward_dk", "backward_dx", "correlate", "forward", "kernel_transform"]
