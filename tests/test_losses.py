"""Losses and metrics: float64 gradient checks, hand-computed values, stability, bad input."""

import math
import re

import numpy as np
import pytest

import xpcnn
from xpcnn import losses
from xpcnn.backend import dtype_name, placement, placement_of


def _other_placement(be):
    """A placement different from ``be``'s (strict on device1 for numpy, numpy otherwise)."""
    if be.name == "numpy":
        import array_api_strict as s

        return xpcnn.Placement.of(s, s.Device("device1"))
    return placement("cpu")


def _probabilities(rng, shape):
    return rng.uniform(0.05, 0.95, size=shape)


# ------------------------------------------------------------------ gradients (float64)
@pytest.mark.parametrize("shape", [(5,), (4, 1), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("C", [0.5, 1.0, 3.0])
def test_quadratic_gradient(be, rng, shape, C):
    p, t = be.asarray(rng.normal(size=shape)), be.asarray(rng.normal(size=shape))
    xpcnn.check_loss_gradient(xpcnn.QuadraticLoss(C), p, t)


@pytest.mark.parametrize("shape", [(6,), (4, 1), (3, 4)])
@pytest.mark.parametrize("soft", [False, True], ids=["labels", "soft"])
def test_binary_crossentropy_gradient(be, rng, shape, soft):
    t = rng.uniform(size=shape) if soft else rng.integers(0, 2, size=shape).astype(float)
    p = be.asarray(_probabilities(rng, shape))
    xpcnn.check_loss_gradient(xpcnn.BinaryCrossEntropy(), p, be.asarray(t))


@pytest.mark.parametrize("shape", [(6,), (4, 1), (3, 4)])
def test_binary_crossentropy_from_logits_gradient(be, rng, shape):
    x = be.asarray(3 * rng.normal(size=shape))
    t = be.asarray(rng.integers(0, 2, size=shape))
    xpcnn.check_loss_gradient(xpcnn.BinaryCrossEntropyFromLogits(), x, t)


@pytest.mark.parametrize("target", ["labels", "one-hot", "probabilities", "unnormalised"])
def test_softmax_crossentropy_gradient(be, rng, target):
    n, c = 5, 4
    x = be.asarray(2 * rng.normal(size=(n, c)))
    labels = rng.integers(0, c, size=n)
    if target == "labels":
        t = be.asarray(labels, dtype="int64")
    elif target == "one-hot":
        t = be.asarray(np.eye(c)[labels])
    elif target == "probabilities":
        w = rng.uniform(size=(n, c))
        t = be.asarray(w / w.sum(axis=1, keepdims=True))
    else:  # label-smoothing-like weights that do not sum to 1: the general gradient formula
        t = be.asarray(rng.uniform(size=(n, c)))
    xpcnn.check_loss_gradient(xpcnn.SoftmaxCrossEntropy(), x, t)


def test_check_loss_gradient_catches_a_wrong_gradient(be, rng):
    class Wrong(xpcnn.QuadraticLoss):
        def _gradient(self, xp, prediction, target):
            return 1.01 * super()._gradient(xp, prediction, target)

    p, t = be.asarray(rng.normal(size=(3, 2))), be.asarray(rng.normal(size=(3, 2)))
    with pytest.raises(xpcnn.GradientCheckError, match="Wrong dE/dprediction"):
        xpcnn.check_loss_gradient(Wrong(), p, t)


# --------------------------------------------------------------------------- values
def test_hand_computed_values(be):
    # eq. 2, C = 1/2, mean over the 4 elements: 0.5 (1 + 4 + 0 + 9) / 4 = 1.75
    p = be.asarray([[1.0, 2.0], [0.0, -3.0]])
    t = be.asarray([[0.0, 0.0], [0.0, 0.0]])
    assert float(xpcnn.QuadraticLoss()(p, t)) == 1.75
    assert float(xpcnn.QuadraticLoss(C=1)(p, t)) == 3.5
    np.testing.assert_array_equal(
        be.to_host(xpcnn.QuadraticLoss().gradient(p, t)), [[0.25, 0.5], [0.0, -0.75]]
    )
    # eq. 21: y = 1/2 costs log 2 whatever the label; y = 0.8 for t = 1 and t = 0
    bce = xpcnn.BinaryCrossEntropy()
    assert math.isclose(
        float(bce(be.asarray([0.5, 0.5]), be.asarray([1.0, 0.0]))), math.log(2), rel_tol=1e-15
    )
    value = float(bce(be.asarray([0.8, 0.8]), be.asarray([1.0, 0.0])))
    assert math.isclose(value, -(math.log(0.8) + math.log(0.2)) / 2, rel_tol=1e-15)
    # eq. 22 at y = 0.8: (1/2)(-1/0.8) for t = 1 and (1/2)(1/0.2) for t = 0
    grad = be.to_host(bce.gradient(be.asarray([0.8, 0.8]), be.asarray([1.0, 0.0])))
    np.testing.assert_allclose(grad, [-0.625, 2.5], rtol=1e-14)
    # from logits: x = 0 costs log 2; softmax of equal logits costs log C
    logits = xpcnn.BinaryCrossEntropyFromLogits()
    assert math.isclose(float(logits(be.asarray([0.0]), be.asarray([1.0]))), math.log(2), rel_tol=1e-15)
    sce = xpcnn.SoftmaxCrossEntropy()
    assert math.isclose(float(sce(be.asarray(np.zeros((2, 3))), be.asarray([0, 2], "int64"))), math.log(3))
    # logits (log 1, log 3): softmax (1/4, 3/4); label 1 costs -log(3/4), label 0 costs log 4
    x = be.asarray([[0.0, math.log(3)], [0.0, math.log(3)]])
    value = float(sce(x, be.asarray([1, 0], "int64")))
    assert math.isclose(value, (-math.log(0.75) + math.log(4)) / 2, rel_tol=1e-14)
    np.testing.assert_allclose(
        be.to_host(sce.gradient(x, be.asarray([1, 0], "int64"))),
        [[0.125, -0.125], [-0.375, 0.375]],
        rtol=1e-14,
    )


def _reference(name, p, t):
    """float64 NumPy references written straight from the formulas."""
    if name == "quadratic":
        return np.mean(0.5 * (t - p) ** 2)
    if name == "bce":
        return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    if name == "bce_logits":
        s = 1 / (1 + np.exp(-p))
        return -np.mean(t * np.log(s) + (1 - t) * np.log(1 - s))
    e = np.exp(p)
    return -np.mean(np.sum(t * np.log(e / e.sum(axis=1, keepdims=True)), axis=1))


@pytest.mark.parametrize(
    "name, loss",
    [
        ("quadratic", xpcnn.QuadraticLoss()),
        ("bce", xpcnn.BinaryCrossEntropy()),
        ("bce_logits", xpcnn.BinaryCrossEntropyFromLogits()),
        ("softmax", xpcnn.SoftmaxCrossEntropy()),
    ],
)
def test_values_against_float64_references(be, rng, name, loss):
    shape = (6, 3)
    p = _probabilities(rng, shape) if name == "bce" else 2 * rng.normal(size=shape)
    t = np.eye(3)[rng.integers(0, 3, size=6)] if name == "softmax" else rng.integers(0, 2, size=shape) * 1.0
    reference = _reference(name, p, t)
    value = loss(be.asarray(p), be.asarray(t))
    assert math.isclose(float(value), reference, rel_tol=1e-12)
    # float32: within 1e-5 relative of the float64 reference
    value32 = loss(be.asarray(p, "float32"), be.asarray(t, "float32"))
    assert math.isclose(float(value32), reference, rel_tol=1e-5)


@pytest.mark.parametrize(
    "loss, kind",
    [
        (xpcnn.QuadraticLoss(), "real"),
        (xpcnn.BinaryCrossEntropy(), "probability"),
        (xpcnn.BinaryCrossEntropyFromLogits(), "real"),
        (xpcnn.SoftmaxCrossEntropy(), "real"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, xpcnn.Loss) else v,
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_contract_dtype_placement_no_mutation(be, rng, loss, kind, dtype):
    p_host = _probabilities(rng, (4, 3)) if kind == "probability" else rng.normal(size=(4, 3))
    t_host = np.eye(3)[[0, 2, 1, 1]]
    p, t = be.asarray(p_host, dtype), be.asarray(t_host, dtype)
    value = loss(p, t)
    assert value.ndim == 0 and dtype_name(value.dtype) == dtype and placement_of(value) == be.place
    grad = loss.gradient(p, t)
    assert tuple(grad.shape) == (4, 3) and dtype_name(grad.dtype) == dtype and placement_of(grad) == be.place
    both = loss.value_and_gradient(p, t)
    assert float(both[0]) == float(value)
    np.testing.assert_array_equal(be.to_host(both[1]), be.to_host(grad))
    np.testing.assert_array_equal(be.to_host(p), p_host.astype(dtype))
    np.testing.assert_array_equal(be.to_host(t), t_host.astype(dtype))


def test_integer_and_bool_targets_are_cast_to_the_prediction_dtype(be, rng):
    p = be.asarray(_probabilities(rng, (5,)), "float32")
    labels = rng.integers(0, 2, size=5)
    reference = xpcnn.BinaryCrossEntropy()(p, be.asarray(labels, "float32"))
    for dtype in ("int64", "bool"):
        value = xpcnn.BinaryCrossEntropy()(p, be.asarray(labels, dtype))
        assert dtype_name(value.dtype) == "float32" and float(value) == float(reference)


def test_the_mean_is_over_the_batch(be, rng):
    """One sample repeated k times has the loss of the sample alone."""
    p, t = rng.normal(size=(1, 4)), np.eye(4)[[2]]
    for loss in (xpcnn.QuadraticLoss(), xpcnn.SoftmaxCrossEntropy(), xpcnn.BinaryCrossEntropyFromLogits()):
        one = float(loss(be.asarray(p), be.asarray(t)))
        many = float(loss(be.asarray(np.repeat(p, 5, axis=0)), be.asarray(np.repeat(t, 5, axis=0))))
        assert math.isclose(one, many, rel_tol=1e-14)


# ------------------------------------------------------------------------ stability
def test_softmax_crossentropy_at_plus_minus_1000_float32(be):
    x = be.asarray([[1000.0, -1000.0], [-1000.0, 1000.0], [1000.0, 1000.0]], "float32")
    sce = xpcnn.SoftmaxCrossEntropy()
    value = sce(x, be.asarray([0, 1, 0], "int64"))  # per row: 0, 0, log 2
    assert dtype_name(value.dtype) == "float32" and math.isclose(float(value), math.log(2) / 3, rel_tol=1e-6)
    assert float(sce(x[:2, :], be.asarray([1, 0], "int64"))) == 2000.0  # exact: (2000 + 2000) / 2
    grad = be.to_host(sce.gradient(x[:2, :], be.asarray([1, 0], "int64")))
    np.testing.assert_array_equal(grad, [[0.5, -0.5], [-0.5, 0.5]])


@pytest.mark.filterwarnings("error")
def test_binary_crossentropy_from_logits_is_stable(be):
    x = be.asarray([1000.0, -1000.0, 1e4, -1e4, 100.0], "float32")
    t = be.asarray([1.0, 1.0, 0.0, 0.0, 0.0], "float32")
    loss = xpcnn.BinaryCrossEntropyFromLogits()
    # per element: 0, 1000, 1e4, 0, 100 (log1p(exp(-100)) is below float32's resolution at 100)
    assert float(loss(x, t)) == pytest.approx((1000.0 + 1e4 + 100.0) / 5, rel=1e-7)
    np.testing.assert_array_equal(
        be.to_host(loss.gradient(x, t)), np.float32([0, -1, 1, 0, 1]) / np.float32(5)
    )


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_crossentropy_at_exact_zero_and_one(be, dtype):
    eps = float(np.finfo(dtype).eps)
    bce = xpcnn.BinaryCrossEntropy()
    right = bce(be.asarray([0.0, 1.0], dtype), be.asarray([0.0, 1.0], dtype))
    wrong = bce(be.asarray([0.0, 1.0], dtype), be.asarray([1.0, 0.0], dtype))
    assert 0 <= float(right) < 10 * eps
    assert math.isfinite(float(wrong)) and float(wrong) == pytest.approx(-math.log(eps), rel=1e-6)
    grad = be.to_host(bce.gradient(be.asarray([0.0, 1.0], dtype), be.asarray([1.0, 0.0], dtype)))
    assert np.all(np.isfinite(grad)) and grad[0] < 0 < grad[1]  # pushes 0 up and 1 down


# ------------------------------------------------------------------------ metrics
def test_zero_one_loss_and_accuracy(be):
    scores = be.asarray([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, 2.0]])
    labels = be.asarray([1, 0, 1, 2], "int64")
    zero_one = xpcnn.ZeroOneLoss()
    assert float(zero_one(scores, labels)) == 0.5  # eq. 3: two of four wrong
    assert float(xpcnn.accuracy(scores, labels)) == 0.5
    assert float(xpcnn.accuracy(scores, be.asarray(np.eye(3)[[1, 0, 2, 2]]))) == 0.75  # one-hot rows
    probabilities = be.asarray([[0.2], [0.7], [0.5], [0.9]])
    assert float(xpcnn.accuracy(probabilities, be.asarray([[0.0], [1.0], [1.0], [0.0]]))) == 0.5
    assert float(xpcnn.accuracy(be.asarray([-1.0, 2.0]), be.asarray([0, 1], "int64"), threshold=0.0)) == 1.0
    multi = be.asarray([[0.9, 0.1], [0.6, 0.8]])
    assert float(xpcnn.Accuracy(mode="binary")(multi, be.asarray([[1, 0], [0, 1]], "int64"))) == 0.75
    # eq. 3 literally: labels against labels
    value = zero_one(be.asarray([1, 2, 3], "int64"), be.asarray([1, 0, 3], "int64"))
    assert math.isclose(float(value), 1 / 3, rel_tol=1e-7) and placement_of(value) == be.place
    value = zero_one(scores, labels)
    assert value.ndim == 0 and dtype_name(value.dtype) == "float64" and placement_of(value) == be.place


def test_metrics_have_no_gradient(be):
    p, t = be.asarray([[0.1, 0.9]]), be.asarray([1], "int64")
    for metric in (xpcnn.ZeroOneLoss(), xpcnn.Accuracy()):
        assert not metric.differentiable
        with pytest.raises(TypeError, match=f"{type(metric).__name__} is a metric and has no gradient"):
            metric.gradient(p, t)
        with pytest.raises(TypeError, match="piecewise constant"):
            metric.value_and_gradient(p, t)


# ---------------------------------------------------------------------------- get
def test_get_resolves_names():
    assert isinstance(losses.get("quadratic"), xpcnn.QuadraticLoss) and losses.get("quadratic").C == 0.5
    assert losses.get("MSE").C == 1.0
    assert type(losses.get("binary-crossentropy")) is xpcnn.BinaryCrossEntropy
    assert type(losses.get("binary_crossentropy_from_logits")) is xpcnn.BinaryCrossEntropyFromLogits
    for name in ("softmax_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"):
        assert type(losses.get(name)) is xpcnn.SoftmaxCrossEntropy
    assert type(losses.get("0-1")) is xpcnn.ZeroOneLoss and type(losses.get("accuracy")) is xpcnn.Accuracy
    loss = xpcnn.QuadraticLoss(C=2)
    assert (
        losses.get(loss) is loss and type(losses.get(xpcnn.SoftmaxCrossEntropy)) is xpcnn.SoftmaxCrossEntropy
    )
    assert repr(loss) == "QuadraticLoss(C=2.0)"
    with pytest.raises(
        ValueError, match=r"Unknown loss 'hinge'\. Known names: .*binary_crossentropy.*quadratic"
    ):
        losses.get("hinge")
    with pytest.raises(TypeError, match="Expected a loss name or a Loss instance. Received int"):
        losses.get(3)
    with pytest.raises(ValueError, match="Received C=0"):
        xpcnn.QuadraticLoss(C=0)
    with pytest.raises(ValueError, match="Received mode='sparse'"):
        xpcnn.Accuracy(mode="sparse")


# ------------------------------------------------------------------------ bad input
ALL_LOSSES = [
    xpcnn.QuadraticLoss(),
    xpcnn.BinaryCrossEntropy(),
    xpcnn.BinaryCrossEntropyFromLogits(),
    xpcnn.SoftmaxCrossEntropy(),
]


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda v: type(v).__name__)
def test_bad_input_common(be, loss):
    name = type(loss).__name__
    p = be.asarray(np.full((3, 2), 0.5))
    t = be.asarray(np.eye(2)[[0, 1, 1]])
    for method in (loss, loss.gradient):
        with pytest.raises(TypeError, match=f"{name}: expected prediction to be an array, received list"):
            method([[0.5, 0.5]], t)
        with pytest.raises(TypeError, match=f"{name}: expected target to be an array, received list"):
            method(p, [[1.0, 0.0]] * 3)
        with pytest.raises(
            TypeError, match=f"{name}: expected a prediction with a floating dtype.*received dtype int64"
        ):
            method(be.asarray(np.zeros((3, 2)), "int64"), t)
        with pytest.raises(
            ValueError, match=rf"{name}: received an empty batch \(prediction shape \(0, 2\)\)"
        ):
            method(be.asarray(np.zeros((0, 2))), be.asarray(np.zeros((0, 2))))
        with pytest.raises(ValueError, match=rf"{name}: expected a prediction with the batch along axis 0"):
            method(be.asarray(0.5), be.asarray(1.0))
        other = _other_placement(be)
        with pytest.raises(
            ValueError,
            match=rf"{name}: target is on {re.escape(other.name)} but prediction is on {re.escape(be.place.name)}",
        ):
            method(p, other.asarray(np.eye(2)[[0, 1, 1]], "float64"))


@pytest.mark.parametrize("loss", ALL_LOSSES[:3], ids=lambda v: type(v).__name__)
def test_shapes_never_broadcast(be, loss):
    name = type(loss).__name__
    column, flat = be.asarray(np.full((4, 1), 0.5)), be.asarray(np.ones(4))
    with pytest.raises(
        ValueError,
        match=rf"{name}: expected target of the prediction's shape \(4, 1\), received \(4,\)\. Reshape",
    ):
        loss(column, flat)
    with pytest.raises(
        ValueError,
        match=rf"{name}: expected target of the prediction's shape \(4,\), received \(4, 1\)\. Reshape",
    ):
        loss.gradient(flat * 0.5, column)
    with pytest.raises(
        ValueError, match=r"expected target of the prediction's shape \(4, 1\), received \(1, 1\)"
    ):
        loss(column, be.asarray([[1.0]]))


@pytest.mark.parametrize("label_dtype", ["uint8", "int8"])
def test_softmax_crossentropy_narrow_labels_with_more_classes_than_the_dtype_holds(be, rng, label_dtype):
    """300 classes with uint8/int8 labels: an arange(300) in the labels' dtype would wrap onto 0..43
    and count those labels twice; the labels are compared in int64."""
    n, c = 6, 300
    labels = np.array([0, 5, 43, 100, 127, 255 if label_dtype == "uint8" else 44])
    sce = xpcnn.SoftmaxCrossEntropy()
    zeros = be.asarray(np.zeros((n, c)))
    assert float(sce(zeros, be.asarray(labels, label_dtype))) == pytest.approx(math.log(c), rel=1e-12)
    logits = 3 * rng.normal(size=(n, c))
    x = be.asarray(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    reference = -logp[np.arange(n), labels].mean()
    narrow, wide = be.asarray(labels, label_dtype), be.asarray(labels, "int64")
    assert float(sce(x, narrow)) == pytest.approx(reference, rel=1e-12)
    np.testing.assert_allclose(
        be.to_host(sce.gradient(x, narrow)), be.to_host(sce.gradient(x, wide)), rtol=1e-15
    )
    value, gradient = sce.value_and_gradient(x, narrow)
    assert float(value) == pytest.approx(reference, rel=1e-12)
    np.testing.assert_allclose(be.to_host(gradient), be.to_host(sce.gradient(x, wide)), rtol=1e-15)
    assert tuple(narrow.shape) == (n,) and dtype_name(narrow.dtype) == label_dtype  # not modified


def test_softmax_crossentropy_bad_targets(be):
    sce = xpcnn.SoftmaxCrossEntropy()
    x = be.asarray(np.zeros((3, 4)))
    for labels in ([0, 4, 1], [-1, 0, 1], [0, 1, 7]):
        low, high = min(labels), max(labels)
        with pytest.raises(
            ValueError, match=rf"labels in \[0, 4\) for 4 classes, received labels from {low} to {high}"
        ):
            sce(x, be.asarray(labels, "int64"))
        with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
            sce.gradient(x, be.asarray(labels, "int32"))
    with pytest.raises(
        TypeError,
        match=r"SoftmaxCrossEntropy: expected integer class labels of shape \(3,\), received dtype float64",
    ):
        sce(x, be.asarray([0.0, 1.0, 2.0]))
    with pytest.raises(
        ValueError, match=r"expected 3 class labels \(shape \(3,\)\).*received target of shape \(2,\)"
    ):
        sce(x, be.asarray([0, 1], "int64"))
    with pytest.raises(
        ValueError, match=r"expected target of shape \(3,\) \(class labels\) or \(3, 4\).*received \(3, 1\)"
    ):
        sce(x, be.asarray(np.zeros((3, 1))))
    with pytest.raises(
        ValueError,
        match=r"SoftmaxCrossEntropy: expected logits of shape \(N, C\), received shape \(3, 4, 1\)",
    ):
        sce(be.asarray(np.zeros((3, 4, 1))), be.asarray([0, 1, 2], "int64"))


def test_binary_crossentropy_rejects_non_probabilities(be):
    bce = xpcnn.BinaryCrossEntropy()
    t = be.asarray([1.0, 0.0, 1.0])
    with pytest.raises(
        ValueError,
        match=r"BinaryCrossEntropy: expected probabilities in \[0, 1\], received 2 value\(s\) outside \(min -0.5, max 1.5\).*FromLogits",
    ):
        bce(be.asarray([-0.5, 0.5, 1.5]), t)
    with pytest.raises(ValueError, match=r"received 1 value\(s\) outside"):
        bce.gradient(be.asarray([0.2, float("nan"), 0.3]), t)


def test_metric_bad_input(be):
    acc = xpcnn.Accuracy()
    with pytest.raises(
        ValueError, match=r"Accuracy: expected target of the prediction's shape \(2, 1\), received \(2,\)"
    ):
        acc(be.asarray([[0.2], [0.9]]), be.asarray([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"Accuracy: received an empty batch"):
        acc(be.asarray(np.zeros((0, 3))), be.asarray(np.zeros(0), "int64"))
    with pytest.raises(ValueError, match=r"cannot tell how to decide a prediction of shape \(2, 3, 4\)"):
        acc(be.asarray(np.zeros((2, 3, 4))), be.asarray(np.zeros((2, 3, 4))))
    with pytest.raises(
        TypeError, match=r"ZeroOneLoss: expected integer class labels of shape \(2,\), received dtype float64"
    ):
        xpcnn.ZeroOneLoss()(be.asarray(np.zeros((2, 3))), be.asarray([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"ZeroOneLoss: target is on"):
        xpcnn.ZeroOneLoss()(be.asarray(np.zeros((2, 3))), _other_placement(be).asarray([0, 1], "int64"))
