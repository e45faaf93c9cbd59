"""The shared argument checks (xpcnn/_validate.py) and their use across the modules: one rule,
one message ("Expected ... Received argument=value."), NumPy integers accepted everywhere."""

import math

import numpy as np
import pytest

import xpcnn
from xpcnn import _validate as V
from xpcnn import callbacks, data, schedules
from xpcnn.backend import placement


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: V.positive_int(0, "depth"),
            ValueError,
            r"^Expected a strictly positive integer\. Received depth=0\.$",
        ),
        (lambda: V.positive_int(2.5, "n"), ValueError, r"Received n=2\.5"),
        (lambda: V.positive_int(True, "n"), ValueError, r"Received n=True"),
        (
            lambda: V.non_negative_int(-1, "epochs", "fit"),
            ValueError,
            r"^fit: Expected a non-negative integer\. Received epochs=-1\.$",
        ),
        (lambda: V.integer(2, "n", 3), ValueError, r"Expected an integer >= 3\. Received n=2\."),
        (
            lambda: V.pair("ab", "stride", 1),
            TypeError,
            r"Expected an int or a pair of ints\. Received stride='ab'\.",
        ),
        (
            lambda: V.pair((1, 0), "stride", 1),
            ValueError,
            r"Expected strictly positive integers for stride\. Received stride=\(1, 0\)\.",
        ),
        (
            lambda: V.pair(3.0, "stride", 1, "MaxPool2D"),
            TypeError,
            r"^MaxPool2D: Expected an int or a pair of ints\. Received stride=3\.0\.$",
        ),
        (lambda: V.pair((1, 2, 3), "padding", 0), TypeError, r"Received padding=\(1, 2, 3\)"),
        (
            lambda: V.pair((1, -1), "padding", 0),
            ValueError,
            r"Expected non-negative integers for padding\. Received padding=\(1, -1\)\.",
        ),
        (lambda: V.real("2", "b"), TypeError, r"Expected a real number\. Received b='2'\."),
        (
            lambda: V.real(math.inf, "a", where="Linear"),
            ValueError,
            r"^Linear: Expected a finite value\. Received a=inf\.$",
        ),
        (
            lambda: V.positive(0, "sigma"),
            ValueError,
            r"Expected a strictly positive, finite value\. Received sigma=0\.",
        ),
        (lambda: V.positive(math.nan, "eps"), ValueError, r"Received eps=nan"),
        (
            lambda: V.non_negative(-0.5, "decay"),
            ValueError,
            r"Expected a non-negative, finite value\. Received decay=-0\.5\.",
        ),
        (
            lambda: V.real(0, "a", "nonzero"),
            ValueError,
            r"Expected a non-zero, finite value\. Received a=0\.",
        ),
        (
            lambda: V.unit_interval(1.0, "momentum"),
            ValueError,
            r"Expected a value in \[0, 1\)\. Received momentum=1\.0\.",
        ),
        (lambda: V.unit_interval(math.nan, "beta1"), ValueError, r"Received beta1=nan"),
        (
            lambda: V.unit_interval("high", "momentum"),
            TypeError,
            r"Expected a real number\. Received momentum='high'\.",
        ),
    ],
)
def test_rules_and_messages(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_float_dtype():
    assert [V.float_dtype(d) for d in ("float32", np.float64, np.dtype("float32"))] == [
        "float32",
        "float64",
        "float32",
    ]
    with pytest.raises(ValueError, match=r"^Expected dtype float32 or float64\. Received dtype='int8'\.$"):
        V.float_dtype("int8")
    with pytest.raises(
        ValueError, match=r"load_digits: Expected dtype float32 or float64\. Received dtype=None"
    ):
        V.float_dtype(None, where="load_digits")


def test_cleaned_values():
    assert V.positive_int(np.int64(3), "n") == 3 and type(V.positive_int(np.int64(3), "n")) is int
    assert V.pair(np.int32(2), "k", 1) == (2, 2)
    assert V.pair([1, np.int64(0)], "p", 0) == (1, 0)
    assert V.positive(np.float32(0.5), "lr") == 0.5
    assert V.unit_interval(1.0, "x", closed=True) == 1.0


# ---------------------------------------------------------------- the modules use them
def test_numpy_integers_are_accepted_by_every_layer():
    conv = xpcnn.Convolutional((1, 6, 6), np.int64(3), 2, stride=np.int64(1), padding=np.int64(1), seed=0)
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
    pool = xpcnn.MaxPool2D(np.int64(2), stride=np.int32(2))
    assert pool.pool_size == (2, 2) and pool.stride == (2, 2)
    x = np.ones((1, 1, 6, 6), dtype="float32")
    y = xpcnn.conv2d_forward(x, np.ones((1, 1, 3, 3), dtype="float32"), stride=np.int64(2))
    assert tuple(y.shape) == (1, 1, 2, 2)


def test_pooling_errors_name_the_layer():
    with pytest.raises(
        TypeError, match=r"^AvgPool2D: Expected an int or a pair of ints\. Received pool_size=2\.0\.$"
    ):
        xpcnn.AvgPool2D(2.0)


def test_hyperparameters_of_the_wrong_type_raise_a_clear_error():
    with pytest.raises(TypeError, match=r"Expected a real number\. Received momentum='high'\."):
        xpcnn.SGD(0.1, momentum="high")
    with pytest.raises(TypeError, match=r"Expected a real number\. Received beta2=None\."):
        xpcnn.Adam(beta2=None)
    with pytest.raises(TypeError, match=r"Received factor='x'"):
        schedules.StepDecay(0.1, 10, factor="x")


def test_metric_threshold_must_be_finite():
    with pytest.raises(ValueError, match=r"Accuracy: Expected a finite value\. Received threshold=nan\."):
        xpcnn.Accuracy(threshold=math.nan)


def test_quadratic_loss_C_names_the_rule():
    with pytest.raises(TypeError, match=r"QuadraticLoss: Expected a real number\. Received C='1'\."):
        xpcnn.QuadraticLoss("1")
    with pytest.raises(
        ValueError, match=r"QuadraticLoss: Expected a strictly positive, finite value\. Received C=-1\."
    ):
        xpcnn.QuadraticLoss(-1)


def test_callbacks_check_monitor(tmp_path):
    match = r"Expected the name of a logged value, e\.g\. 'val_loss'\. Received monitor=3\."
    with pytest.raises(TypeError, match="EarlyStopping: " + match):
        callbacks.EarlyStopping(monitor=3)
    with pytest.raises(TypeError, match="ModelCheckpoint: " + match):
        callbacks.ModelCheckpoint(tmp_path / "m.xpcnn", monitor=3)


def test_seed_error_follows_the_style():
    with pytest.raises(
        TypeError,
        match=r"Expected seed to be None, a non-negative int or a numpy\.random\.Generator\. Received seed=-1\.",
    ):
        xpcnn.Dense(2, 2, seed=-1)


def test_data_source_has_a_repr():
    source = data.DataSource(
        np.zeros((5, 2), "float32"), placement("cpu"), what="x", where="fit", dtype="float32"
    )
    assert repr(source) == "DataSource(x, shape=(5, 2), dtype=float32, host -> cpu)"
