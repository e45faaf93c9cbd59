"""Exact resumption (issue 12): the training state in a checkpoint, ``fit(initial_epoch=...)``,
``fit(resume_from=...)``, ``BackupAndRestore`` (also across a SIGKILL), and optimizers that
refuse the state of another model's layers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xpcnn
from xpcnn import schedules
from xpcnn.callbacks import BackupAndRestore, Callback

RNG = np.random.default_rng(3)
X = RNG.normal(size=(36, 1, 6, 6))
Y = RNG.integers(0, 3, 36)

OPTIMIZERS = {
    "sgd": lambda lr: xpcnn.SGD(lr),
    "momentum": lambda lr: xpcnn.SGD(lr, momentum=0.9),
    "nesterov": lambda lr: xpcnn.SGD(lr, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda lr: xpcnn.Adam(lr),
    "adamw": lambda lr: xpcnn.AdamW(lr, weight_decay=0.05),
    "rmsprop": lambda lr: xpcnn.RMSProp(lr, momentum=0.5, centered=True),
    "adagrad": lambda lr: xpcnn.Adagrad(lr, initial_accumulator_value=0.1),
}
SCHEDULES = {
    "constant": lambda: 0.02,
    "cosine-warmup": lambda: schedules.LinearWarmup(schedules.CosineDecay(0.02, 10, final=0.001), 3),
}


def net(device="cpu", dtype="float64"):
    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 6, 6), 3, 3, seed=1),
            xpcnn.BatchNorm(),
            xpcnn.ReLU(),
            xpcnn.Flatten(),
            xpcnn.Dropout(0.25, seed=7),
            xpcnn.Dense(48, 3, seed=2),
        ],
        device=device,
        dtype=dtype,
    )


def bits(model) -> dict:
    return {
        f"{k}.{name}": np.ascontiguousarray(xpcnn.to_host(v)).tobytes()
        for k, leaf in enumerate(model.leaves())
        for name, v in leaf.tensors().items()
    }


def same(a, b) -> None:
    left, right = bits(a), bits(b)
    assert left.keys() == right.keys()
    differ = [k for k in left if left[k] != right[k]]
    assert differ == [], f"not bit-identical: {differ}"


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_ten_steps_equal_five_then_save_load_then_five(be, tmp_path, kind, schedule):
    batches = [(be.asarray(X[i : i + 6]), be.asarray(Y[i : i + 6], dtype="int64")) for i in range(0, 36, 6)]
    batches = (batches * 2)[:10]

    def compiled():
        return net(be.place).compile(
            loss="softmax_crossentropy", optimizer=OPTIMIZERS[kind](SCHEDULES[schedule]())
        )

    straight = compiled()
    for xb, yb in batches:
        straight.train_step(xb, yb)
    first = compiled()
    for xb, yb in batches[:5]:
        first.train_step(xb, yb)
    first.save(tmp_path / "half.xpcnn")
    second = xpcnn.load(tmp_path / "half.xpcnn", device=be.place)
    assert type(second.optimizer) is type(first.optimizer) and second.optimizer.iterations == 5
    for xb, yb in batches[5:]:
        second.train_step(xb, yb)
    same(straight, second)
    assert second.optimizer.iterations == straight.optimizer.iterations == 10


FIT = {"loss": "softmax_crossentropy", "batch_size": 8, "progress": False, "metrics": ["accuracy"]}


def test_fit_continues_exactly_with_initial_epoch_and_with_resume_from(tmp_path):
    straight = net()
    history = straight.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=3, seed=5, **FIT)
    half = net()
    half.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=1, seed=5, **FIT)
    half.save(tmp_path / "e1.xpcnn")

    loaded = xpcnn.load(tmp_path / "e1.xpcnn")  # the loss, optimizer and metrics come back too
    loaded.fit(X, Y, epochs=3, initial_epoch=1, seed=5, batch_size=8, progress=False)
    same(straight, loaded)

    resumed = net()  # the same script again: a fresh model and optimizer
    again = resumed.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=3, resume_from=tmp_path / "e1.xpcnn", **FIT)
    same(straight, resumed)
    assert again.epoch == [0, 1, 2] and again["loss"] == history["loss"]
    assert again["accuracy"] == history["accuracy"]


class Interrupt(Callback):
    """Raises at a global batch number: an interruption inside the process."""

    def __init__(self, at: int):
        self.at, self.seen = at, 0

    def on_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("save_every", ["epoch", 2, 3])
def test_backup_and_restore_resumes_mid_epoch(tmp_path, save_every):
    straight = net()
    expected = straight.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=3, seed=11, **FIT)
    path = tmp_path / "backup.xpcnn"
    model = net()
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=3, seed=11,
                  callbacks=[BackupAndRestore(path, save_every=save_every), Interrupt(8)], **FIT)  # fmt: skip
    assert path.exists()
    progress = xpcnn.checkpoint.load_layers(path)[0].training["progress"]
    # 5 batches an epoch; interrupted after global batch 8 (epoch 1, batch 3), before its backup
    assert (progress["epoch"], progress["batch"]) == {"epoch": (1, 0), 2: (1, 2), 3: (1, 0)}[save_every]
    model = net()
    backup = BackupAndRestore(path, save_every=save_every)
    history = model.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=3, seed=999, callbacks=[backup], **FIT)
    same(straight, model)
    assert history["loss"] == expected["loss"] and history["accuracy"] == expected["accuracy"]
    assert not path.exists()  # deleted once training ended normally


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import xpcnn
    from xpcnn.callbacks import BackupAndRestore, Callback

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(36, 1, 6, 6)), rng.integers(0, 3, 36)
    model = xpcnn.Sequential([xpcnn.Convolutional((1, 6, 6), 3, 3, seed=1), xpcnn.BatchNorm(), xpcnn.ReLU(),
                              xpcnn.Flatten(), xpcnn.Dropout(0.25, seed=7), xpcnn.Dense(48, 3, seed=2)],
                             dtype="float64")

    class Kill(Callback):
        seen = 0
        def on_batch_end(self, batch, logs=None):
            Kill.seen += 1
            if Kill.seen == int(os.environ.get("KILL_AT", "0")):
                os.kill(os.getpid(), signal.SIGKILL)

    callbacks = [Kill()]
    if sys.argv[2] != "-":
        callbacks.append(BackupAndRestore(sys.argv[2], save_every=2))
    model.fit(x, y, loss="softmax_crossentropy", optimizer=xpcnn.AdamW(0.01), epochs=3, batch_size=8,
              seed=0, progress=False, callbacks=callbacks)
    np.savez(sys.argv[1], *[xpcnn.to_host(v) for leaf in model.leaves() for v in leaf.tensors().values()])
    """
)


