"""Bad input, one row per case: the call, the error it must raise, a pattern its message must
match, and afterwards the model's parameters, the optimizer's state and the checkpoint on
disk exactly as they were (nothing is changed by a call that fails).

Every row runs against a fresh, trained "world" (a small CNN after one epoch of Adam, its
checkpoint written), so a row that changed something before raising is caught.  The
messages follow reliability.md: they name the argument (or the layer), the rule and the
value received.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import xpcnn
from xpcnn import callbacks as cb
from xpcnn import schedules


class CommandFailed(Exception):
    """A command line that ended with a non-zero status; the message is what it printed."""


def cli(argv):
    """Run ``xpcnn`` (``xpcnn.__main__.main``) or an example's ``main`` with ``argv``."""
    from xpcnn.__main__ import main

    return _run(main, argv)


def without_cupy(run, *args):
    """``run(*args)`` as on a machine where CuPy is not installed."""
    import sys

    from xpcnn import backend

    saved = sys.modules.get("cupy", None)
    sys.modules["cupy"] = None  # import cupy now raises ImportError
    backend._cupy.cache_clear()
    try:
        return run(*args)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
        backend._cupy.cache_clear()


def example(name, argv):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return _run(module.main, argv)


def _run(main, argv):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    if rc not in (0, None):
        text = err.getvalue()
        if "Traceback" in text or len(text.strip().splitlines()) > 8:  # argparse: usage + one error line
            raise AssertionError(f"the command printed more than a clean error:\n{text}")
        raise CommandFailed(text.strip())
    return rc


@dataclass
class World:
    model: xpcnn.Sequential
    optimizer: xpcnn.Optimizer
    x: np.ndarray
    y: np.ndarray
    path: Path  # a good checkpoint of the model
    tmp: Path

    def conv(self):
        return self.model.layers[0]

    def dense(self):
        return self.model.layers[4]


def make_world(tmp: Path) -> World:
    rng = np.random.default_rng(0)
    model = xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 6, 6), 3, 2, seed=0, dtype="float64"),
            xpcnn.ReLU(),
            xpcnn.MaxPool2D(2),
            xpcnn.Flatten(),
            xpcnn.Dense(8, 3, seed=1, dtype="float64"),
        ]
    )
    x = rng.standard_normal((10, 1, 6, 6))
    y = np.arange(10) % 3
    optimizer = xpcnn.Adam(0.01)
    model.fit(x, y, loss="softmax_crossentropy", optimizer=optimizer, batch_size=5, progress=False, seed=0,
              metrics=["accuracy"])  # fmt: skip
    path = tmp / "good.xpcnn"
    model.save(path)
    return World(model, optimizer, x, y, path, tmp)


def snapshot(w: World):
    params = [{k: xpcnn.to_host(v).copy() for k, v in layer.parameters().items()} for layer in w.model.layers]
    state = {
        (id(layer), name, slot): xpcnn.to_host(value).copy()
        for (layer, name), entry in w.optimizer.state.items()
        for slot, value in entry.items()
        if slot != "_where"
    }
    files = {p.name: p.read_bytes() for p in sorted(w.tmp.iterdir()) if p.is_file()}
    return params, state, w.optimizer.iterations, files


def assert_same(before, after):
    (p0, s0, t0, f0), (p1, s1, t1, f1) = before, after
    assert t0 == t1, "the optimizer counted a step"
    for layer0, layer1 in zip(p0, p1, strict=True):
        assert layer0.keys() == layer1.keys()
        for k in layer0:
            np.testing.assert_array_equal(layer0[k], layer1[k], err_msg=f"parameter {k} changed")
    assert s0.keys() == s1.keys(), "optimizer state was added or removed"
    for k in s0:
        np.testing.assert_array_equal(s0[k], s1[k], err_msg=f"optimizer state {k} changed")
    assert f0 == f1, "a file was changed, added or removed"


def _f32(*shape):
    return np.zeros(shape, dtype=np.float32)


def _f64(*shape):
    return np.zeros(shape)


def fit(w, x=None, y=None, **kw):
    kw.setdefault("progress", False)
    return w.model.fit(w.x if x is None else x, w.y if y is None else y, **kw)


def _write(path, data: bytes):
    """A file in a ``bad/`` subfolder (the snapshot watches the top-level files only)."""
    path = path.parent / "bad" / path.name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def _bad_schedule(t):
    return "abc"


R = []  # (id, call, error type, message pattern)


