"""Optimizers: the first steps against float64 references written out by hand, on every
backend; state placement; hyperparameter checks."""

import math

import numpy as np
import pytest

import xpcnn
from xpcnn import optim, schedules
from xpcnn.backend import dtype_name, placement_of

STEPS = 3


def _layer_and_gradients(be, rng):
    """A float64 Dense(3, 2) on ``be`` and three host gradient sets (one per step)."""
    layer = xpcnn.Dense(3, 2, seed=4, dtype="float64").to(be.place)
    layer.bias = be.asarray(rng.normal(size=2))
    grads = [{"weights": rng.normal(size=(2, 3)), "bias": rng.normal(size=2)} for _ in range(STEPS)]
    start = {k: np.array(be.to_host(v)) for k, v in layer.parameters().items()}
    return layer, grads, start


def _run(be, layer, optimizer, grads):
    """Apply ``optimizer`` with the given gradients; return the host parameters after each step."""
    seen = []
    for g in grads:
        layer.grads = {k: be.asarray(v) for k, v in g.items()}
        optimizer.step([layer])
        seen.append({k: np.array(be.to_host(v)) for k, v in layer.parameters().items()})
    return seen


def _compare(seen, expected):
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected, strict=True):
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ references (float64)
def _sgd_reference(w, grads, lr):
    out = []
    for g in grads:
        w = w - lr * g
        out.append(w)
    return out


def _momentum_reference(w, grads, lr, mu, nesterov):
    v = np.zeros_like(w)
    out = []
    for g in grads:
        v = mu * v + g
        w = w - lr * (g + mu * v if nesterov else v)
        out.append(w)
    return out


def _adam_reference(w, grads, lr, b1, b2, eps, decay=0.0):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    out = []
    for t, g in enumerate(grads, start=1):
        w = w - lr * decay * w  # AdamW: decoupled, on the weights, before the Adam step
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    return out


def _per_param(reference, start, grads, **kw):
    per = {k: reference(start[k], [g[k] for g in grads], **kw) for k in start}
    return [{k: per[k][i] for k in start} for i in range(len(grads))]


def test_sgd_is_plain_gradient_descent(be, rng):
    layer, grads, start = _layer_and_gradients(be, rng)
    opt = xpcnn.SGD(learning_rate=0.1)
    _compare(_run(be, layer, opt, grads), _per_param(_sgd_reference, start, grads, lr=0.1))
    assert opt.state == {} or all(len(e) == 1 for e in opt.state.values())  # no velocity slots
    assert opt.iterations == STEPS


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_sgd_momentum(be, rng, nesterov):
    layer, grads, start = _layer_and_gradients(be, rng)
    opt = xpcnn.SGD(0.05, momentum=0.9, nesterov=nesterov)
    expected = _per_param(_momentum_reference, start, grads, lr=0.05, mu=0.9, nesterov=nesterov)
    _compare(_run(be, layer, opt, grads), expected)


def test_adam_bias_correction(be, rng):
    layer, grads, start = _layer_and_gradients(be, rng)
    opt = xpcnn.Adam(0.01, beta1=0.8, beta2=0.95, eps=1e-7)
    expected = _per_param(_adam_reference, start, grads, lr=0.01, b1=0.8, b2=0.95, eps=1e-7)
    _compare(_run(be, layer, opt, grads), expected)


def test_adam_first_step_is_lr_times_sign(be, rng):
    """With bias correction the first Adam step moves every weight by ~lr (eps aside)."""
    layer, grads, start = _layer_and_gradients(be, rng)
    seen = _run(be, layer, xpcnn.Adam(0.01), grads[:1])
    np.testing.assert_allclose(
        seen[0]["weights"] - start["weights"], -0.01 * np.sign(grads[0]["weights"]), rtol=1e-5
    )


def test_adamw_decoupled_decay(be, rng):
    layer, grads, start = _layer_and_gradients(be, rng)
    opt = xpcnn.AdamW(0.01, weight_decay=0.5)
    expected = _per_param(_adam_reference, start, grads, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, decay=0.5)
    _compare(_run(be, layer, opt, grads), expected)
    # and decay is not an L2 term in the gradient: it differs from Adam on g + lambda w
    plain = _per_param(_adam_reference, start, grads, lr=0.01, b1=0.9, b2=0.999, eps=1e-8)
    assert not np.allclose(expected[-1]["weights"], plain[-1]["weights"], rtol=1e-6)


