"""Layers: each with ``forward(x)`` and ``backward(output_gradient, learning_rate=None)``."""

from .activation import (
    ELU,
    GELU,
    Activation,
    Gaussian,
    Heaviside,
    InverseMultiquadratic,
    LeakyReLU,
    Linear,
    Logistic,
    Multiquadratic,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .base import REGISTRY, Layer, register
from .convolutional import Convolutional
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNorm
from .pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D
from .reshape import Flatten, Reshape

__all__ = ["REGISTRY", "Convolutional", "Dense", "Layer", "register"]
__all__ += [
    "ELU",
    "GELU",
    "Activation",
    "LeakyReLU",
    "SiLU",
    "Softplus",
    "AvgPool2D",
    "BatchNorm",
    "Dropout",
    "Flatten",
    "Gaussian",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "Heaviside",
    "InverseMultiquadratic",
    "Linear",
    "Logistic",
    "MaxPool2D",
    "Multiquadratic",
    "ReLU",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