def row(case_id, exc, pattern):
    def add(fn):
        R.append(pytest.param(fn, exc, pattern, id=case_id))
        return fn

    return add


def rows(exc, pattern, **cases):
    for case_id, fn in cases.items():
        R.append(pytest.param(fn, exc, pattern, id=case_id))


# ------------------------------------------------------------------------ layers: construction
rows(ValueError, r"Dense: Expected a strictly positive integer\. Received input_size=0",
     dense_zero_inputs=lambda w: xpcnn.Dense(0, 3))  # fmt: skip
rows(ValueError, r"Dense: Expected a strictly positive integer\. Received output_size=-2",
     dense_negative_outputs=lambda w: xpcnn.Dense(3, -2))  # fmt: skip
rows(ValueError, r"Received input_size=2\.5", dense_float_size=lambda w: xpcnn.Dense(2.5, 3))
rows(ValueError, r"Received input_size=True", dense_bool_size=lambda w: xpcnn.Dense(True, 3))
rows(ValueError, r"dtype", dense_int_dtype=lambda w: xpcnn.Dense(2, 3, dtype="int32"))
rows(ValueError, r"dtype", dense_float16=lambda w: xpcnn.Dense(2, 3, dtype="float16"))
rows(ValueError, r"Convolutional.*depth", conv_zero_depth=lambda w: xpcnn.Convolutional((1, 5, 5), 3, 0))
rows(ValueError, r"Convolutional.*kernel", conv_kernel_too_big=lambda w: xpcnn.Convolutional((1, 3, 3), 5, 2))
rows(ValueError, r"Convolutional.*input_shape", conv_2d_shape=lambda w: xpcnn.Convolutional((5, 5), 3, 2))
rows(
    ValueError,
    r"Convolutional.*stride",
    conv_zero_stride=lambda w: xpcnn.Convolutional((1, 5, 5), 3, 2, stride=0),
)
rows(
    ValueError,
    r"Convolutional.*padding",
    conv_negative_padding=lambda w: xpcnn.Convolutional((1, 5, 5), 3, 2, padding=-1),
)
rows(
    ValueError,
    r"Convolutional.*bias",
    conv_bad_bias=lambda w: xpcnn.Convolutional((1, 5, 5), 3, 2, bias="row"),
)
rows(ValueError, r"MaxPool2D.*pool_size", maxpool_zero=lambda w: xpcnn.MaxPool2D(0))
rows(ValueError, r"AvgPool2D.*stride", avgpool_negative_stride=lambda w: xpcnn.AvgPool2D(2, stride=-1))
rows(
    ValueError,
    r"MaxPool2D: padding must be at most half",
    maxpool_padding=lambda w: xpcnn.MaxPool2D(2, padding=2),
)
rows(ValueError, r"Reshape: cannot reshape", reshape_counts=lambda w: xpcnn.Reshape((2, 3), (5,)))
rows(ValueError, r"Reshape: expected strictly positive", reshape_zero=lambda w: xpcnn.Reshape((0,), (0,)))
rows(
    ValueError,
    r"Reshape: expected input_shape to be a tuple of integers",
    reshape_text=lambda w: xpcnn.Reshape("ab", (2,)),
)
rows(ValueError, r"Gaussian.*sigma", gaussian_sigma=lambda w: xpcnn.Gaussian(sigma=0.0))
rows(ValueError, r"Multiquadratic.*a", multiquadratic_a=lambda w: xpcnn.Multiquadratic(a=0.0))
rows(TypeError, r"Linear.*a", linear_text=lambda w: xpcnn.Linear(a="x"))
rows(TypeError, r"callable|function", activation_not_callable=lambda w: xpcnn.Activation(1, 2))

# ------------------------------------------------------------------------- layers: the passes
rows(TypeError, r"layer 4 \(Dense\): expected the input to be an array, received list",
     dense_list_input=lambda w: w.dense().forward([[0.0] * 8]))  # fmt: skip
rows(
    TypeError,
    r"floating dtype",
    dense_int_input=lambda w: w.dense().forward(np.zeros((2, 8), dtype=np.int64)),
)
rows(TypeError, r"float32", dense_wrong_float=lambda w: w.dense().forward(_f32(2, 8)))
rows(
    ValueError,
    r"expected 8 input features, received 7",
    dense_wrong_width=lambda w: w.dense().forward(_f64(2, 7)),
)
rows(ValueError, r"Flatten", dense_rank4=lambda w: w.dense().forward(_f64(2, 2, 2, 2)))
rows(ValueError, r"one sample without its batch axis", dense_one_sample=lambda w: w.dense().forward(_f64(8)))
rows(ValueError, r"layer 0 \(Convolutional\): expected input of shape \(n, 1, 6, 6\), received \(2, 1, 5, 6\)",
     conv_wrong_size=lambda w: w.conv().forward(_f64(2, 1, 5, 6)))  # fmt: skip
