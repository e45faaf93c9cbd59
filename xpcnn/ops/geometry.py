"""The output-size formula of a strided, zero-padded window (convolution and pooling), once."""

from __future__ import annotations

__all__ = ["conv_output_size"]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """``h_O = (h_I + 2 p - h_K) // s + 1``: the output length along one axis for an input of
    ``size``, a window of ``kernel``, stride ``s`` and ``p`` zeros on each side."""
    return (size + 2 * padding - kernel) // stride + 1