def test_a_job_killed_mid_epoch_and_restarted_ends_with_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    backup = tmp_path / "backup.xpcnn"

    def run(out, backup_path, kill_at=0):
        env = {**os.environ, "KILL_AT": str(kill_at)}
        return subprocess.run([sys.executable, str(script), str(out), str(backup_path)], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    killed = run(tmp_path / "never.npz", backup, kill_at=9)  # batch 4 of epoch 2 (5 a epoch)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert backup.exists() and not (tmp_path / "never.npz").exists()
    restarted = run(tmp_path / "resumed.npz", backup)
    assert restarted.returncode == 0, restarted.stderr
    straight = run(tmp_path / "straight.npz", "-")
    assert straight.returncode == 0, straight.stderr
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "straight.npz")
    assert len(a.files) == len(b.files) == 8
    for name in a.files:
        assert a[name].tobytes() == b[name].tobytes(), name
    assert not backup.exists()


def test_reusing_an_optimizer_across_load_is_refused(tmp_path):
    adam = xpcnn.Adam(0.01)
    model = net()
    model.fit(X, Y, optimizer=adam, epochs=1, seed=0, **FIT)
    model.save(tmp_path / "m.xpcnn")
    loaded = xpcnn.load(tmp_path / "m.xpcnn")
    before = bits(loaded)
    with pytest.raises(RuntimeError, match=r"holds state for layers of another model .*\(model\.optimizer\)"):
        loaded.fit(X, Y, optimizer=adam, epochs=1, seed=0, **FIT)
    with pytest.raises(RuntimeError, match="holds state for layers of another model"):
        loaded.compile(optimizer=adam)
    assert bits(loaded) == before
    loaded.fit(X, Y, epochs=1, seed=0, batch_size=8, progress=False)  # its own restored optimizer
    adam.reset()
    loaded.fit(X, Y, optimizer=adam, epochs=1, seed=0, **FIT)  # a reset one starts over: allowed


