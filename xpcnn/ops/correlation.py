"""Cross-correlation and convolution (notes section 3.1, eq. 14-16) and the batched NCHW
primitive behind the convolutional layer (eq. 17-20).

Notation (as in Chainer's ``convolution_2d``):

* ``n`` batch size, ``c_I`` input channels, ``c_O`` output channels,
* ``h_I, w_I`` input height and width, ``h_K, w_K`` kernel height and width,
* ``s`` stride, ``p`` zero padding on each side (per axis),
* ``h_O = (h_I + 2 p_h - h_K) // s_h + 1`` and ``w_O = (w_I + 2 p_w - w_K) // s_w + 1``.

Each public function validates its input once, then calls a trusted entry
(:func:`trusted_forward`, :func:`trusted_backward`; the layers call these after their own
checks).  Those hold the one decision of the package: the CUDA RawKernels
(:mod:`xpcnn.ops.cuda`) for CuPy arrays of a float dtype whose launch plan fits, else the
generic Array API formulations: :mod:`xpcnn.ops._strided` (an unfold of strided slices) for
strides above 1, :mod:`xpcnn.ops._flat_shift` for stride 1.  All compute exactly the same
thing (they agree with PyTorch to 5e-15 in float64).
"""

from __future__ import annotations

from .. import backend
from .._validate import pair as _pair
from ..backend import Array
from . import _flat_shift, _strided
from .geometry import conv_output_size

__all__ = [
    "conv2d_backward",
    "conv2d_forward",
    "conv_output_size",
    "convolve2d",
    "correlate2d",
    "trusted_backward",
    "trusted_forward",
]


def _check_together(where: str, first: tuple, *others: tuple) -> None:
    """Arrays that do not share a namespace and a device raise an error naming both placements."""
    home_name, home = first[0], backend.placement_of(first[1])
    for name, a in others:
        got = backend.placement_of(a)
        if got != home:
            raise ValueError(
                f"{where}: {name} is on {got.name} but {home_name} is on {home.name}. Move them to one "
                f"device first."
            )


def _check_nchw(x, k, stride, padding, where: str, dilation=1, groups=1):
    for name, a in (("x", x), ("kernel", k)):
        if not backend.is_array(a):
            raise TypeError(f"{where}: expected {name} to be an array, received {type(a).__name__}.")
    _check_together(where, ("x", x), ("the kernel", k))
    xp = backend.array_namespace(x, k)
    if x.ndim != 4:
        raise ValueError(
            f"{where}: expected x of rank 4 (n, c_I, h_I, w_I), received shape {tuple(x.shape)}."
        )
    if k.ndim != 4:
        raise ValueError(
            f"{where}: expected kernel of rank 4 (c_O, c_I, h_K, w_K), received shape {tuple(k.shape)}."
        )
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{where}: Expected a strictly positive integer. Received groups={groups!r}.")
    if k.shape[0] % groups:
        raise ValueError(
            f"{where}: the {k.shape[0]} kernels do not split into groups={groups} (kernel shape {tuple(k.shape)})."
        )
    if x.shape[1] != k.shape[1] * groups:
        per = "" if groups == 1 else f" x {groups} groups"
        raise ValueError(
            f"{where}: x has {x.shape[1]} channels but the kernel expects {k.shape[1]}{per} "
            f"(x shape {tuple(x.shape)}, kernel shape {tuple(k.shape)})."
        )
    if x.dtype != k.dtype:
        raise TypeError(f"{where}: x has dtype {x.dtype} but the kernel has dtype {k.dtype}.")
    stride = _pair(stride, "stride", 1)
    padding = _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    for axis, name in ((2, "height"), (3, "width")):
        padded = x.shape[axis] + 2 * padding[axis - 2]
        span = dilation[axis - 2] * (k.shape[axis] - 1) + 1
        if span > padded:
            dilated = "" if span == k.shape[axis] else f" (dilated to {span})"
            raise ValueError(
                f"{where}: kernel {name} {k.shape[axis]}{dilated} is larger than the padded input {name} "
                f"{padded} (input {x.shape[axis]}, padding {padding[axis - 2]})."
            )
    return xp, stride, padding, dilation


def _cuda(xp, x, k, stride, padding):
    """The CUDA module when the RawKernels take this call (CuPy arrays, float32 / float64, a
    launch plan that fits), else None: the Array API path runs (on CuPy too)."""
    if not backend.is_cupy(xp):
        return None
    from . import cuda

    return cuda if cuda.supports(x, k, stride, padding) else None


def trusted_forward(xp, x, k, stride: tuple[int, int], padding: tuple[int, int], dilation=(1, 1), groups=1):
    """:func:`conv2d_forward` on inputs already validated (``stride``, ``padding``, ``dilation``
    int pairs).  The CUDA kernels have no dilation or groups: those take the Array API path."""
    cuda = _cuda(xp, x, k, stride, padding) if dilation == (1, 1) and groups == 1 else None
    if cuda is not None:
        return cuda.conv2d_forward(x, k, stride, padding)
    if _strided.worthwhile(stride, dilation, groups):  # only the windows the stride visits
        return _strided.forward(xp, x, k, stride, padding, backend.device(x), dilation, groups)
    return _flat_shift.forward(xp, x, k, stride, padding)


def trusted_backward(xp, x, k, dy, stride: tuple[int, int], padding: tuple[int, int], input_gradient: bool,
                     dilation=(1, 1), groups=1, reuse_unfold=False):  # fmt: skip
    """:func:`conv2d_backward` on inputs already validated.  ``reuse_unfold``: ``x`` is the
    input of the forward just before (a layer's saved input), whose unfold may be reused."""
    cuda = _cuda(xp, x, k, stride, padding) if dilation == (1, 1) and groups == 1 else None
    if cuda is not None:
        return cuda.conv2d_backward(x, k, dy, stride, padding, input_gradient)
    if _strided.worthwhile(stride, dilation, groups):
        return _strided.backward(
            xp, x, k, dy, stride, padding, input_gradient, backend.device(x), dilation, groups
        )
    return _flat_shift.backward(xp, x, k, dy, stride, padding, input_gradient, reuse_unfold)


