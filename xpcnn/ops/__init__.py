"""Cross-correlation and convolution: the 2-D operations of the notes and the NCHW primitive."""

from .correlation import conv2d_backward, conv2d_forward, conv_output_size, convolve2d, correlate2d

__all__ = ["conv2d_backward", "conv2d_forward", "conv_output_size", "convolve2d", "correlate2d"]