rows(ValueError, r"channels-last", conv_nhwc=lambda w: w.conv().forward(_f64(2, 6, 6, 1)))
rows(
    ValueError,
    r"one sample without its batch axis",
    conv_one_sample=lambda w: w.conv().forward(_f64(1, 6, 6)),
)
rows(ValueError, r"channel axis", conv_no_channel=lambda w: w.conv().forward(_f64(2, 6, 6)))
rows(ValueError, r"0-d", layer_scalar=lambda w: w.model.layers[1].forward(np.zeros(())))
rows(ValueError, r"MaxPool2D.*rank 4", pool_rank3=lambda w: xpcnn.MaxPool2D(2).forward(_f64(2, 6, 6)))
rows(
    ValueError,
    r"pool_size \(3, 3\) is larger than the padded input",
    pool_too_small=lambda w: xpcnn.MaxPool2D(3).forward(_f64(1, 1, 2, 2)),
)
rows(
    RuntimeError,
    r"backward\(\) was called before forward\(\)",
    backward_first=lambda w: xpcnn.Dense(2, 2).backward(_f32(1, 2)),
)


@row("backward_wrong_shape", ValueError, r"expected output_gradient of shape \(2, 3\)")
def _(w):
    w.dense().forward(_f64(2, 8))
    w.dense().backward(_f64(2, 4), learning_rate=0.1)


@row(
    "backward_bad_learning_rate",
    ValueError,
    r"layer 4 \(Dense\): Expected a strictly positive, finite value\. Received learning_rate=-1\.0",
)
def _(w):
    w.dense().forward(_f64(2, 8))
    w.dense().backward(_f64(2, 3), learning_rate=-1.0)


@row("backward_wrong_dtype", TypeError, r"output_gradient has dtype float32")
def _(w):
    w.dense().forward(_f64(2, 8))
    w.dense().backward(_f32(2, 3), learning_rate=0.1)


rows(ValueError, r"parameter 'bias' must have shape \(3,\), received \(4,\)",
     set_parameters_half_bad=lambda w: w.dense().set_parameters({"weights": _f64(3, 8) + 1, "bias": _f64(4)}))  # fmt: skip
rows(TypeError, r"parameter 'bias' must have dtype float64, received float32",
     set_parameters_dtype=lambda w: w.dense().set_parameters({"weights": _f64(3, 8) + 1, "bias": _f32(3)}))  # fmt: skip
rows(TypeError, r"parameter 'bias' must be an array, received list",
     set_parameters_list=lambda w: w.dense().set_parameters({"weights": _f64(3, 8) + 1, "bias": [0.0] * 3}))  # fmt: skip
rows(
    KeyError,
    r"unknown parameter\(s\) \['kernel'\]",
    set_parameters_unknown=lambda w: w.dense().set_parameters({"kernel": _f64(3, 8)}),
)
rows(TypeError, r"expects a dict", set_parameters_not_dict=lambda w: w.dense().set_parameters([_f64(3, 8)]))
rows(ValueError, r"device", layer_to_bad_device=lambda w: w.dense().to("tpu"))
rows(ValueError, r"dtype", layer_to_bad_dtype=lambda w: w.dense().to(dtype="int8"))

# ---------------------------------------------------------------------------------- losses
_P, _L = _f64(4, 3), np.array([0, 1, 2, 1])
rows(ValueError, r"SoftmaxCrossEntropy: expected class labels in \[0, 3\).*from 0 to 3",
     softmax_label_too_big=lambda w: xpcnn.SoftmaxCrossEntropy()(_P, np.array([0, 1, 2, 3])))  # fmt: skip
rows(
    ValueError,
    r"from -1 to 2",
    softmax_negative_label=lambda w: xpcnn.SoftmaxCrossEntropy()(_P, np.array([0, -1, 2, 1])),
)
rows(
    TypeError,
    r"integer class labels",
    softmax_float_labels=lambda w: xpcnn.SoftmaxCrossEntropy()(_P, _L.astype(float)),
)
rows(ValueError, r"target rows with non-negative entries, received 1 value",
     softmax_negative_row=lambda w: xpcnn.SoftmaxCrossEntropy()(_P, np.array([[1.0, 0, 0]] * 3 + [[-0.5, 1.5, 0]])))  # fmt: skip