def conv2d_forward(x, k, *, stride=1, padding=0, dilation=1, groups=1) -> Array:
    """Batched multi-channel cross-correlation, the sum of eq. 17 without its bias.

    ``Y[n, i] = sum_j Xpad[n, j] * K[i, j]`` (``*`` the valid cross-correlation, strided).

    Args:
        x: input, shape ``(n, c_I, h_I, w_I)``.
        k: kernels, shape ``(c_O, c_I, h_K, w_K)``, same namespace, device and dtype as ``x``.
        stride: ``s`` or ``(s_h, s_w)``, at least 1.
        padding: ``p`` or ``(p_h, p_w)``, zeros added on each side, at least 0.
        dilation: ``d`` or ``(d_h, d_w)``: the kernel's taps ``d`` apart (1: adjacent).
        groups: ``G`` dividing ``c_I`` and ``c_O``: kernel ``i`` sees only the ``c_I / G``
            channels of its group, ``k`` is ``(c_O, c_I / G, h_K, w_K)``; ``G = c_I`` is a
            depthwise convolution.

    Returns:
        ``Y`` of shape ``(n, c_O, h_O, w_O)`` in the namespace, device and dtype of ``x``.
    """
    xp, stride, padding, dilation = _check_nchw(x, k, stride, padding, "conv2d_forward", dilation, groups)
    return trusted_forward(xp, x, k, stride, padding, dilation, groups)


def conv2d_backward(
    x, k, dy, *, stride=1, padding=0, input_gradient: bool = True, dilation=1, groups=1
) -> tuple[Array | None, Array]:
    """The two backward products of the convolutional layer.

    * ``dK[i, j] = sum_n Xpad[n, j] * dY[n, i]`` (eq. 18, valid cross-correlation),
    * ``dX[n, j] = sum_i dY[n, i] *full rot180(K[i, j])`` (eq. 20 as the *full convolution*;
      the notes print the cross-correlation symbol, the finite-difference tests decide).

    Args:
        x: the forward input, ``(n, c_I, h_I, w_I)``.
        k: the kernels, ``(c_O, c_I, h_K, w_K)``.
        dy: ``dE/dY``, ``(n, c_O, h_O, w_O)``.
        input_gradient: when False, ``dX`` is not computed and ``None`` is returned for it.
        dilation, groups: as for :func:`conv2d_forward`.

    Returns:
        ``(dX, dK)`` with the shapes of ``x`` and ``k``.
    """
    xp, stride, padding, dilation = _check_nchw(x, k, stride, padding, "conv2d_backward", dilation, groups)
    expected = (
        x.shape[0],
        k.shape[0],
        conv_output_size(x.shape[2], k.shape[2], stride[0], padding[0], dilation[0]),
        conv_output_size(x.shape[3], k.shape[3], stride[1], padding[1], dilation[1]),
    )
    if not backend.is_array(dy) or tuple(dy.shape) != expected:
        got = tuple(dy.shape) if backend.is_array(dy) else type(dy).__name__
        raise ValueError(f"conv2d_backward: expected dy of shape {expected}, received {got}.")
    _check_together("conv2d_backward", ("x", x), ("dy", dy))
    if dy.dtype != x.dtype:
        raise TypeError(f"conv2d_backward: dy has dtype {dy.dtype} but x has dtype {x.dtype}.")
    return trusted_backward(xp, x, k, dy, stride, padding, bool(input_gradient), dilation, groups)


def _check_2d(x, k, mode: str, where: str):
    for name, a in (("input", x), ("kernel", k)):
        if not backend.is_array(a):
            raise TypeError(f"{where}: expected {name} to be an array, received {type(a).__name__}.")
        if a.ndim != 2:
            raise ValueError(f"{where}: expected a 2-D {name}, received shape {tuple(a.shape)}.")
    _check_together(where, ("the input", x), ("the kernel", k))
    if mode not in ("valid", "full"):
        raise ValueError(f'{where}: Expected mode "valid" or "full". Received mode={mode!r}.')
    if mode == "valid" and (k.shape[0] > x.shape[0] or k.shape[1] > x.shape[1]):
        raise ValueError(
            f"{where}: in valid mode the kernel {tuple(k.shape)} must fit inside the input {tuple(x.shape)}."
        )
    return backend.array_namespace(x, k)


def correlate2d(x, k, mode: str = "valid") -> Array:
    """2-D cross-correlation ``x * k`` (notes eq. 14 and 16).

    ``valid``: the kernel slides only where it fully overlaps the input, output
    ``(h_I - h_K + 1, w_I - w_K + 1)``.  ``full``: wherever it overlaps at all, output
    ``(h_I + h_K - 1, w_I + w_K - 1)`` (zero padding ``h_K - 1``, ``w_K - 1``).
    """
    xp = _check_2d(x, k, mode, "correlate2d")
    padding = (0, 0) if mode == "valid" else (k.shape[0] - 1, k.shape[1] - 1)
    y = conv2d_forward(x[None, None, ...], k[None, None, ...], padding=padding)
    return xp.reshape(y, y.shape[2:])


def convolve2d(x, k, mode: str = "valid") -> Array:
    """2-D convolution: cross-correlation with the kernel rotated by 180 degrees (eq. 15)."""
    xp = _check_2d(x, k, mode, "convolve2d")
    return correlate2d(x, xp.flip(k, axis=(0, 1)), mode)