def test_weights_only_checkpoints_stay_small_and_a_loaded_model_fits(tmp_path):
    model = net()
    model.fit(X, Y, optimizer="adam", epochs=1, seed=0, **FIT)
    model.save(tmp_path / "full.xpcnn")
    model.save(tmp_path / "weights.xpcnn", include_optimizer=False)
    full, weights = (os.path.getsize(tmp_path / n) for n in ("full.xpcnn", "weights.xpcnn"))
    assert weights < full / 2  # Adam's two moments per parameter are most of the full file
    small = xpcnn.load(tmp_path / "weights.xpcnn")
    assert small.optimizer is None and small.loss is None
    same(model, small)
    with pytest.raises(ValueError, match="no loss given"):
        small.fit(X, Y, epochs=1, progress=False)
    xpcnn.load(tmp_path / "full.xpcnn").fit(X, Y, progress=False)  # the failing example


def test_a_custom_loss_is_left_out_by_default_and_refused_when_the_state_is_required(tmp_path):
    class Halved(xpcnn.SoftmaxCrossEntropy):
        pass

    model = net().compile(loss=Halved(), optimizer="sgd")
    model.save(tmp_path / "m.xpcnn")
    info = xpcnn.checkpoint.load_layers(tmp_path / "m.xpcnn")[0].training
    assert info["left_out"] == ["loss"] and info["optimizer"]["type"] == "SGD"
    with pytest.raises(xpcnn.CheckpointError, match=r"the loss Halved\(\) is not one of xpcnn's"):
        model.save(tmp_path / "m.xpcnn", include_optimizer=True)
    with pytest.raises(ValueError, match="BackupAndRestore: the training state cannot be saved"):
        model.fit(X, Y, epochs=1, progress=False, callbacks=[BackupAndRestore(tmp_path / "b.xpcnn")])


def test_a_plateau_schedule_resumes_with_what_it_learned(tmp_path):
    plateau = schedules.ReduceOnPlateau(0.05, monitor="loss", patience=0, factor=0.5)
    model = net()
    model.fit(X, Y, optimizer=xpcnn.SGD(schedules.LinearWarmup(plateau, 2)), epochs=3, seed=0, **FIT)
    model.save(tmp_path / "p.xpcnn")
    restored = xpcnn.load(tmp_path / "p.xpcnn").optimizer.schedule.after
    assert isinstance(restored, schedules.ReduceOnPlateau)
    assert restored.state() == plateau.state() and restored.config() == plateau.config()


def test_resume_from_another_architecture_or_optimizer_changes_nothing(tmp_path):
    model = net()
    model.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=1, seed=0, **FIT)
    model.save(tmp_path / "m.xpcnn")
    other = xpcnn.Sequential([xpcnn.Convolutional((1, 6, 6), 3, 3, seed=1), xpcnn.BatchNorm(), xpcnn.ReLU(),
                              xpcnn.Flatten(), xpcnn.Dropout(0.5, seed=7), xpcnn.Dense(48, 3, seed=2)],
                             dtype="float64")  # fmt: skip
    before = bits(other)
    with pytest.raises(ValueError, match=r"layer 4 \(Dropout\) has the configuration .*'rate': 0.5"):
        other.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=2, resume_from=tmp_path / "m.xpcnn", **FIT)
    assert bits(other) == before
    fresh = net()
    before = bits(fresh)
    with pytest.raises(ValueError, match="the saved optimizer has the hyperparameters"):
        fresh.fit(X, Y, optimizer=xpcnn.Adam(0.02), epochs=2, resume_from=tmp_path / "m.xpcnn", **FIT)
    assert bits(fresh) == before
    with pytest.raises(ValueError, match="initial_epoch=1 and a resumed run"):
        fresh.fit(X, Y, epochs=2, initial_epoch=1, resume_from=tmp_path / "m.xpcnn", **FIT)
    with pytest.raises(ValueError, match="Expected an integer >= 0|initial_epoch"):
        fresh.fit(X, Y, epochs=2, initial_epoch=-1, **FIT)