rows(
    ValueError,
    r"non-negative entries.*NaN",
    softmax_nan_row=lambda w: xpcnn.SoftmaxCrossEntropy()(_P, np.array([[np.nan, 0, 0]] * 4)),
)
rows(
    ValueError,
    r"logits of shape \(N, C\)",
    softmax_rank3=lambda w: xpcnn.SoftmaxCrossEntropy()(_f64(4, 3, 1), _L),
)
rows(
    ValueError,
    r"expected 4 class labels",
    softmax_label_count=lambda w: xpcnn.SoftmaxCrossEntropy()(_P, _L[:3]),
)
rows(ValueError, r"targets in \[0, 1\].*received 1 value",
     bce_target_above_one=lambda w: xpcnn.BinaryCrossEntropy()(_f64(3, 1) + 0.5, np.array([[0.0], [1.0], [2.0]])))  # fmt: skip
rows(
    ValueError,
    r"targets in \[0, 1\]",
    bce_logits_negative_target=lambda w: xpcnn.BinaryCrossEntropyFromLogits()(
        _f64(2, 1), np.array([[0.0], [-1.0]])
    ),
)
rows(
    ValueError,
    r"expected probabilities in \[0, 1\].*Sigmoid",
    bce_prediction_outside=lambda w: xpcnn.BinaryCrossEntropy()(_f64(2, 1) + 3, _f64(2, 1)),
)
rows(
    ValueError,
    r"Reshape the target to \(4, 1\)",
    quadratic_broadcast=lambda w: xpcnn.QuadraticLoss()(_f64(4, 1), _f64(4)),
)
rows(ValueError, r"empty batch", loss_empty_batch=lambda w: xpcnn.QuadraticLoss()(_f64(0, 2), _f64(0, 2)))
rows(
    ValueError,
    r"0-d array",
    loss_scalar_prediction=lambda w: xpcnn.QuadraticLoss()(np.zeros(()), np.zeros(())),
)
rows(
    TypeError,
    r"expected target to be an array, received list",
    loss_list_target=lambda w: xpcnn.QuadraticLoss()(_f64(2), [0.0, 1.0]),
)
rows(
    TypeError,
    r"expected prediction to be an array, received list",
    loss_list_prediction=lambda w: xpcnn.QuadraticLoss()([0.0], _f64(1)),
)
rows(TypeError, r"metric and has no gradient", accuracy_gradient=lambda w: xpcnn.Accuracy().gradient(_P, _L))
rows(ValueError, r"Accuracy: Expected mode to be one of", accuracy_mode=lambda w: xpcnn.Accuracy(mode="top5"))
rows(
    TypeError,
    r"mode 'labels' expects integer prediction",
    accuracy_labels_on_floats=lambda w: xpcnn.Accuracy(mode="labels")(_P, _L),
)
rows(
    ValueError, r"Unknown loss 'crossentropy2'", loss_unknown_name=lambda w: xpcnn.losses.get("crossentropy2")
)
rows(
    TypeError,
    r"Expected a loss name or a Loss instance\. Received int",
    loss_int=lambda w: xpcnn.losses.get(3),
)

