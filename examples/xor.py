"""XOR with a two-layer network: Dense + Tanh + Dense + Tanh, the quadratic loss (notes eq. 2)
and plain gradient descent on one sample at a time (notes section 2: feed, error, adjust,
repeat).

    python examples/xor.py                 # 1,000 epochs, a fraction of a second
    python examples/xor.py --device cuda   # the same code on a GPU (CuPy)
    python examples/xor.py --smoke         # 500 epochs (used by the tests)
"""

from __future__ import annotations

import argparse

import xpcnn
from xpcnn import zoo


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="cpu", type=zoo.device_argument, help='"cpu" (NumPy) or "cuda" (CuPy)'
    )
    parser.add_argument("--epochs", type=int, default=None, help="passes over the 4 samples (default 1000)")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a fast run: 500 epochs")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"argument --epochs: expected a strictly positive integer, received {args.epochs}")
    epochs = args.epochs or (500 if args.smoke else 1000)

    x, y = zoo.xor_data()  # (4, 2) inputs, (4, 1) targets, float64 host arrays
    model = zoo.xor_network(seed=args.seed, device=args.device)
    model.summary(input_shape=(2,))
    optimizer = xpcnn.SGD(args.learning_rate)  # w <- w - gamma dE/dw (eq. 1)
    report = max(1, epochs // 10)
    done = 0
    while done < epochs:  # fit in chunks to print the loss as it falls
        chunk = min(report, epochs - done)
        history = model.fit(
            x,
            y,
            loss="quadratic",
            optimizer=optimizer,
            epochs=chunk,
            batch_size=1,
            seed=args.seed + done,
            progress=False,
        )
        done += chunk
        print(f"epoch {done:5d}  loss {history['loss'][-1]:.6f}")

    loss = model.evaluate(x, y, loss="quadratic")["loss"]
    prediction = xpcnn.to_host(model.predict(x))
    for inputs, target, output in zip(x, y, prediction, strict=True):
        print(f"{inputs.astype(int).tolist()} -> {output[0]: .4f}  (target {int(target[0])})")
    print(f"Final loss: {loss:.6f}")
    return loss


if __name__ == "__main__":
    main()
