"""Sequential: training, history, callbacks, NaN detection, bad input, placement, summary."""

import io
import math

import numpy as np
import pytest

import xpcnn
from xpcnn import callbacks as C
from xpcnn import data, schedules
from xpcnn.backend import dtype_name, placement_of

X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
Y_XOR = np.array([[0], [1], [1], [0]], dtype="float32")


def xor_model(seed=0, **kw):
    return xpcnn.Sequential(
        [xpcnn.Dense(2, 3, seed=seed), xpcnn.Tanh(), xpcnn.Dense(3, 1, seed=seed + 100), xpcnn.Tanh()], **kw
    )


def blobs(rng, n=60, dtype="float32"):
    """Two separable clusters in 2-D: x (n, 2), y (n, 1) in {0, 1}."""
    y = (np.arange(n) % 2).astype(dtype)[:, None]
    x = rng.normal(size=(n, 2)) * 0.3 + np.where(y > 0, 1.0, -1.0)
    return x.astype(dtype), y


def small(seed=0, dtype="float32", **kw):
    return xpcnn.Sequential(
        [xpcnn.Dense(2, 4, seed=seed), xpcnn.Tanh(), xpcnn.Dense(4, 1, seed=seed + 1)], dtype=dtype, **kw
    )


# ------------------------------------------------------------------------ training
def test_xor_reaches_a_loss_below_0_01():
    model = xor_model(seed=0)
    history = model.fit(
        X_XOR,
        Y_XOR,
        loss="quadratic",
        optimizer=xpcnn.SGD(0.1),
        epochs=500,
        batch_size=1,
        seed=0,
        progress=False,
    )
    assert history["loss"][-1] < 0.01
    assert history["loss"][-1] < history["loss"][0]
    prediction = xpcnn.to_host(model.predict(X_XOR))
    np.testing.assert_array_equal(prediction > 0.5, Y_XOR > 0.5)


def test_fit_on_every_backend(be, rng):
    """Host data copied batch by batch to the model's device; outputs and state stay there."""
    x, y = blobs(rng, dtype="float64")
    model = small(dtype="float64", device=be.place)
    history = model.fit(
        x,
        y,
        loss="mse",
        optimizer="adam",
        epochs=3,
        batch_size=16,
        seed=1,
        metrics=["accuracy"],
        progress=False,
    )
    assert len(history["loss"]) == 3 and len(history["accuracy"]) == 3
    for p in model.parameters().values():
        assert placement_of(p) == be.place and dtype_name(p.dtype) == "float64"
    for a in model.optimizer.state_arrays().values():
        assert placement_of(a) == be.place
    out = model.predict(x, batch_size=7)
    assert placement_of(out) == be.place and tuple(out.shape) == (60, 1)
    # device data in: the same result, batches taken on the device
    out2 = model.predict(be.asarray(x), batch_size=13)
    np.testing.assert_allclose(be.to_host(out2), be.to_host(out), rtol=1e-12)
    r1 = model.evaluate(x, y, batch_size=11)
    r2 = model.evaluate(be.asarray(x), be.asarray(y), batch_size=60)
    assert set(r1) == {"loss", "accuracy"} and r1["loss"] == pytest.approx(r2["loss"], rel=1e-10)
    h2 = model.fit(be.asarray(x), be.asarray(y), epochs=1, batch_size=16, seed=1, progress=False)
    assert math.isfinite(h2["loss"][0])