def test_schedule_sets_each_step_learning_rate(be, rng):
    layer, grads, start = _layer_and_gradients(be, rng)
    sched = schedules.StepDecay(0.1, step_size=1, factor=0.5)  # 0.1, 0.05, 0.025
    opt = xpcnn.SGD(sched)
    expected, w = [], start
    for t, g in enumerate(grads):
        w = {k: w[k] - 0.1 * 0.5**t * g[k] for k in w}
        expected.append(w)
    _compare(_run(be, layer, opt, grads), expected)
    assert opt.last_learning_rate == pytest.approx(0.025)
    assert opt.learning_rate == pytest.approx(0.0125)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_state_lives_on_the_parameters_device_and_dtype(be, rng, dtype):
    layer = xpcnn.Dense(3, 2, seed=0, dtype=dtype).to(be.place)
    opt = xpcnn.Adam()
    layer.grads = {
        k: be.asarray(rng.normal(size=tuple(v.shape)), dtype) for k, v in layer.parameters().items()
    }
    opt.step([layer])
    arrays = opt.state_arrays()
    assert len(arrays) == 4  # m and v for weights and bias
    for (lay, name, _slot), a in arrays.items():
        assert lay is layer and placement_of(a) == be.place and dtype_name(a.dtype) == dtype
        assert tuple(a.shape) == tuple(getattr(layer, name).shape)
    for p in layer.parameters().values():
        assert placement_of(p) == be.place and dtype_name(p.dtype) == dtype


def test_optimizer_to_moves_state(be, rng):
    layer = xpcnn.Dense(3, 2, seed=0, dtype="float64")
    opt = xpcnn.SGD(0.1, momentum=0.9)
    layer.grads = {"weights": rng.normal(size=(2, 3)), "bias": rng.normal(size=2)}
    opt.step([layer])
    velocity = np.array(opt.state[(layer, "weights")]["velocity"])
    layer.to(be.place)
    if placement_of(layer.weights) != xpcnn.placement("cpu"):
        with pytest.raises(RuntimeError, match=r"state of Dense\.weights is on cpu .* model\.to"):
            layer.grads = {
                k: be.asarray(v) for k, v in {"weights": np.ones((2, 3)), "bias": np.ones(2)}.items()
            }
            opt.step([layer])
    opt.to(be.place, "float64")
    v = opt.state[(layer, "weights")]["velocity"]
    assert placement_of(v) == be.place
    np.testing.assert_array_equal(be.to_host(v), velocity)
    layer.grads = {"weights": be.asarray(np.ones((2, 3))), "bias": be.asarray(np.ones(2))}
    opt.step([layer])  # works on the new device


def test_optimizer_to_checks_the_dtype_and_resolves_the_placement_once(monkeypatch, rng):
    layers = [xpcnn.Dense(3, 2, seed=0, dtype="float64"), xpcnn.Dense(2, 2, seed=1, dtype="float64")]
    opt = xpcnn.SGD(0.1, momentum=0.9)
    with pytest.raises(
        ValueError, match=r"^SGD\.to: Expected dtype float32 or float64\. Received dtype='int8'\.$"
    ):
        opt.to("cpu", "int8")  # checked even before there is any state
    for layer in layers:
        layer.grads = {k: rng.normal(size=tuple(v.shape)) for k, v in layer.parameters().items()}
    opt.step(layers)
    before = {k: np.array(v) for k, v in opt.state_arrays().items()}
    with pytest.raises(
        ValueError, match=r"^SGD\.to: Expected dtype float32 or float64\. Received dtype='int32'\.$"
    ):
        opt.to(None, "int32")
    for key, v in opt.state_arrays().items():  # nothing was converted
        assert dtype_name(v.dtype) == "float64"
        np.testing.assert_array_equal(v, before[key])
    calls = []
    resolve = optim.backend.placement
    monkeypatch.setattr(optim.backend, "placement", lambda spec: calls.append(spec) or resolve(spec))
    assert len(opt.state) == 4 and opt.to("cpu", np.float32) is opt
    assert calls == ["cpu"]
    for key, v in opt.state_arrays().items():
        assert dtype_name(v.dtype) == "float32" and placement_of(v) == xpcnn.placement("cpu")
        np.testing.assert_array_equal(v, before[key].astype("float32"))


