"""The output-size formula of a strided, zero-padded window (convolution and pooling), once."""

from __future__ import annotations

__all__ = ["conv_output_size"]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """``h_O = (h_I + 2 p - d (h_K - 1) - 1) // s + 1``: the output length along one axis for an
    input of ``size``, a window of ``kernel`` taps ``d`` apart (dilation; the window spans
    ``d (h_K - 1) + 1``), stride ``s`` and ``p`` zeros on each side."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
