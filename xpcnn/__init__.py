"""xpcnn: a convolutional neural network library from first principles.

One code path for every backend: each layer is written against the Python Array API
namespace of its inputs, so NumPy (``device="cpu"``) and CuPy (``device="cuda"``) run the
same forward and backward equations of the notes.
"""

from . import (
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
from .checkpoint import CheckpointError, save
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
from .model import History, NonFiniteLossError, Sequential, load
from .neuron import Neuron, ThresholdLogicUnit
from .ops import conv2d_backward, conv2d_forward, convolve2d, correlate2d
from .optim import SGD, Adam, AdamW, Optimizer

__version__ = "0.1.0"

# The public names: everything imported above (submodules, classes and functions).
__all__ = sorted(name for name in globals() if not name.startswith("_"))