# ------------------------------------------------------------------------------ optimizers
rows(
    ValueError,
    r"Adam: Expected a strictly positive, finite value\. Received learning_rate=-1\.0",
    adam_negative_lr=lambda w: xpcnn.Adam(-1.0),
)
rows(ValueError, r"SGD: .*learning_rate=nan", sgd_nan_lr=lambda w: xpcnn.SGD(float("nan")))
rows(ValueError, r"AdamW: .*learning_rate=0", adamw_zero_lr=lambda w: xpcnn.AdamW(0))
rows(
    TypeError,
    r"SGD: Expected a learning rate.*Received learning_rate='fast'",
    sgd_text_lr=lambda w: xpcnn.SGD("fast"),
)
rows(
    ValueError,
    r"Adam: Expected a value in \[0, 1\)\. Received beta1=1\.0",
    adam_beta1=lambda w: xpcnn.Adam(beta1=1.0),
)
rows(ValueError, r"Adam: .*beta2=-0\.1", adam_beta2=lambda w: xpcnn.Adam(beta2=-0.1))
rows(ValueError, r"Adam: .*eps=0", adam_eps=lambda w: xpcnn.Adam(eps=0))
rows(ValueError, r"AdamW: .*weight_decay=-1", adamw_decay=lambda w: xpcnn.AdamW(weight_decay=-1))
rows(ValueError, r"SGD: .*momentum=1\.5", sgd_momentum=lambda w: xpcnn.SGD(0.1, momentum=1.5))
rows(
    ValueError,
    r"SGD: Nesterov momentum needs momentum > 0",
    sgd_nesterov=lambda w: xpcnn.SGD(0.1, nesterov=True),
)
rows(ValueError, r"Unknown optimizer 'adamx'", optimizer_unknown=lambda w: xpcnn.optim.get("adamx"))
rows(
    TypeError,
    r"hyperparameters \['momentum'\] apply only to a name",
    optimizer_kwargs=lambda w: xpcnn.optim.get(xpcnn.SGD(0.1), momentum=0.9),
)
rows(
    TypeError,
    r"SGD\.step: expected a list of layers \(e\.g\. model\.layers\), received NoneType",
    step_none=lambda w: xpcnn.SGD(0.1).step(None),
)
rows(
    TypeError,
    r"Adam\.step: expected xpcnn layers, received int at position 1",
    step_not_layers=lambda w: w.optimizer.step([w.conv(), 3]),
)


@row("step_missing_gradient", RuntimeError, r"Adam\.step: layer 1 \(Dense\) has no gradient for 'weights'")
def _(w):
    fresh = xpcnn.Dense(8, 3, seed=1, dtype="float64")
    fresh.index = 1
    w.optimizer.step([w.dense(), fresh])  # the first one has gradients: still nothing changes


@row("step_schedule_text", TypeError, r"learning-rate function .* returned 'abc' \(str\) at step")
def _(w):
    w.optimizer.learning_rate = _bad_schedule
    w.optimizer.step(w.model.layers)


@row("step_schedule_negative", ValueError, r"Adam: the learning-rate schedule gave -1\.0 at step")
def _(w):
    w.optimizer.learning_rate = lambda t: -1.0
    w.optimizer.step(w.model.layers)


# ------------------------------------------------------------------------------- schedules
rows(ValueError, r"step_size", step_decay_zero=lambda w: schedules.StepDecay(0.1, step_size=0))
rows(ValueError, r"initial", step_decay_negative=lambda w: schedules.StepDecay(-0.1, step_size=2))
rows(ValueError, r"decay_steps", cosine_zero_steps=lambda w: schedules.CosineDecay(0.1, decay_steps=0))
rows(ValueError, r"rate", exponential_rate=lambda w: schedules.ExponentialDecay(0.1, rate=0.0))
rows(
    ValueError,
    r"warmup_steps",
    warmup_zero=lambda w: schedules.LinearWarmup(schedules.Constant(0.1), warmup_steps=0),
)
rows(ValueError, r"factor", plateau_factor=lambda w: schedules.ReduceOnPlateau(0.1, factor=2.0))

# ------------------------------------------------------------------------------- callbacks
rows(
    ValueError,
    r'EarlyStopping: Expected mode "auto", "min" or "max"\. Received mode=\'up\'',
    early_mode=lambda w: cb.EarlyStopping(mode="up"),
)
rows(ValueError, r"EarlyStopping: .*patience=-1", early_patience=lambda w: cb.EarlyStopping(patience=-1))
rows(
    TypeError,
    r"EarlyStopping: Expected the name of a logged value",
    early_monitor=lambda w: cb.EarlyStopping(monitor=3),
)
rows(ValueError, r"ProgressBar|style", progress_style=lambda w: cb.ProgressBar(style="fancy"))
rows(
    TypeError,
    r"Expected a function epoch -> learning rate",
    scheduler_not_callable=lambda w: cb.LearningRateScheduler(0.1),
)
rows(ValueError, r"EarlyStopping: monitor='val_loss' is not among the logged values.*validation_data",
     early_without_validation=lambda w: fit(w, callbacks=[cb.EarlyStopping()]))  # fmt: skip
rows(TypeError, r"callbacks|Callback", callbacks_not_callbacks=lambda w: fit(w, callbacks=["early"]))