def test_same_seed_same_losses_and_learning_rate_history():
    x, y = blobs(np.random.default_rng(0))

    def run(seed):
        model = small(seed=3)
        return model.fit(
            x,
            y,
            loss="mse",
            optimizer=xpcnn.SGD(schedules.StepDecay(0.1, 4, 0.5)),
            epochs=3,
            batch_size=8,
            seed=seed,
            progress=False,
        )

    a, b = run(42), run(42)
    assert a["loss"] == b["loss"]
    # 60 samples / 8 = 8 steps per epoch: last steps 7, 15, 23 -> 0.1 * 0.5 ** (t // 4)
    assert a["learning_rate"] == pytest.approx([0.1 * 0.5 ** (t // 4) for t in (7, 15, 23)])
    assert run(43)["loss"] != a["loss"]  # another shuffling seed, other batches


def test_integer_labels_stay_integer_for_softmax_cross_entropy(rng):
    x = rng.normal(size=(30, 4)).astype("float32")
    labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")  # 3 classes
    model = xpcnn.Sequential([xpcnn.Dense(4, 8, seed=0), xpcnn.Tanh(), xpcnn.Dense(8, 3, seed=1)])
    h = model.fit(
        x,
        labels,
        loss=xpcnn.SoftmaxCrossEntropy(),
        optimizer=xpcnn.Adam(0.05),
        epochs=30,
        batch_size=10,
        seed=0,
        metrics=["accuracy"],
        progress=False,
    )
    assert h["accuracy"][-1] > 0.8 and h["loss"][-1] < h["loss"][0]


def test_a_loss_object_of_ones_own(rng):
    """Any object with __call__ (a 0-d array) and gradient (dE/dprediction) is a loss."""

    class Half:
        def __call__(self, prediction, target):
            d = prediction - target
            return 0.5 * backend_sum(d * d) / prediction.shape[0]

        def gradient(self, prediction, target):
            return (prediction - target) / prediction.shape[0]

    def backend_sum(a):
        return xpcnn.backend.array_namespace(a).sum(a)

    x, y = blobs(rng)
    model = small(seed=1)
    reference = small(seed=1)
    h = model.fit(x, y, loss=Half(), epochs=2, batch_size=60, shuffle=False, progress=False)
    g = reference.fit(
        x, y, loss=xpcnn.QuadraticLoss(C=0.5), epochs=2, batch_size=60, shuffle=False, progress=False
    )
    assert h["loss"] == pytest.approx(g["loss"], rel=1e-6)  # (N, 1) outputs: the same loss


def test_history_and_validation(rng):
    x, y = blobs(rng)
    xv, yv = blobs(rng, n=20)
    model = small()
    h = model.fit(
        x,
        y,
        loss="mse",
        epochs=4,
        batch_size=16,
        seed=0,
        validation_data=(xv, yv),
        metrics=["accuracy"],
        progress=False,
    )
    assert h.epoch == [0, 1, 2, 3] and len(h) == 4
    assert set(h.keys()) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert all(len(v) == 4 for v in h.history.values())
    assert h["learning_rate"] == [0.01] * 4  # the default SGD(0.01)
    # the last validation values are those of evaluate() with the trained weights
    final = model.evaluate(xv, yv)
    assert h["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-6)
    assert h["val_accuracy"][-1] == pytest.approx(final["accuracy"])
    assert model.history is h and "History(epochs=4" in repr(h)
    assert len(model.fit(x, y, epochs=0, progress=False)) == 0  # epochs=0 trains nothing


def test_training_loss_is_the_sample_weighted_mean_of_batch_losses(rng):
    x, y = blobs(rng, n=10)
    model = small(dtype="float64")
    seen = []

    class Record(C.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((logs["loss"], logs["size"]))

    h = model.fit(
        x.astype("float64"),
        y.astype("float64"),
        loss="mse",
        epochs=1,
        batch_size=4,
        shuffle=False,
        callbacks=[Record()],
        progress=False,
    )
    assert [s for _, s in seen] == [4, 4, 2]
    assert h["loss"][0] == pytest.approx(sum(v * s for v, s in seen) / 10, rel=1e-12)


# ----------------------------------------------------------------------- callbacks
class Order(C.Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_end(self, batch, logs=None):
        self.events.append(f"batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch}")

    def on_train_end(self, logs=None):
        self.events.append("train_end")


def test_callback_hooks_in_order(rng):
    x, y = blobs(rng, n=10)
    order = Order()
    small().fit(x, y, loss="mse", epochs=2, batch_size=5, callbacks=[order], progress=False)
    assert order.events == [
        "train_begin",
        "epoch_begin 0", "batch 0", "batch 1", "epoch_end 0",
        "epoch_begin 1", "batch 0", "batch 1", "epoch_end 1",
        "train_end",
    ]  # fmt: skip
    assert order.model is not None and order.params == {
        "epochs": 2,
        "batches": 2,
        "samples": 10,
        "logs": ["loss", "learning_rate"],
    }


def test_early_stopping_stops_and_restores_best(rng):
    x, y = blobs(rng)
    xv, yv = blobs(rng, n=20)
    model = small()
    # an absurd learning rate: the validation loss gets worse after the first epochs
    stop = C.EarlyStopping(monitor="val_loss", patience=2, restore_best=True)
    losses = []

    class Snapshot(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append(logs["val_loss"])

    h = model.fit(
        x,
        y,
        loss="mse",
        optimizer=xpcnn.SGD(0.5, momentum=0.9),
        epochs=50,
        batch_size=4,
        seed=0,
        validation_data=(xv, yv),
        callbacks=[Snapshot(), stop],
        progress=False,
    )
    assert len(h) < 50 and stop.stopped_epoch == len(h) - 1
    best = int(np.argmin(losses))
    assert stop.best_epoch == best and len(h) == best + 1 + 3  # patience 2: stops on the 3rd bad epoch
    assert model.evaluate(xv, yv)["loss"] == pytest.approx(losses[best], rel=1e-5)


def test_early_stopping_on_a_missing_metric_says_what_to_do(rng):
    x, y = blobs(rng, n=10)
    with pytest.raises(
        ValueError, match=r"monitor='val_loss' is not among the logged values.*validation_data"
    ):
        small().fit(x, y, loss="mse", epochs=2, callbacks=[C.EarlyStopping()], progress=False)


def test_model_checkpoint_path_naming_a_missing_value_says_what_to_do(rng, tmp_path):
    x, y = blobs(rng, n=10)
    saver = C.ModelCheckpoint(str(tmp_path / "m-{val_loss:.3f}.xpcnn"), monitor="loss")
    with pytest.raises(
        ValueError,
        match=r"ModelCheckpoint: the path .*m-\{val_loss:\.3f\}\.xpcnn' names 'val_loss', which is not among "
        r"the logged values \['learning_rate', 'loss'\]\. Pass validation_data to fit",
    ):
        small().fit(x, y, loss="mse", epochs=2, callbacks=[saver], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_model_checkpoint_calls_save(rng, tmp_path):
    x, y = blobs(rng, n=10)
    model = small()
    calls = []
    model.save = lambda path: calls.append(path)
    every = C.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.xpcnn"), monitor="loss")
    best = C.ModelCheckpoint(str(tmp_path / "best.xpcnn"), monitor="loss", save_best_only=True)
    model.fit(
        x,
        y,
        loss="mse",
        optimizer=xpcnn.SGD(0.05),
        epochs=3,
        batch_size=5,
        callbacks=[every, best],
        progress=False,
    )
    assert calls[:2] == [str(tmp_path / "m-01.xpcnn"), str(tmp_path / "best.xpcnn")]
    assert every.saved == [str(tmp_path / f"m-0{e}.xpcnn") for e in (1, 2, 3)]
    assert 1 <= len(best.saved) <= 3 and len(calls) == 3 + len(best.saved)


def test_learning_rate_scheduler_and_plateau(rng):
    x, y = blobs(rng, n=10)
    model = small()
    h = model.fit(
        x,
        y,
        loss="mse",
        optimizer=xpcnn.SGD(0.1),
        epochs=3,
        callbacks=[C.LearningRateScheduler(lambda e: 0.1 / (e + 1))],
        progress=False,
    )
    assert h["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    # a ReduceOnPlateau schedule is fed the monitored value after each epoch by fit itself
    plateau = schedules.ReduceOnPlateau(0.1, monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    h = small().fit(x, y, loss="mse", optimizer=xpcnn.SGD(plateau), epochs=3, progress=False)
    assert h["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])  # epoch 1 sets the best, then no gain
    # and the Keras-style callback installs one around the current rate
    h = small().fit(
        x,
        y,
        loss="mse",
        optimizer=xpcnn.SGD(0.2),
        epochs=3,
        callbacks=[C.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)],
        progress=False,
    )
    assert h["learning_rate"] == pytest.approx([0.2, 0.2, 0.1])


def test_reduce_lr_on_plateau_callback_follows_the_optimizer_of_each_fit(rng):
    x, y = blobs(rng, n=10)
    reduce = C.ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)
    model = small()
    first = model.fit(
        x, y, loss="mse", optimizer=xpcnn.SGD(0.2), epochs=3, callbacks=[reduce], progress=False
    )
    assert first["learning_rate"] == pytest.approx([0.2, 0.2, 0.1])
    again = model.fit(x, y, epochs=2, callbacks=[reduce], progress=False)  # the same optimizer goes on
    assert again["learning_rate"] == pytest.approx([0.05, 0.025])
    fresh = xpcnn.SGD(0.4)
    h = model.fit(x, y, optimizer=fresh, epochs=3, callbacks=[reduce], progress=False)
    assert h["learning_rate"] == pytest.approx([0.4, 0.4, 0.2])  # a new optimizer gets its own schedule
    assert fresh.learning_rate == pytest.approx(0.1)


def test_progress_line_fallback_and_tqdm_bar(rng, capsys):
    x, y = blobs(rng, n=10)
    small().fit(x, y, loss="mse", epochs=2, batch_size=5, progress="line")
    out = capsys.readouterr().out
    assert "epoch 1/2 - loss " in out and "epoch 2/2 - loss " in out and "learning_rate 0.01" in out
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    small().fit(x, y, loss="mse", epochs=2, batch_size=5, callbacks=[C.ProgressBar(file=stream)])
    assert "epoch 2/2" in stream.getvalue() and "2/2" in stream.getvalue()
    # many short epochs: a line every epochs // 20 epochs, or a single bar over the epochs
    small().fit(x, y, loss="mse", epochs=100, batch_size=10, callbacks=[C.ProgressBar("line")])
    lines = capsys.readouterr().out.splitlines()
    assert (
        len(lines) == 20 and lines[0].startswith("epoch 5/100 - ") and lines[-1].startswith("epoch 100/100")
    )
    stream = io.StringIO()
    small().fit(x, y, loss="mse", epochs=100, batch_size=10, callbacks=[C.ProgressBar("bar", file=stream)])
    assert (
        "training" in stream.getvalue()
        and "100/100" in stream.getvalue()
        and "epoch 1/" not in stream.getvalue()
    )
    small().fit(x, y, loss="mse", epochs=1, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # silent when turned off


# ------------------------------------------------------------------------- NaN / inf
def test_nan_loss_names_epoch_batch_and_value_and_skips_the_update(rng):
    x, y = blobs(rng, n=10)
    model = small()
    snapshots = []

    class Poison(C.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_batch_end(self, batch, logs=None):
            snapshots.append(model.copy_parameters())
            if self.epoch == 1 and batch == 1:
                model.layers[2].bias = model.layers[2].bias * math.nan  # batch 3 of epoch 2 sees NaN

    with pytest.raises(xpcnn.NonFiniteLossError, match=r"loss became nan at epoch 2/4, batch 3/5") as info:
        model.fit(
            x, y, loss="mse", epochs=4, batch_size=2, shuffle=False, callbacks=[Poison()], progress=False
        )
    assert (info.value.epoch, info.value.batch) == (2, 3) and math.isnan(info.value.value)
    # the weights are those after batch 2 (poisoned bias aside): the NaN batch applied nothing
    w = xpcnn.to_host(model.layers[0].weights)
    np.testing.assert_array_equal(w, xpcnn.to_host(snapshots[-1][0]["weights"]))


def test_infinite_loss_from_the_data(rng):
    x, y = blobs(rng, n=10)
    y[7] = np.inf  # sample 7: batch 4 of 5 without shuffling
    with pytest.raises(FloatingPointError, match=r"loss became inf at epoch 1/3, batch 4/5"):
        small().fit(x, y, loss="mse", epochs=3, batch_size=2, shuffle=False, progress=False)


def test_on_nonfinite_stop_ends_quietly(rng):
    x, y = blobs(rng, n=10)
    y[7] = np.nan
    h = small().fit(
        x, y, loss="mse", epochs=3, batch_size=2, shuffle=False, on_nonfinite="stop", progress=False
    )
    assert len(h) == 0 and "epoch 1/3, batch 4/5" in h.stop_reason


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(y=np.zeros((9, 1), "float32")),
            ValueError,
            r"x and y must have the same number of samples\. Received 10 and 9",
        ),
        (dict(x=np.zeros((0, 2), "float32"), y=np.zeros((0, 1), "float32")), ValueError, r"x has no samples"),
        (dict(batch_size=0), ValueError, r"strictly positive integer\. Received batch_size=0"),
        (dict(batch_size=2.5), ValueError, r"Received batch_size=2\.5"),
        (dict(epochs=-1), ValueError, r"non-negative integer\. Received epochs=-1"),
        (dict(loss="hinge"), ValueError, r"Unknown loss 'hinge'"),
        (dict(optimizer="lbfgs"), ValueError, r"Unknown optimizer 'lbfgs'"),
        (
            dict(x=np.zeros((10, 2), "float64")),
            TypeError,
            r"x has dtype float64 but the model is float32.*x\.astype\('float32'\)",
        ),
        (
            dict(x=np.zeros((10, 2), "uint8")),
            TypeError,
            r"received dtype uint8\. Hint: convert and scale it, e\.g\. x\.astype\('float32'\) / 255",
        ),
        (dict(y=np.zeros((10, 1), "float64")), TypeError, r"y has dtype float64 but the model is float32"),
        (
            dict(y=np.zeros((10, 1), bool)),
            TypeError,
            r"expected y with a floating dtype or integer class labels, received dtype bool",
        ),
        (
            dict(validation_data=(np.zeros((3, 2), "float32"),)),
            ValueError,
            r"expected validation_data=\(x_val, y_val\)",
        ),
        (
            dict(validation_data=(np.zeros((3, 2), "float32"), np.zeros((4, 1), "float32"))),
            ValueError,
            r"val_x and val_y must have the same number",
        ),
        (
            dict(validation_data=(np.zeros((3, 2), "float64"), np.zeros((3, 1), "float32"))),
            TypeError,
            r"fit: val_x has dtype float64 but the model is float32; xpcnn never casts silently",
        ),
        (dict(on_nonfinite="ignore"), ValueError, r"on_nonfinite \"raise\" or \"stop\""),
        (dict(loss="accuracy"), ValueError, r"metric without a gradient"),
        (dict(y=np.zeros((10,), "float32")), ValueError, r"Reshape the target to \(\d+, 1\)"),
    ],
)
def test_fit_bad_input(kwargs, error, match):
    args = dict(x=np.zeros((10, 2), "float32"), y=np.zeros((10, 1), "float32"), loss="mse", progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        small().fit(**args)


def test_integer_arguments_name_the_method():
    """The shared integer check (xpcnn._validate.integer), prefixed with the method's name."""
    x, y = np.zeros((10, 2), "float32"), np.zeros((10, 1), "float32")
    with pytest.raises(
        ValueError, match=r"^fit: Expected a strictly positive integer\. Received batch_size=0\.$"
    ):
        small().fit(x, y, loss="mse", batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"^fit: Expected a non-negative integer\. Received epochs=True\.$"):
        small().fit(x, y, loss="mse", epochs=True, progress=False)
    with pytest.raises(
        ValueError, match=r"^predict: Expected a strictly positive integer\. Received batch_size=2\.5\.$"
    ):
        small().predict(x, batch_size=2.5)
    with pytest.raises(
        ValueError, match=r"^evaluate: Expected a strictly positive integer\. Received batch_size=-1\.$"
    ):
        small().evaluate(x, y, loss="mse", batch_size=-1)
    assert tuple(small().predict(x, batch_size=np.int64(3)).shape) == (10, 1)


@pytest.mark.parametrize(
    "metric, name",
    [
        (xpcnn.Accuracy, "accuracy"),
        (xpcnn.Accuracy(), "accuracy"),
        (xpcnn.ZeroOneLoss, "zero_one_loss"),
        (xpcnn.ZeroOneLoss(), "zero_one_loss"),
        (xpcnn.QuadraticLoss, "quadratic_loss"),
        ("accuracy", "accuracy"),
    ],
)
def test_a_metric_class_is_named_like_its_instance(rng, metric, name):
    x, y = blobs(rng, n=10)
    for metrics in ([metric], metric):
        h = small().fit(x, y, loss="mse", metrics=metrics, epochs=1, progress=False)
        assert set(h.keys()) == {"loss", name, "learning_rate"}
        assert set(small().evaluate(x, y, loss="mse", metrics=metrics)) == {"loss", name}


def test_a_single_callback_needs_no_list(rng):
    x, y = blobs(rng, n=10)
    order = Order()
    small().fit(x, y, loss="mse", epochs=2, batch_size=5, callbacks=order, progress=False)
    assert order.events[0] == "train_begin" and order.events[-1] == "train_end" and len(order.events) == 10
    stop = C.EarlyStopping("loss", min_delta=1e9)  # epoch 0 sets the best; epoch 1 cannot beat it by 1e9
    h = small().fit(x, y, loss="mse", epochs=5, callbacks=stop, progress=False)
    assert len(h) == 2 and stop.stopped_epoch == 1


@pytest.mark.parametrize(
    "callbacks, match",
    [
        (5, r"Received int: 5"),
        ("early_stopping", r"Received str: 'early_stopping'"),
        (C.EarlyStopping, r"Received type: "),
        ([C.EarlyStopping("loss"), print], r"Received builtin_function_or_method at position 1"),
    ],
)
def test_callbacks_that_are_not_callbacks_are_rejected(rng, callbacks, match):
    x, y = blobs(rng, n=10)
    with pytest.raises(
        TypeError, match=r"^fit: expected callbacks to be a Callback or a list of Callbacks\. " + match
    ):
        small().fit(x, y, loss="mse", epochs=1, callbacks=callbacks, progress=False)


def test_no_loss_given():
    with pytest.raises(ValueError, match=r"no loss given"):
        small().fit(np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32"), progress=False)


def test_numpy_array_where_device_data_is_required(be):
    model = small(dtype="float64", device=be.place)
    x = np.zeros((3, 2))
    if be.name == "numpy":
        assert tuple(model.forward(x).shape) == (3, 1)  # on the CPU, NumPy arrays are device data
        return
    with pytest.raises(
        ValueError, match=r"forward: x is a NumPy array on the host but the model is on .*model\.predict\(x\)"
    ):
        model.forward(x)
    model.forward(be.asarray(x))
    with pytest.raises(ValueError, match=r"backward: loss_gradient is a NumPy array on the host"):
        model.backward(np.zeros((3, 1)))
    with pytest.raises(TypeError, match=r"expected x to be an array"):
        model.forward([[0.0, 0.0]])


def test_device_data_on_another_device():
    import array_api_strict as strict

    elsewhere = xpcnn.Placement.of(strict, strict.Device("device1"))
    model = small(dtype="float64")  # on the CPU
    with pytest.raises(ValueError, match=r"fit: x is on array_api_strict:.* but the model is on cpu"):
        model.fit(elsewhere.asarray(np.zeros((4, 2))), np.zeros((4, 1)), loss="mse", progress=False)
    with pytest.raises(ValueError, match=r"predict: x is on array_api_strict:.* but the model is on cpu"):
        model.predict(elsewhere.asarray(np.zeros((4, 2))))


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"at least one layer"):
        xpcnn.Sequential([])
    with pytest.raises(TypeError, match=r"expected xpcnn layers\. Received str at position 1"):
        xpcnn.Sequential([xpcnn.Dense(2, 2), "relu"])
    with pytest.raises(TypeError, match=r"different dtypes \['float32', 'float64'\]"):
        xpcnn.Sequential([xpcnn.Dense(2, 2), xpcnn.Dense(2, 2, dtype="float64")])
    d = xpcnn.Dense(2, 2)
    with pytest.raises(ValueError, match=r"appears twice"):
        xpcnn.Sequential([d, d])


def test_dtype_is_checked_by_the_shared_rule():
    with pytest.raises(
        ValueError, match=r"^Sequential: Expected dtype float32 or float64\. Received dtype='int8'\.$"
    ):
        xpcnn.Sequential([xpcnn.Dense(2, 2)], dtype="int8")
    model = small()
    with pytest.raises(
        ValueError, match=r"^Sequential\.to: Expected dtype float32 or float64\. Received dtype='float16'\.$"
    ):
        model.to(dtype="float16")
    assert model.dtype == "float32"
    assert xpcnn.Sequential([xpcnn.Dense(2, 2)], dtype=np.float64).dtype == "float64"


# ----------------------------------------------------------------- placement, summary
def test_to_moves_parameters_and_optimizer_state(be, rng):
    x, y = blobs(rng, dtype="float64")
    model = small(dtype="float64")
    model.fit(
        x, y, loss="mse", optimizer=xpcnn.SGD(0.05, momentum=0.9), epochs=1, batch_size=20, progress=False
    )
    velocity = {k: np.array(xpcnn.to_host(v)) for k, v in model.optimizer.state_arrays().items()}
    assert model.to(be.place) is model
    for p in model.parameters().values():
        assert placement_of(p) == be.place
    state = model.optimizer.state_arrays()
    assert set(state) == set(velocity)
    for key, v in state.items():
        assert placement_of(v) == be.place
        np.testing.assert_array_equal(be.to_host(v), velocity[key])
    model.fit(x, y, epochs=1, batch_size=20, progress=False)  # the same optimizer goes on there
    model.to("cpu", dtype="float32")
    for v in model.optimizer.state_arrays().values():
        assert placement_of(v) == xpcnn.placement("cpu") and dtype_name(v.dtype) == "float32"
    assert model.dtype == "float32" and model.placement == xpcnn.placement("cpu")


def test_summary_shows_output_shapes_and_parameter_counts(capsys):
    model = xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 8, 8), 3, 2, seed=0),
            xpcnn.Sigmoid(),
            xpcnn.Reshape((2, 6, 6), (72,)),
            xpcnn.Dense(72, 10, seed=0),
        ]
    )
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    assert "(N, 2, 6, 6)" in text and "(N, 72)" in text and "(N, 10)" in text
    assert " 20" in text and "730" in text  # conv: 2*1*3*3 + 2 biases; dense: 72*10 + 10
    assert "Total parameters: 750" in text and model.parameter_count() == 750
    assert "Convolutional" in text and "Reshape" in text
    assert "(N, 4)" in small().summary(file=io.StringIO())


def test_layers_get_their_index_and_repr():
    model = xor_model()
    assert [layer.index for layer in model.layers] == [0, 1, 2, 3]
    assert model.layers[2].label == "layer 2 (Dense)"
    assert repr(model).startswith("Sequential([Dense(input_size=2, output_size=3") and "device='cpu'" in repr(
        model
    )
    assert list(model.parameters()) == ["0.weights", "0.bias", "2.weights", "2.bias"]


def test_checkpoint_callback_writes_loadable_files(rng, tmp_path):

    x, y = blobs(rng, n=10)
    model = small()
    saver = C.ModelCheckpoint(str(tmp_path / "best.xpcnn"), monitor="loss", save_best_only=True)
    model.fit(x, y, loss="mse", epochs=2, batch_size=5, callbacks=[saver], progress=False)
    assert (tmp_path / "best.xpcnn").exists()
    loaded = xpcnn.load(tmp_path / "best.xpcnn", device="cpu")
    assert len(saver.saved) == 2  # the loss fell in both epochs: the file holds the final weights
    np.testing.assert_array_equal(xpcnn.to_host(loaded.predict(x)), xpcnn.to_host(model.predict(x)))


def test_save_delegates_to_checkpoint(monkeypatch, tmp_path):
    from xpcnn import checkpoint

    seen = []
    monkeypatch.setattr(checkpoint, "save", lambda model, path, **kw: seen.append((model, path)))
    model = xor_model()
    model.save(tmp_path / "m.xpcnn")
    assert seen == [(model, tmp_path / "m.xpcnn")]


# ---------------------------------------------------------------------------- data
def test_batches_are_seeded_and_cover_every_sample():
    x = np.arange(10)[:, None].astype("float32")
    y = np.arange(10)
    a = [yb.tolist() for _, yb in data.batches(x, y, batch_size=4, seed=7)]
    b = [yb.tolist() for _, yb in data.batches(x, y, batch_size=4, seed=7)]
    assert a == b and [len(v) for v in a] == [4, 4, 2]
    assert sorted(sum(a, [])) == list(range(10)) and sum(a, []) != list(range(10))
    assert [yb.tolist() for _, yb in data.batches(x, y, 4, shuffle=False)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
    for xb, yb in data.batches(x, y, 3, seed=1):
        np.testing.assert_array_equal(xb[:, 0], yb)  # pairs stay together
    with pytest.raises(ValueError, match=r"same number of samples\. Received 10 and 9"):
        next(data.batches(x, y[:9]))
    with pytest.raises(ValueError, match=r"Received batch_size=0"):
        next(data.batches(x, y, 0))
    assert data.num_batches(10, 4) == 3


# ------------------------------------------------------- the unused input gradient
def conv_model(seed=0, lead=(), dtype="float64", **kw):
    return xpcnn.Sequential(
        [
            *lead,
            xpcnn.Convolutional((1, 6, 6), 3, 2, seed=seed),
            xpcnn.ReLU(),
            xpcnn.Convolutional((2, 4, 4), 3, 3, seed=seed + 1),
            xpcnn.Flatten(),
            xpcnn.Dense(12, 2, seed=seed + 2),
        ],
        dtype=dtype,
        **kw,
    )


@pytest.fixture
def conv2d_calls(monkeypatch):
    """Record ``input_gradient`` of every convolution backward made by the layers (they call the
    trusted entry ``trusted_backward(xp, x, k, dy, stride, padding, input_gradient)``)."""
    from xpcnn.ops import correlation

    calls, real = [], correlation.trusted_backward

    def spy(*args, **kwargs):
        calls.append(args[6])
        return real(*args, **kwargs)

    monkeypatch.setattr(correlation, "trusted_backward", spy)
    return calls


@pytest.mark.parametrize("lead", ["conv first", "relu first"])
def test_backward_without_input_gradient_keeps_parameter_gradients(be, rng, conv2d_calls, lead):
    model = conv_model(lead=(xpcnn.ReLU(),) if lead == "relu first" else (), device=be.place)
    x = be.asarray(rng.normal(size=(3, 1, 6, 6)))
    g = be.asarray(rng.normal(size=(3, 2)))
    model.forward(x)
    dx = model.backward(g)
    assert tuple(dx.shape) == (3, 1, 6, 6)
    full = [{k: be.to_host(v) for k, v in layer.gradients().items()} for layer in model]
    assert conv2d_calls == [True, True]
    model.forward(x)
    assert model.backward(g, input_gradient=False) is None
    assert conv2d_calls == [True, True, True, False]  # the first convolution skipped its dX
    for layer, expected in zip(model, full, strict=True):
        got = {k: be.to_host(v) for k, v in layer.gradients().items()}
        assert got.keys() == expected.keys()
        for k in got:
            np.testing.assert_array_equal(got[k], expected[k])
    model.forward(x)
    assert tuple(model.backward(g).shape) == (3, 1, 6, 6)  # a direct call still gets dE/dX


def test_a_leading_layer_without_parameters_is_not_run_backward(rng):
    relu = xpcnn.ReLU()
    model = conv_model(lead=(relu,))
    model.forward(rng.normal(size=(2, 1, 6, 6)))
    relu._input = None  # backward() on it would now raise
    assert model.backward(model.placement.asarray(rng.normal(size=(2, 2))), input_gradient=False) is None
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(model.placement.asarray(rng.normal(size=(2, 2))))


def test_fit_skips_the_input_gradient_of_the_first_layer(rng, conv2d_calls):
    model = conv_model(dtype="float32")
    x = rng.normal(size=(8, 1, 6, 6)).astype("float32")
    y = rng.integers(0, 2, size=8)
    model.fit(
        x, y, loss="softmax_cross_entropy", optimizer=xpcnn.SGD(0.01), epochs=1, batch_size=4, progress=False
    )
    assert conv2d_calls == [True, False, True, False]  # per batch: second conv with dX, first without


def test_a_failed_backward_changes_nothing(rng, conv2d_calls):
    model = conv_model()
    model.forward(rng.normal(size=(2, 1, 6, 6)))
    with pytest.raises(ValueError, match=r"expected loss_gradient of shape \(2, 2\).*received \(2, 3\)"):
        model.backward(model.placement.asarray(rng.normal(size=(2, 3))), input_gradient=False)
    assert conv2d_calls == [] and all(not layer.grads for layer in model)
    with pytest.raises(TypeError, match="loss_gradient has dtype float32 but the model is float64"):
        model.backward(model.placement.asarray(rng.normal(size=(2, 2)), dtype="float32"))
    with pytest.raises(RuntimeError, match="before forward"):
        conv_model().backward(model.placement.asarray(rng.normal(size=(2, 2))))


def test_layer_backward_takes_input_gradient_as_an_argument(rng, conv2d_calls):
    conv = xpcnn.Convolutional((1, 6, 6), 3, 2, seed=0, dtype="float64")
    conv.forward(rng.normal(size=(2, 1, 6, 6)))
    g = rng.normal(size=(2, 2, 4, 4))
    assert conv.backward(g, input_gradient=False) is None
    dk = conv.grads["kernels"]
    assert tuple(conv.backward(g).shape) == (2, 1, 6, 6)
    np.testing.assert_array_equal(conv.grads["kernels"], dk)
    assert conv2d_calls == [False, True]
    dense = xpcnn.Dense(3, 2, seed=0, dtype="float64")
    dense.forward(rng.normal(size=(4, 3)))
    assert dense.backward(rng.normal(size=(4, 2)), input_gradient=False) is None


def test_a_model_without_parameters_returns_none_without_input_gradient(rng):
    model = xpcnn.Sequential([xpcnn.ReLU(), xpcnn.Flatten()])
    model.forward(model.placement.asarray(rng.normal(size=(2, 3, 2)), dtype="float32"))
    g = model.placement.asarray(rng.normal(size=(2, 6)), dtype="float32")
    assert model.backward(g, input_gradient=False) is None
    assert tuple(model.backward(g).shape) == (2, 3, 2)


# ------------------------------------------------------------- train_step and deferred reads
def _conv_data(rng, n=12):
    return rng.normal(size=(n, 1, 6, 6)), rng.integers(0, 2, size=n)


def test_train_step_is_one_step_of_fit(be, rng):
    """fit over one batch and train_step on the same batch give the same parameters and loss."""
    x, y = _conv_data(rng, n=6)
    fitted = conv_model(device=be.place)
    history = fitted.fit(x, y, loss="softmax_cross_entropy", optimizer=xpcnn.Adam(0.01), batch_size=6,
                         shuffle=False, progress=False)  # fmt: skip
    stepped = conv_model(device=be.place).compile(loss="softmax_cross_entropy", optimizer=xpcnn.Adam(0.01))
    value = stepped.train_step(be.asarray(x), stepped.placement.asarray(y))
    assert tuple(value.shape) == () and xpcnn.backend.placement_of(value) == be.place
    assert float(be.to_host(value)) == pytest.approx(history["loss"][0], rel=1e-12)
    for a, b in zip(fitted.parameters().values(), stepped.parameters().values(), strict=True):
        np.testing.assert_allclose(be.to_host(a), be.to_host(b), rtol=1e-12, atol=1e-15)
    assert stepped.optimizer.iterations == 1


def test_train_step_masks_a_nonfinite_loss(be, rng):
    x, y = _conv_data(rng, n=4)
    model = conv_model(device=be.place).compile(loss="mse", optimizer=xpcnn.SGD(0.1, momentum=0.9))
    target = rng.normal(size=(4, 2))
    model.train_step(be.asarray(x), be.asarray(target))
    before = [be.to_host(p) for p in model.parameters().values()]
    state = [be.to_host(v) for v in model.optimizer.state_arrays().values()]
    target[1, 0] = np.nan
    value = model.train_step(be.asarray(x), be.asarray(target))
    assert math.isnan(float(be.to_host(value)))
    for a, b in zip(before, model.parameters().values(), strict=True):
        np.testing.assert_array_equal(a, be.to_host(b))
    for a, b in zip(state, model.optimizer.state_arrays().values(), strict=True):
        np.testing.assert_array_equal(a, be.to_host(b))


def test_train_step_needs_a_loss_and_an_optimizer(rng):
    x, y = _conv_data(rng, n=2)
    model = conv_model()
    with pytest.raises(ValueError, match=r"call model\.compile\(loss=\.\.\., optimizer=\.\.\.\)"):
        model.train_step(x, y)
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    import array_api_strict as strict

    model.to(xpcnn.backend.Placement.of(strict, strict.Device("device1")))
    with pytest.raises(ValueError, match="x_batch is a NumPy array on the host but the model is on"):
        model.train_step(x, y)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_deferred_reads_train_the_same_weights(be, rng, optimizer):
    """Reading the losses every 4 batches (the masked device-side check) changes no bit."""
    x, y = _conv_data(rng, n=22)
    runs = []
    for k in (1, 4):
        model = conv_model(device=be.place)
        h = model.fit(x, y, loss="softmax_cross_entropy", optimizer=optimizer, epochs=2, batch_size=3,
                      seed=5, progress=False, steps_per_sync=k)  # fmt: skip
        runs.append((h["loss"], [be.to_host(p) for p in model.parameters().values()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k", [1, 3, 16])
def test_deferred_reads_stop_at_the_batch_that_caused_it(be, rng, k):
    """A NaN in batch 5 of 8: the error names batch 5 whatever the read interval, and the
    parameters, the optimizer state and its step count are those after batch 4."""
    x = rng.normal(size=(16, 1, 6, 6))
    y = rng.normal(size=(16, 2))
    y[9, 1] = np.nan  # batch 5 (batch_size 2, no shuffle)
    model = conv_model(device=be.place)
    ended = []

    class Record(C.Callback):
        def on_batch_end(self, batch, logs=None):
            ended.append((batch, logs["loss"]))

    with pytest.raises(xpcnn.NonFiniteLossError, match=r"batch 5/8") as info:
        model.fit(x, y, loss="mse", optimizer="adam", batch_size=2, shuffle=False, progress=False,
                  steps_per_sync=k, callbacks=Record())  # fmt: skip
    assert info.value.batch == 5 and [b for b, _ in ended] == [0, 1, 2, 3]
    reference = conv_model(device=be.place)
    reference.fit(x[:8], y[:8], loss="mse", optimizer="adam", batch_size=2, shuffle=False, progress=False)
    assert model.optimizer.iterations == reference.optimizer.iterations == 4
    for a, b in zip(model.parameters().values(), reference.parameters().values(), strict=True):
        np.testing.assert_array_equal(be.to_host(a), be.to_host(b))
    for a, b in zip(model.optimizer.state_arrays().values(), reference.optimizer.state_arrays().values(),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(be.to_host(a), be.to_host(b))
    ended_before = list(ended)
    ended.clear()
    conv_model(device=be.place).fit(x[:8], y[:8], loss="mse", optimizer="adam", batch_size=2, shuffle=False,
                                    progress=False, callbacks=Record())  # fmt: skip
    assert ended_before == ended  # the same batch losses, reported in order


def test_labels_out_of_range_in_the_last_batch_fail_before_any_step(rng):
    x, y = _conv_data(rng, n=10)
    y[-1] = 2  # the model has 2 outputs
    model = conv_model()
    before = [np.array(p) for p in model.parameters().values()]
    with pytest.raises(ValueError, match=r"fit: SoftmaxCrossEntropy: expected class labels in \[0, 2\) for "
                       r"the model's 2 outputs, received labels from 0 to 2 in y"):  # fmt: skip
        model.fit(x, y, loss="softmax_cross_entropy", batch_size=3, shuffle=False, progress=False)
    for a, b in zip(before, model.parameters().values(), strict=True):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- the GPU path (CuPy rules)
def _emulated(be):
    if be.name != "cupy-emulated":
        pytest.skip("counts host reads and devices of the CuPy stand-in (tests/cupy_emulated.py)")
    import cupy_emulated

    return cupy_emulated


def test_fit_on_a_gpu_reads_the_host_once_per_sync_group(be, rng):
    """16 batches, steps_per_sync 8: the losses are read twice per epoch (not per batch), the
    labels checked once; the data is uploaded once, not per batch (issue 8, item 6)."""
    emu = _emulated(be)
    x, y = _conv_data(rng, n=64)
    model = conv_model(device=be.place)
    emu.reset_counts()
    model.fit(x, y, loss="softmax_cross_entropy", optimizer="adam", epochs=2, batch_size=4, seed=0,
              progress=False, steps_per_sync=8)  # fmt: skip
    counts = emu.counts()
    reads = emu.syncs()
    # 2 epochs x 2 reads of the losses, and the label bounds (min, max) once
    assert reads == 2 * 2 + 2, counts
    # x and y staged once, the shuffled order once per epoch
    assert counts["upload"] == 2 + 2, counts


def test_a_model_on_the_second_gpu_stays_there(be, rng):
    emu = _emulated(be)
    with emu.device_count(2):
        model = conv_model(device="cuda:1")
        x, y = _conv_data(rng, n=8)
        model.fit(x, y, loss="softmax_cross_entropy", optimizer="adam", batch_size=4, progress=False)
        prediction = model.predict(x)
        assert prediction.device.id == 1
        assert all(p.device.id == 1 for p in model.parameters().values())
        assert all(v.device.id == 1 for v in model.optimizer.state_arrays().values())
        model.evaluate(x, y)
