"""xpcnn: a convolutional neural network library from first principles.

One code path for every backend: each layer is written against the Python Array API
namespace of its inputs, so NumPy (``device="cpu"``) and CuPy (``device="cuda"``) run the
same forward and backward equations of the notes.
"""

from . import backend, init, ops
from .backend import Placement, cuda_available, placement, to_host
from .gradcheck import GradientCheckError, check_layer_gradients, check_loss_gradient, numerical_gradient
from .layers import REGISTRY, Convolutional, Dense, Layer
from .ops import conv2d_backward, conv2d_forward, convolve2d, correlate2d

__version__ = "0.1.0"

__all__ = [
    "REGISTRY",
    "Convolutional",
    "Dense",
    "GradientCheckError",
    "Layer",
    "Placement",
    "backend",
    "check_layer_gradients",
    "check_loss_gradient",
    "conv2d_backward",
    "conv2d_forward",
    "convolve2d",
    "correlate2d",
    "cuda_available",
    "init",
    "numerical_gradient",
    "ops",
    "placement",
    "to_host",
]