def test_step_without_gradients_is_an_error():
    layer = xpcnn.Dense(2, 2, seed=0)
    layer.index = 3
    with pytest.raises(RuntimeError, match=r"layer 3 \(Dense\) has no gradient for 'weights'"):
        xpcnn.SGD().step([layer])


def test_zero_grad_and_reset(rng):
    layer = xpcnn.Dense(2, 2, seed=0, dtype="float64")
    opt = xpcnn.Adam()
    layer.grads = {"weights": rng.normal(size=(2, 2)), "bias": rng.normal(size=2)}
    opt.step([layer])
    opt.zero_grad([layer])
    assert layer.gradients() == {}
    assert opt.iterations == 1 and opt.state
    opt.reset()
    assert opt.iterations == 0 and opt.state == {}


# ----------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: xpcnn.SGD(0), r"strictly positive, finite value\. Received learning_rate=0"),
        (lambda: xpcnn.SGD(-0.1), r"Received learning_rate=-0\.1"),
        (lambda: xpcnn.SGD(math.nan), r"Received learning_rate=nan"),
        (lambda: xpcnn.Adam(math.inf), r"Received learning_rate=inf"),
        (lambda: xpcnn.SGD(0.1, momentum=1.0), r"value in \[0, 1\)\. Received momentum=1\.0"),
        (lambda: xpcnn.SGD(0.1, momentum=-0.5), r"Received momentum=-0\.5"),
        (lambda: xpcnn.SGD(0.1, nesterov=True), r"Nesterov momentum needs momentum > 0"),
        (lambda: xpcnn.Adam(beta1=1.0), r"value in \[0, 1\)\. Received beta1=1\.0"),
        (lambda: xpcnn.Adam(beta2=-0.1), r"Received beta2=-0\.1"),
        (lambda: xpcnn.Adam(eps=0.0), r"strictly positive, finite value\. Received eps=0\.0"),
        (
            lambda: xpcnn.AdamW(weight_decay=-1e-3),
            r"non-negative, finite value\. Received weight_decay=-0\.001",
        ),
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_learning_rate_type_error():
    with pytest.raises(TypeError, match=r"Expected a learning rate.*Received learning_rate='fast'"):
        xpcnn.SGD("fast")


def test_a_schedule_giving_a_bad_value_is_caught():
    layer = xpcnn.Dense(2, 2, seed=0)
    layer.grads = {k: v for k, v in layer.parameters().items()}
    with pytest.raises(ValueError, match=r"schedule gave nan at step 0"):
        xpcnn.SGD(lambda t: math.nan).step([layer])


def test_get_by_name_and_instance():
    assert isinstance(optim.get("sgd"), xpcnn.SGD) and optim.get("sgd").momentum == 0
    m = optim.get("Momentum", learning_rate=0.2)
    assert isinstance(m, xpcnn.SGD) and m.momentum == 0.9 and m.learning_rate == 0.2
    assert optim.get("nesterov").nesterov
    assert type(optim.get("adam")) is xpcnn.Adam and type(optim.get("adamw")) is xpcnn.AdamW
    opt = xpcnn.Adam(0.1)
    assert optim.get(opt) is opt
    with pytest.raises(ValueError, match=r"Unknown optimizer 'lbfgs'\. Expected one of"):
        optim.get("lbfgs")
    with pytest.raises(TypeError, match=r"hyperparameters \['learning_rate'\] apply only to a name"):
        optim.get(opt, learning_rate=0.1)
    with pytest.raises(TypeError, match=r"Expected an optimizer name"):
        optim.get(3)


def test_repr():
    assert repr(xpcnn.SGD(0.1, momentum=0.9)) == "SGD(learning_rate=0.1, momentum=0.9, nesterov=False)"
    assert (
        repr(xpcnn.AdamW())
        == "AdamW(learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.01)"
    )
    r = repr(xpcnn.Adam(schedules.CosineDecay(0.01, 100)))
    assert r.startswith("Adam(learning_rate=CosineDecay(initial=0.01, decay_steps=100, final=0.0)")