# ----------------------------------------------------------------------------- Sequential
rows(
    TypeError,
    r"Sequential: expected a list of layers, received NoneType",
    sequential_none=lambda w: xpcnn.Sequential(None),
)
rows(
    TypeError,
    r"received a single Dense\. Wrap it in a list",
    sequential_one_layer=lambda w: xpcnn.Sequential(xpcnn.Dense(2, 2)),
)
rows(ValueError, r"Sequential: expected at least one layer", sequential_empty=lambda w: xpcnn.Sequential([]))
rows(
    TypeError,
    r"Sequential: expected xpcnn layers\. Received str at position 1",
    sequential_strings=lambda w: xpcnn.Sequential([xpcnn.Dense(2, 2), "relu"]),
)
rows(
    ValueError,
    r"the same layer object appears twice",
    sequential_shared=lambda w: xpcnn.Sequential([w.dense(), w.dense()]),
)
rows(
    TypeError,
    r"different dtypes",
    sequential_mixed=lambda w: xpcnn.Sequential([xpcnn.Dense(2, 2), xpcnn.Dense(2, 2, dtype="float64")]),
)
rows(ValueError, r"layer 2 \(Dense\): expected 100 input features, received 2704",
     sequential_chain=lambda w: xpcnn.Sequential([xpcnn.Convolutional((1, 28, 28), 3, 4), xpcnn.Flatten(), xpcnn.Dense(100, 10)]))  # fmt: skip
rows(
    ValueError,
    r"layer 0 \(Convolutional\): expected input of shape \(n, 1, 6, 6\), received \(N, 1, 8, 8\)",
    summary_wrong_shape=lambda w: w.model.summary(input_shape=(1, 8, 8), file=io.StringIO()),
)
rows(
    ValueError, r"device", sequential_bad_device=lambda w: xpcnn.Sequential([xpcnn.Dense(2, 2)], device="gpu")
)
rows(
    TypeError,
    r"Sequential\.forward: expected x to be an array",
    forward_list=lambda w: w.model.forward([[0.0]]),
)
rows(
    ValueError,
    r"expected loss_gradient of shape",
    backward_wrong_shape_model=lambda w: (w.model.forward(w.x[:2]), w.model.backward(_f64(2, 4))),
)

# ----------------------------------------------------------------------- fit / evaluate / predict
rows(TypeError, r"fit: expected x to be an array .*received a list\. Convert it once with numpy\.asarray",
     fit_list_x=lambda w: fit(w, x=w.x.tolist()))  # fmt: skip
rows(
    TypeError,
    r"fit: expected y to be an array .*received a list",
    fit_list_y=lambda w: fit(w, y=w.y.tolist()),
)
rows(TypeError, r"fit: x is a data source, which gives \(x, y\) itself; received y too \(ndarray\)\. Pass y=None",
     fit_generator=lambda w: fit(w, x=(s for s in w.x), y=None))  # fmt: skip
rows(
    TypeError,
    r"fit: expected y \(the targets\) with array x; y may be left out only when x is a data source",
    fit_no_y=lambda w: w.model.fit(w.x, None, progress=False),
)
rows(
    ValueError,
    r"fit: x and y must have the same number of samples\. Received 10 and 9",
    fit_lengths=lambda w: fit(w, y=w.y[:9]),
)
rows(ValueError, r"fit: x has no samples", fit_empty=lambda w: fit(w, x=w.x[:0], y=w.y[:0]))
rows(
    TypeError,
    r"fit: x has dtype float32 but the model is float64",
    fit_float32=lambda w: fit(w, x=w.x.astype(np.float32)),
)
rows(
    TypeError,
    r"fit: expected x with a floating dtype, received dtype int64.*/ 255",
    fit_int_x=lambda w: fit(w, x=w.x.astype(np.int64)),
)
rows(ValueError, r"fit: SoftmaxCrossEntropy: expected class labels in \[0, 3\) .*from 0 to 7 in y",
     fit_label_in_last_batch=lambda w: fit(w, y=np.r_[w.y[:-1], 7], batch_size=3))  # fmt: skip
rows(ValueError, r"fit \(validation_data\): SoftmaxCrossEntropy: expected class labels",
     fit_val_labels=lambda w: fit(w, validation_data=(w.x, np.full(10, 9))))  # fmt: skip
rows(TypeError, r"fit: metric 'accuracy' cannot be computed.*mode 'labels' expects integer prediction",
     fit_metric_mode=lambda w: fit(w, metrics=[xpcnn.Accuracy(mode="labels")]))  # fmt: skip
