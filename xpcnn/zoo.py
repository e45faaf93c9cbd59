"""Ready-made networks and their training recipes, shared by ``xpcnn demo``, the examples
and the notebook (one definition each, so they never drift apart).

* :func:`xor_network`: Dense(2, 3) + Tanh + Dense(3, 1) + Tanh, trained with the quadratic
  loss (notes section 2, eq. 2 with ``C = 1/2``).
* :func:`binary_cnn`: the notes' CNN (section 3): Convolutional (5 kernels 3x3, the notes'
  per-pixel biases ``B_i``, eq. 17) + Sigmoid + Reshape + Dense + Sigmoid + Dense + Sigmoid,
  trained with binary cross-entropy (eq. 21-24) to tell digit 0 from digit 1.
* :func:`digits_cnn`: a small CNN for the 10 digits: two Convolutional + ReLU + MaxPool2D
  blocks, Dense + ReLU, Dense to 10 logits, trained with softmax cross-entropy and Adam.

:data:`RECIPES` holds, per task, the data selection and the training settings;
:func:`train` runs one (load the bundled digits, build, fit, evaluate) and returns a
:class:`Result`.  Everything is seeded: one seed, one result on a given backend.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from . import datasets, optim, schedules
from .layers import (
    BatchNorm,
    Convolutional,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Reshape,
    Sigmoid,
    Tanh,
)
from .losses import Accuracy, BinaryCrossEntropy, SoftmaxCrossEntropy
from .model import History, Sequential
from .residual import Residual

__all__ = [
    "RECIPES",
    "Recipe",
    "Result",
    "binary_cnn",
    "device_argument",
    "digits_cnn",
    "digits_resnet",
    "load_task",
    "train",
    "xor_data",
    "xor_network",
]


def device_argument(value: str) -> str:
    """An ``argparse`` ``type=`` for a ``--device`` option: the value, checked at once, so that
    ``--device cuda`` without CuPy or a GPU ends with one line (``error: argument --device:
    device='cuda' needs CuPy ...``), not a traceback in the middle of training."""
    import argparse

    from . import backend

    try:
        backend.placement(value)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


# ------------------------------------------------------------------------------ networks
def xor_network(*, hidden: int = 3, seed: int = 0, device="cpu", dtype: str = "float64") -> Sequential:
    """``(N, 2) -> (N, 1)``: Dense + Tanh + Dense + Tanh (targets 0 and 1 lie in tanh's range)."""
    return Sequential(
        [Dense(2, hidden, seed=seed), Tanh(), Dense(hidden, 1, seed=seed + 1), Tanh()],
        device=device,
        dtype=dtype,
    )


def xor_data(dtype: str = "float64"):
    """The four XOR inputs ``(4, 2)`` and targets ``(4, 1)`` as host arrays."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([[0], [1], [1], [0]], dtype=dtype)
    return x, y


def binary_cnn(*, depth: int = 5, hidden: int = 100, seed: int = 0, device="cpu", dtype: str = "float32"):
    """The notes' CNN, ``(N, 1, 28, 28) -> (N, 1)`` probabilities of "digit 1".

    Convolutional (``depth`` kernels 3x3, valid, per-pixel biases as in eq. 17) -> Sigmoid ->
    Reshape ``(depth, 26, 26) -> (depth * 26 * 26,)`` -> Dense(hidden) -> Sigmoid -> Dense(1)
    -> Sigmoid (eq. 23).
    """
    return Sequential(
        [
            Convolutional((1, 28, 28), 3, depth, bias="pixel", seed=seed),
            Sigmoid(),
            Reshape((depth, 26, 26), (depth * 26 * 26,)),
            Dense(depth * 26 * 26, hidden, seed=seed + 1),
            Sigmoid(),
            Dense(hidden, 1, seed=seed + 2),
            Sigmoid(),
        ],
        device=device,
        dtype=dtype,
    )


def digits_cnn(
    *, depths=(16, 32), hidden: int = 128, seed: int = 0, device="cpu", dtype: str = "float32"
) -> Sequential:
    """A small CNN for 10 classes, ``(N, 1, 28, 28) -> (N, 10)`` logits.

    Convolutional 3x3 (``depths[0]`` kernels) -> ReLU -> MaxPool 2 -> ``(f0, 13, 13)``;
    Convolutional 3x3 (``depths[1]`` kernels) -> ReLU -> MaxPool 2 -> ``(f1, 5, 5)``;
    Flatten -> Dense(hidden) -> ReLU -> Dense(10).  Pair it with :class:`SoftmaxCrossEntropy`
    (which takes the logits: no Softmax layer at the end).
    """
    f0, f1 = depths
    return Sequential(
        [
            Convolutional((1, 28, 28), 3, f0, seed=seed),
            ReLU(),
            MaxPool2D(2),
            Convolutional((f0, 13, 13), 3, f1, seed=seed + 1),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(f1 * 5 * 5, hidden, seed=seed + 2),
            ReLU(),
            Dense(hidden, 10, seed=seed + 3),
        ],
        device=device,
        dtype=dtype,
    )


def _block(depth: int, stride: int, project: bool, seed: int) -> list:
    block = [
        Convolutional(3, depth, stride=stride, padding=1, bias="none", init="he_normal", seed=seed),
        BatchNorm(),
        ReLU(),
        Convolutional(3, depth, padding=1, bias="none", init="he_normal", seed=seed + 1),
        BatchNorm(),
    ]
    shortcut = None
    if project:
        shortcut = [
            Convolutional(1, depth, stride=stride, bias="none", init="he_normal", seed=seed + 2),
            BatchNorm(),
        ]
    return [Residual(block, shortcut), ReLU()]


def digits_resnet(
    *, widths=(16, 32, 64), dropout: float = 0.2, seed: int = 0, device="cpu", dtype: str = "float32"
) -> Sequential:
    """A small residual network for 10 classes, ``(N, 1, 28, 28) -> (N, 10)`` logits, written
    without computing a size by hand (every size is inferred from ``input_shape``).

    A stem (3x3 Convolutional -> BatchNorm -> ReLU, ``widths[0]`` channels), then one residual
    block per width (He et al., 2016: ``relu(B(x) + S(x))``, ``B`` two 3x3 convolutions with
    BatchNorm, ``S`` the identity or, where the width changes, a strided 1x1 convolution with
    BatchNorm); the second and later blocks halve the resolution (28 -> 14 -> 7).  Then
    GlobalAvgPool2D -> Dropout -> Dense(10).  Kernels use He initialization (ReLU network).
    """
    layers = [
        Convolutional(3, widths[0], padding=1, bias="none", init="he_normal", seed=seed),
        BatchNorm(),
        ReLU(),
    ]
    previous = widths[0]
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        layers += _block(width, stride, width != previous or stride != 1, seed + 10 * (i + 1))
        previous = width
    layers += [GlobalAvgPool2D(), Dropout(dropout, seed=seed), Dense(10, seed=seed + 99)]
    return Sequential(layers, device=device, dtype=dtype, input_shape=(1, 28, 28))


# ------------------------------------------------------------------------------- recipes
@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one task is trained: which digits, which network, loss and optimizer settings.

    ``smoke_train`` / ``smoke_epochs``: the fast ``--smoke`` variant (fewer training digits,
    fewer epochs; the test set stays the full held-out set of the task's classes).
    """

    name: str
    description: str
    classes: tuple | None
    epochs: int
    batch_size: int
    learning_rate: float
    smoke_epochs: int
    smoke_train: int

    def build(self, *, seed: int = 0, device="cpu") -> Sequential:
        if self.name == "binary":
            return binary_cnn(seed=seed, device=device)
        if self.name == "resnet":
            return digits_resnet(seed=seed, device=device)
        return digits_cnn(seed=seed, device=device)

    def loss(self):
        return BinaryCrossEntropy() if self.name == "binary" else SoftmaxCrossEntropy()

    def optimizer(self, steps: int):
        """Plain gradient descent (eq. 1) for the notes' network; Adam with a cosine decay over
        the ``steps`` of the run for the 10-class CNN, with the one-cycle schedule for the
        residual network."""
        if self.name == "binary":
            return optim.SGD(self.learning_rate)
        if self.name == "resnet":
            return optim.Adam(schedules.OneCycle(self.learning_rate, total_steps=steps))
        return optim.Adam(
            schedules.CosineDecay(self.learning_rate, decay_steps=steps, final=self.learning_rate / 20)
        )

    def metric(self):
        return Accuracy()


RECIPES = {
    "binary": Recipe(
        name="binary",
        description="digits 0 vs 1, the notes' CNN (Convolutional + Sigmoid + binary cross-entropy, SGD)",
        classes=(0, 1),
        epochs=10,
        batch_size=16,
        learning_rate=0.1,
        smoke_epochs=5,
        smoke_train=800,
    ),
    "digits": Recipe(
        name="digits",
        description="10 digits, a small CNN (Convolutional + ReLU + MaxPool2D, softmax cross-entropy, Adam)",
        classes=None,
        epochs=10,
        batch_size=32,
        learning_rate=0.002,
        smoke_epochs=2,
        smoke_train=1000,
    ),
    "resnet": Recipe(
        name="resnet",
        description=(
            "10 digits, a residual network (3 residual blocks of 16/32/64 channels with BatchNorm, "
            "GlobalAvgPool2D, Dropout 0.2; Adam with a one-cycle schedule)"
        ),
        classes=None,
        epochs=12,
        batch_size=64,
        learning_rate=0.01,
        smoke_epochs=1,
        smoke_train=512,
    ),
}


def load_task(recipe: Recipe, *, smoke: bool = False, data_seed: int = 0):
    """``(x_train, y_train), (x_test, y_test)`` from the bundled digits (1,000 held out).

    Binary targets come as float32 ``(N, 1)`` (the network's output shape); 10-class targets as
    int64 labels ``(N,)``.  ``smoke`` keeps the first ``recipe.smoke_train`` training digits.
    """
    (x_train, y_train), (x_test, y_test) = datasets.load_digits(classes=recipe.classes, seed=data_seed)
    if smoke:
        x_train, y_train = x_train[: recipe.smoke_train], y_train[: recipe.smoke_train]
    if recipe.name == "binary":
        y_train = y_train.astype(np.float32).reshape(-1, 1)
        y_test = y_test.astype(np.float32).reshape(-1, 1)
    return (x_train, y_train), (x_test, y_test)


@dataclasses.dataclass
class Result:
    """What :func:`train` returns."""

    model: Sequential
    history: History
    test_loss: float
    test_accuracy: float
    seconds: float
    train_size: int
    test_size: int
    data: tuple

    def __repr__(self) -> str:
        return (
            f"Result(test_accuracy={self.test_accuracy:.4f}, test_loss={self.test_loss:.4f}, "
            f"seconds={self.seconds:.1f}, train_size={self.train_size}, test_size={self.test_size})"
        )


def train(
    task: str = "digits",
    *,
    device="cpu",
    epochs: int | None = None,
    seed: int = 0,
    smoke: bool = False,
    progress=True,
    validation: bool = False,
    summary: bool = False,
    distributed=None,
) -> Result:
    """Train ``RECIPES[task]`` on the bundled digits and evaluate it on the held-out digits.

    ``epochs`` overrides the recipe's; ``smoke`` trains a fast, smaller run; ``progress`` goes
    to :meth:`Sequential.fit`; ``validation`` evaluates the test set after each epoch too
    (``val_*`` curves in the history).  ``seconds`` covers building, training and evaluating
    (not loading the data).  ``summary`` prints the model's :meth:`~Sequential.summary` first.
    ``distributed``: a communicator of :mod:`xpcnn.distributed` (``fit`` on every rank of an MPI
    job, the same global batches).
    """
    if task not in RECIPES:
        raise ValueError(f"Expected task to be one of {sorted(RECIPES)}. Received task={task!r}.")
    recipe = RECIPES[task]
    if epochs is None:
        epochs = recipe.smoke_epochs if smoke else recipe.epochs
    (x_train, y_train), (x_test, y_test) = data = load_task(recipe, smoke=smoke)
    start = time.perf_counter()
    model = recipe.build(seed=seed, device=device)
    if summary:
        model.summary(input_shape=x_train.shape[1:])
    steps = max(1, epochs * -(-len(x_train) // recipe.batch_size))
    history = model.fit(
        x_train,
        y_train,
        loss=recipe.loss(),
        optimizer=recipe.optimizer(steps),
        epochs=epochs,
        batch_size=recipe.batch_size,
        seed=seed,
        metrics={"accuracy": recipe.metric()},
        validation_data=(x_test, y_test) if validation else None,
        progress=progress,
        distributed=distributed,
    )
    scores = model.evaluate(x_test, y_test)
    seconds = time.perf_counter() - start
    return Result(
        model=model,
        history=history,
        test_loss=scores["loss"],
        test_accuracy=scores["accuracy"],
        seconds=seconds,
        train_size=len(x_train),
        test_size=len(x_test),
        data=data,
    )
