"""xpcnn: a convolutional neural network library from first principles.

One code path for every backend: each layer is written against the Python Array API
namespace of its inputs, so NumPy (``device="cpu"``) and CuPy (``device="cuda"``) run the
same forward and backward equations of the notes.
"""

from . import (  # training: optimisation and the model  # checkpoints (no pickle) and bundled data
    activations,
    backend,
    callbacks,
    checkpoint,
    data,
    datasets,
    descent,
    init,
    losses,
    neuron,
    ops,
    optim,
    schedules,
)
from .activations import *  # noqa: F403  (the activation functions and their derivatives)
from .backend import Placement, cuda_available, placement, to_host
from .checkpoint import CheckpointError, load, save
from .descent import DescentPath, gradient_descent
from .gradcheck import GradientCheckError, check_layer_gradients, check_loss_gradient, numerical_gradient
from .layers import (
    REGISTRY,
    Activation,
    AvgPool2D,
    Convolutional,
    Dense,
    Flatten,
    Gaussian,
    Heaviside,
    InverseMultiquadratic,
    Layer,
    Linear,
    Logistic,
    MaxPool2D,
    Multiquadratic,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import (
    Accuracy,
    BinaryCrossEntropy,
    BinaryCrossEntropyFromLogits,
    Loss,
    QuadraticLoss,
    SoftmaxCrossEntropy,
    ZeroOneLoss,
    accuracy,
)
from .model import History, NonFiniteLossError, Sequential
from .neuron import Neuron, ThresholdLogicUnit
from .ops import conv2d_backward, conv2d_forward, convolve2d, correlate2d
from .optim import SGD, Adam, AdamW, Optimizer

__version__ = "0.1.0"

__all__ = [
    "REGISTRY",
    "Accuracy",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyFromLogits",
    "Convolutional",
    "Dense",
    "GradientCheckError",
    "Layer",
    "Loss",
    "Placement",
    "QuadraticLoss",
    "SoftmaxCrossEntropy",
    "ZeroOneLoss",
    "accuracy",
    "backend",
    "check_layer_gradients",
    "check_loss_gradient",
    "conv2d_backward",
    "conv2d_forward",
    "convolve2d",
    "correlate2d",
    "cuda_available",
    "init",
    "losses",
    "numerical_gradient",
    "ops",
    "placement",
    "to_host",
]
__all__ += ["activations", "descent", "neuron", *activations.__all__, "DescentPath", "gradient_descent"]
__all__ += ["Neuron", "ThresholdLogicUnit", "Activation", "AvgPool2D", "Flatten", "Gaussian", "Heaviside"]
__all__ += ["InverseMultiquadratic", "Linear", "Logistic", "MaxPool2D", "Multiquadratic", "ReLU"]
__all__ += ["Reshape", "Sigmoid", "Softmax", "Tanh"]
__all__ += ["callbacks", "data", "optim", "schedules", "History", "NonFiniteLossError", "Sequential"]
__all__ += ["SGD", "Adam", "AdamW", "Optimizer"]
__all__ += ["checkpoint", "datasets", "CheckpointError", "load", "save"]
