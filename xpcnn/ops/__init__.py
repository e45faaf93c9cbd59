"""Cross-correlation and convolution: the 2-D operations of the notes and the NCHW primitive."""

from .correlation import conv2d_backward, conv2d_forward, convolve2d, correlate2d
from .geometry import conv_output_size

__all__ = ["conv2d_backward", "conv2d_forward", "conv_output_size", "convolve2d", "correlate2d"]


def __getattr__(name: str):
    if name == "reference":  # moved in 0.2: the per-sample loops are a test oracle, not an op
        import warnings

        from .. import testing

        warnings.warn(
            "xpcnn.ops.reference moved to xpcnn.testing; import it from there.",
            DeprecationWarning,
            stacklevel=2,
        )
        return testing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
