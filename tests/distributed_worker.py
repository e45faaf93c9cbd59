"""Run under ``mpiexec -n N python -m mpi4py tests/distributed_worker.py <case> <folder>`` by
tests/test_distributed.py.  Every rank trains with ``fit(..., distributed=comm)``; rank 0 then
trains the same model in one process (no communicator) and writes both results to
``<folder>/result.npz``."""

from __future__ import annotations

import os
import sys

import numpy as np

import xpcnn
from xpcnn import distributed
from xpcnn.callbacks import Callback, ModelCheckpoint

case, folder = sys.argv[1], sys.argv[2]
comm = distributed.mpi()
dtype = "float32" if case.endswith("float32") else "float64"
rng = np.random.default_rng(0)
x, y = rng.normal(size=(17, 1, 6, 6)).astype(dtype), rng.integers(0, 3, 17)  # 8 + 8 + 1: uneven
x_val, y_val = rng.normal(size=(7, 1, 6, 6)).astype(dtype), rng.integers(0, 3, 7)


def net(width=32):
    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 6, 6), 3, 2, seed=1),
            xpcnn.Tanh(),
            xpcnn.Flatten(),
            xpcnn.Dense(width, 3, seed=2),
        ],
        dtype=dtype,
    )


def optimizer():
    return xpcnn.Adam(0.01) if case.startswith("adam") else xpcnn.SGD(0.05, momentum=0.9)


def train(model, comm=None, callbacks=None):
    return model.fit(x, y, loss="softmax_crossentropy", optimizer=optimizer(), epochs=3, batch_size=8, seed=4,
                     metrics=["accuracy"], validation_data=(x_val, y_val), progress=False, distributed=comm,
                     callbacks=callbacks)  # fmt: skip


def tensors(model):
    return [xpcnn.to_host(v) for leaf in model.leaves() for v in leaf.tensors().values()]


class Fail(Callback):
    def on_batch_end(self, batch, logs=None):
        if batch == 1:
            raise RuntimeError(f"rank {comm.rank} fails on purpose")


if case in ("sgd-float64", "adam-float64", "sgd-float32", "adam-float32"):
    model = net()
    if comm.rank != 0:  # a different starting point: the broadcast from rank 0 must replace it
        model.layers[3].set_parameters({"bias": np.full(3, 5.0, dtype=dtype)})
    checkpoint = ModelCheckpoint(os.path.join(folder, f"written-by-{comm.rank}.xpcnn"), save_best_only=False)
    history = train(model, comm, [checkpoint])
    every = comm.allgather([t.tobytes() for t in tensors(model)])
    assert all(e == every[0] for e in every), "the replicas differ"
    if comm.rank == 0:
        reference = net()
        expected = train(reference)
        evaluated = reference.evaluate(x_val, y_val, metrics=["accuracy"])
        np.savez(
            os.path.join(folder, "result.npz"),
            *tensors(model),
            *tensors(reference),
            history=np.array([history[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")]),
            expected=np.array([expected[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")]),
            evaluated=np.array([evaluated["loss"], evaluated["accuracy"]]),
        )
elif case == "fail":
    train(net(), comm, [Fail()] if comm.rank == comm.size - 1 else [])
elif case == "mismatch":
    model = (
        net()
        if comm.rank == 0
        else xpcnn.Sequential(
            [
                xpcnn.Convolutional((1, 6, 6), 3, 3, seed=1),
                xpcnn.Tanh(),
                xpcnn.Flatten(),
                xpcnn.Dense(48, 3, seed=2),
            ],
            dtype=dtype,
        )
    )
    train(model, comm)
elif case == "custom-loop":  # allreduce_gradients around backward and an optimizer step
    model, opt, loss = net(), xpcnn.SGD(0.1), xpcnn.SoftmaxCrossEntropy()
    comm.broadcast_model(model)
    share = comm.shard(slice(0, 17), 17)
    xb, yb = model.placement.asarray(x[share]), model.placement.asarray(y[share])
    prediction = model.forward(xb)
    model.backward(loss.gradient(prediction, yb), input_gradient=False)
    value = comm.allreduce_gradients(model, int(xb.shape[0]), 17, loss=loss(prediction, yb))
    opt.step(model.layers)
    if comm.rank == 0:
        reference, ref_opt = net(), xpcnn.SGD(0.1)
        p = reference.forward(reference.placement.asarray(x))
        reference.backward(loss.gradient(p, reference.placement.asarray(y)), input_gradient=False)
        ref_opt.step(reference.layers)
        np.savez(os.path.join(folder, "result.npz"), *tensors(model), *tensors(reference),
                 loss=np.array([float(value), float(loss(p, reference.placement.asarray(y)))]))  # fmt: skip
else:
    raise SystemExit(f"unknown case {case!r}")