# ------------------------------------------------------------------ review regressions
def test_a_refused_resume_changes_neither_the_model_nor_the_optimizer(tmp_path):
    path = tmp_path / "b.xpcnn"
    with pytest.raises(KeyboardInterrupt):
        net().fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=2, seed=0,
                  callbacks=[BackupAndRestore(path, save_every=2), Interrupt(3)], **FIT)  # fmt: skip
    for bad in ({"batch_size": 6}, {"initial_epoch": 1}):
        model, adam = net(), xpcnn.Adam(0.01)
        before = bits(model)
        with pytest.raises(
            ValueError, match="batches of 8; this run has 36 samples in batches of 6|initial_epoch=1"
        ):
            model.fit(X, Y, optimizer=adam, epochs=2, resume_from=path, **{**FIT, **bad})
        assert bits(model) == before and adam.iterations == 0 and adam.state == {}


def test_a_bad_progress_entry_leaves_a_given_optimizer_untouched(tmp_path):
    model = net()
    model.fit(X, Y, optimizer=xpcnn.Adam(0.01), epochs=1, seed=0, **FIT)
    model.save(tmp_path / "m.xpcnn")
    from test_safetensors import _rewrite_training, _set

    _rewrite_training(tmp_path / "m.xpcnn", _set("progress/rng", {"bit_generator": "PCG64", "state": 3}))
    adam = xpcnn.Adam(0.01)
    with pytest.raises(xpcnn.CheckpointError, match="shuffle generator state is not valid"):
        net().fit(X, Y, optimizer=adam, epochs=2, resume_from=tmp_path / "m.xpcnn", **FIT)
    assert adam.iterations == 0 and adam.state == {}


def test_an_optimizer_left_out_keeps_the_progress(tmp_path):
    model = net()
    model.fit(X, Y, optimizer=xpcnn.SGD(lambda t: 0.01), epochs=2, seed=0, **FIT)
    model.save(tmp_path / "m.xpcnn")  # a function schedule: the optimizer cannot be saved
    info = xpcnn.checkpoint.load_layers(tmp_path / "m.xpcnn")[0].training
    assert info["left_out"] == ["optimizer"] and info["progress"]["epoch"] == 2
    history = net().fit(
        X, Y, optimizer=xpcnn.SGD(lambda t: 0.01), epochs=3, resume_from=tmp_path / "m.xpcnn", **FIT
    )
    assert history.epoch == [0, 1, 2]  # two restored, one trained


def test_backup_and_restore_with_reduce_lr_on_plateau_resumes_exactly(tmp_path):
    from xpcnn.callbacks import ReduceLROnPlateau

    def run(callbacks):
        model = net()
        history = model.fit(X, Y, optimizer=xpcnn.SGD(0.05), epochs=4, seed=0,
                            callbacks=[ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=1.0), *callbacks],
                            **FIT)  # fmt: skip
        return model, history

    straight, expected = run([])
    assert len(set(expected["learning_rate"])) > 1  # the rate did drop
    path = tmp_path / "b.xpcnn"
    with pytest.raises(KeyboardInterrupt):
        run([BackupAndRestore(path), Interrupt(12)])  # in epoch 3 (5 batches an epoch)
    resumed, history = run([BackupAndRestore(path)])
    same(straight, resumed)
    assert history["learning_rate"] == expected["learning_rate"]
