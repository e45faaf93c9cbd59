"""Layers: each with ``forward(x)`` and ``backward(output_gradient, learning_rate=None)``."""

from .base import REGISTRY, Layer, register
from .convolutional import Convolutional
from .dense import Dense

__all__ = ["REGISTRY", "Convolutional", "Dense", "Layer", "register"]