rows(ValueError, r"Unknown metric 'acc2'", fit_metric_unknown=lambda w: fit(w, metrics=["acc2"]))
rows(TypeError, r"Expected a metric name or a function", fit_metric_number=lambda w: fit(w, metrics=[3]))
rows(
    ValueError,
    r"fit: .* is a metric without a gradient",
    fit_metric_as_loss=lambda w: fit(w, loss="accuracy"),
)
rows(ValueError, r"Unknown loss 'hinge'", fit_unknown_loss=lambda w: fit(w, loss="hinge"))
rows(
    ValueError,
    r"fit: Expected a non-negative integer\. Received epochs=-1",
    fit_epochs=lambda w: fit(w, epochs=-1),
)
rows(
    ValueError,
    r"fit: Expected a strictly positive integer\. Received batch_size=0",
    fit_batch=lambda w: fit(w, batch_size=0),
)
rows(ValueError, r"batch_size=2\.5", fit_batch_float=lambda w: fit(w, batch_size=2.5))
rows(ValueError, r"steps_per_sync=0", fit_sync=lambda w: fit(w, steps_per_sync=0))
rows(
    ValueError,
    r'Expected on_nonfinite "raise" or "stop"',
    fit_nonfinite=lambda w: fit(w, on_nonfinite="skip"),
)
rows(
    ValueError,
    r"expected validation_data=\(x_val, y_val\) or a data source\. Received a tuple of 1 item",
    fit_val_tuple=lambda w: fit(w, validation_data=(w.x,)),
)
rows(
    ValueError,
    r"val_x and val_y must have the same number",
    fit_val_lengths=lambda w: fit(w, validation_data=(w.x, w.y[:3])),
)
rows(TypeError, r"seed|Generator", fit_bad_seed=lambda w: fit(w, seed="abc"))
rows(
    ValueError,
    r"layer 0 \(Convolutional\): expected input of shape \(n, 1, 6, 6\)",
    fit_wrong_shape=lambda w: fit(w, x=_f64(10, 1, 5, 5)),
)
rows(ValueError, r"channels-last", fit_nhwc=lambda w: fit(w, x=np.moveaxis(w.x, 1, 3).copy()))
rows(ValueError, r"targets in \[0, 1\].* in y",
     fit_bce_targets=lambda w: xpcnn.Sequential([xpcnn.Dense(2, 1), xpcnn.Sigmoid()]).fit(_f32(4, 2), np.full((4, 1), 2, np.float32), loss="bce", progress=False))  # fmt: skip
rows(
    ValueError,
    r"predict: Expected a strictly positive integer\. Received batch_size=0",
    predict_batch=lambda w: w.model.predict(w.x, batch_size=0),
)
rows(
    ValueError,
    r"one sample without its batch axis; pass x\[None\]",
    predict_one_sample=lambda w: w.model.predict(w.x[0]),
)
rows(
    TypeError,
    r"predict: expected x to be an array .*received a list",
    predict_list=lambda w: w.model.predict(w.x.tolist()),
)
rows(
    TypeError,
    r"predict: expected x to be an array .*received a float64",
    predict_scalar=lambda w: w.model.predict(np.float64(1.0)),
)
rows(
    ValueError,
    r"predict: expected x with a leading sample axis\. Received a scalar",
    predict_0d=lambda w: w.model.predict(np.zeros(())),
)
rows(
    ValueError,
    r"evaluate: no loss and no metrics",
    evaluate_nothing=lambda w: xpcnn.Sequential([xpcnn.Dense(2, 2)]).evaluate(_f32(2, 2), np.zeros(2, int)),
)
rows(
    ValueError,
    r"evaluate: SoftmaxCrossEntropy: expected class labels",
    evaluate_labels=lambda w: w.model.evaluate(w.x, np.full(10, 5)),
)
rows(
    ValueError,
    r"Sequential\.train_step: no loss or optimizer; call model\.compile\(loss=\.\.\., optimizer=\.\.\.\) first",
    train_step_no_loss=lambda w: xpcnn.Sequential([xpcnn.Dense(2, 2)]).train_step(
        _f32(2, 2), np.zeros(2, int)
    ),
)

# --------------------------------------------------------------------------- save and load
rows(FileNotFoundError, r"Cannot save checkpoint: the folder '.*missing' does not exist: '.*missing/x\.xpcnn'",
     save_missing_folder=lambda w: w.model.save(w.tmp / "missing" / "x.xpcnn"))  # fmt: skip
rows(xpcnn.CheckpointError, r"the path is a folder", save_to_folder=lambda w: w.model.save(w.tmp))
rows(
    xpcnn.CheckpointError,
    r"metadata must map strings to strings",
    save_bad_metadata=lambda w: w.model.save(w.tmp / "m.xpcnn", metadata={"epochs": 3}),
)
rows(
    xpcnn.CheckpointError,
    r"metadata must be a dict of strings",
    save_metadata_list=lambda w: w.model.save(w.tmp / "m.xpcnn", metadata=["a"]),
)
rows(
    xpcnn.CheckpointError,
    r"not an xpcnn Layer|registry|outside",
    save_unregistered=lambda w: xpcnn.save([object()], w.tmp / "u.xpcnn"),
)
rows(xpcnn.CheckpointError, r"no such file", load_missing=lambda w: xpcnn.load(w.tmp / "nothing.xpcnn"))
rows(
    xpcnn.CheckpointError,
    r"the path is a folder, not a checkpoint file",
    load_folder=lambda w: xpcnn.load(w.tmp),
)
rows(
    xpcnn.CheckpointError,
    r"fewer than the 8-byte header length",
    load_tiny=lambda w: xpcnn.load(_write(w.tmp / "t.bin", b"abc")),
)
rows(
    xpcnn.CheckpointError,
    r"more than the limit",
    load_huge_header=lambda w: xpcnn.load(_write(w.tmp / "h.bin", (2**40).to_bytes(8, "little") + b"{}")),
)
rows(
    xpcnn.CheckpointError,
    r"data checksum mismatch",
    load_flipped_data=lambda w: xpcnn.load(
        _write(w.tmp / "f.xpcnn", w.path.read_bytes()[:-1] + bytes([w.path.read_bytes()[-1] ^ 1]))
    ),
)
rows(
    xpcnn.CheckpointError,
    r"header checksum mismatch",
    load_flipped_header=lambda w: xpcnn.load(
        _write(w.tmp / "g.xpcnn", w.path.read_bytes().replace(b"Dense", b"Dence"))
    ),
)
rows(
    xpcnn.CheckpointError,
    r"truncated",
    load_truncated=lambda w: xpcnn.load(_write(w.tmp / "c.xpcnn", w.path.read_bytes()[:-9])),
)
rows(ValueError, r"device", load_bad_device=lambda w: xpcnn.load(w.path, device="tpu"))

# -------------------------------------------------------------------------- the command line
rows(CommandFailed, r"argument --epochs", cli_negative_epochs=lambda w: cli(["demo", "--epochs", "-1"]))
rows(CommandFailed, r"argument --seed", cli_text_seed=lambda w: cli(["demo", "--seed", "x"]))
rows(CommandFailed, r"argument --task: invalid choice", cli_task=lambda w: cli(["demo", "--task", "cifar"]))
rows(
    CommandFailed,
    r"--device cuda:1: device='cuda:1' needs CuPy",
    cli_device_index=lambda w: without_cupy(cli, ["demo", "--device", "cuda:1", "--smoke"]),
)
rows(
    CommandFailed,
    r"--device tpu: device must be",
    cli_device_unknown=lambda w: cli(["demo", "--device", "tpu"]),
)
rows(
    CommandFailed,
    r"argument --device: device='cuda' needs CuPy",
    example_mnist_cuda=lambda w: without_cupy(example, "mnist", ["--device", "cuda", "--smoke"]),
)
rows(
    CommandFailed,
    r"argument --device: device='cuda' needs CuPy",
    example_xor_cuda=lambda w: without_cupy(example, "xor", ["--device", "cuda"]),
)
rows(
    CommandFailed,
    r"argument --device: device='cuda:3' needs CuPy",
    example_binary_cuda=lambda w: without_cupy(example, "mnist_binary", ["--device", "cuda:3", "--smoke"]),
)


@pytest.mark.parametrize(("call", "error", "pattern"), R)
def test_bad_input_is_refused_and_changes_nothing(tmp_path, call, error, pattern):
    w = make_world(tmp_path)
    before = snapshot(w)
    with pytest.raises(error) as info:
        call(w)
    message = str(info.value)
    assert re.search(pattern, message), f"{message!r} does not match {pattern!r}"
    assert "Traceback" not in message
    assert_same(before, snapshot(w))


def test_the_table_is_large_enough():
    assert len(R) >= 100, len(R)
