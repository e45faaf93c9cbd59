"""Optimizer options people expect (issue 11): SGD's coupled weight decay, RMSProp, Adagrad and
gradient clipping by global norm, each against torch.optim in float64 on every backend; and
the initializers of Dense and Convolutional."""

from __future__ import annotations

import numpy as np
import pytest

import xpcnn
from xpcnn import init

STEPS = 6

CASES = {
    "sgd-decay": (
        lambda: xpcnn.SGD(0.1, weight_decay=0.05),
        lambda t, p: t.optim.SGD(p, lr=0.1, weight_decay=0.05),
    ),
    "sgd-nesterov-decay": (
        lambda: xpcnn.SGD(0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    ),
    "rmsprop": (lambda: xpcnn.RMSProp(0.01), lambda t, p: t.optim.RMSprop(p, lr=0.01)),
    "rmsprop-centered-momentum": (
        lambda: xpcnn.RMSProp(0.02, alpha=0.9, eps=1e-6, momentum=0.7, centered=True),
        lambda t, p: t.optim.RMSprop(p, lr=0.02, alpha=0.9, eps=1e-6, momentum=0.7, centered=True),
    ),
    "adagrad": (
        lambda: xpcnn.Adagrad(0.1, initial_accumulator_value=0.3),
        lambda t, p: t.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.3),
    ),
    "sgd-clip": (
        lambda: xpcnn.SGD(0.1, momentum=0.9, clip_norm=0.5),
        lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9),
    ),
    "adam-clip": (lambda: xpcnn.Adam(0.01, clip_norm=0.3), lambda t, p: t.optim.Adam(p, lr=0.01)),
    "rmsprop-clip-large": (
        lambda: xpcnn.RMSProp(0.01, clip_norm=100.0),
        lambda t, p: t.optim.RMSprop(p, lr=0.01),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_optim(be, rng, case):
    torch = pytest.importorskip("torch")
    ours_factory, theirs_factory = CASES[case]
    ours = ours_factory()
    layer = xpcnn.Dense(4, 3, seed=1, dtype="float64").to(be.place)
    start = {k: be.to_host(v).copy() for k, v in layer.parameters().items()}
    params = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    theirs = theirs_factory(torch, list(params.values()))
    for _ in range(STEPS):
        grads = {k: rng.normal(size=v.shape) * 3 for k, v in start.items()}
        layer.grads = {k: be.asarray(g) for k, g in grads.items()}
        ours.step([layer])
        for k, p in params.items():
            p.grad = torch.tensor(grads[k])
        if ours.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(params.values()), ours.clip_norm)
        theirs.step()
        for k, p in params.items():
            np.testing.assert_allclose(
                be.to_host(layer.parameters()[k]), p.detach().numpy(), rtol=1e-13, atol=1e-15
            )


def test_clipping_scales_only_large_gradients(rng):
    layer = xpcnn.Dense(3, 2, seed=0, dtype="float64")
    w = layer.weights.copy()
    layer.grads = {"weights": np.full((2, 3), 3.0), "bias": np.full(2, 4.0)}  # global norm sqrt(54 + 32)
    xpcnn.SGD(1.0, clip_norm=1.0).step([layer])
    norm = np.sqrt(54.0 + 32.0)
    np.testing.assert_allclose(w - layer.weights, np.full((2, 3), 3.0) / (norm + 1e-6), rtol=1e-14)
    small = {"weights": np.full((2, 3), 1e-3), "bias": np.zeros(2)}
    layer.grads = small
    before = layer.weights.copy()
    xpcnn.SGD(1.0, clip_norm=1.0).step([layer])
    np.testing.assert_allclose(before - layer.weights, small["weights"], rtol=0, atol=1e-15)  # not scaled


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: xpcnn.SGD(0.1, clip_norm=0), r"SGD: .*clip_norm=0"),
        (lambda: xpcnn.Adam(clip_norm=-1.0), r"Adam: .*clip_norm=-1\.0"),
        (lambda: xpcnn.SGD(0.1, weight_decay=-0.1), r"SGD: .*weight_decay=-0\.1"),
        (lambda: xpcnn.RMSProp(alpha=1.0), r"RMSProp: .*alpha=1\.0"),
        (lambda: xpcnn.RMSProp(eps=0.0), r"RMSProp: .*eps=0\.0"),
        (lambda: xpcnn.Adagrad(initial_accumulator_value=-1), r"Adagrad: .*initial_accumulator_value=-1"),
    ],
)
def test_bad_options_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_new_optimizers_by_name_and_in_fit(rng):
    assert isinstance(xpcnn.optim.get("rmsprop"), xpcnn.RMSProp)
    assert isinstance(xpcnn.optim.get("adagrad", learning_rate=0.5), xpcnn.Adagrad)
    x, y = rng.normal(size=(32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    for optimizer in ("rmsprop", "adagrad", xpcnn.SGD(0.1, weight_decay=1e-3, clip_norm=1.0)):
        model = xpcnn.Sequential([xpcnn.Dense(4, 8, seed=0), xpcnn.ReLU(), xpcnn.Dense(8, 3, seed=1)])
        before = model.evaluate(x, y, loss="softmax_crossentropy")["loss"]
        model.fit(
            x,
            y,
            loss="softmax_crossentropy",
            optimizer=optimizer,
            epochs=5,
            batch_size=8,
            seed=0,
            progress=False,
        )
        assert model.evaluate(x, y)["loss"] < before


# ------------------------------------------------------------------------------ initializers
@pytest.mark.parametrize(
    ("name", "variance"),
    [
        ("glorot_uniform", 2 / (400 + 300)),
        ("glorot_normal", 2 / (400 + 300)),
        ("he_normal", 2 / 400),
        ("he_uniform", 2 / 400),
        ("kaiming_normal", 2 / 400),
        ("lecun_normal", 1 / 400),
        ("lecun_uniform", 1 / 400),
    ],
)
def test_initializers_have_their_variance(name, variance):
    w = xpcnn.Dense(400, 300, seed=0, dtype="float64", init=name).weights
    assert abs(w.mean()) < 0.01 * np.sqrt(variance) * 10
    assert abs(w.var() / variance - 1) < 0.02  # 120,000 draws: the sample variance is within 1%
    conv = xpcnn.Convolutional((16, 8, 8), 5, 12, seed=0, dtype="float64", init=name)  # fan_in 16*25=400
    if name.startswith(("he", "kaiming", "lecun")):
        assert abs(conv.kernels.var() / variance - 1) < 0.05


def test_initializer_zeros_the_choice_is_saved_and_one_seed_gives_one_model(tmp_path):
    assert not xpcnn.Dense(3, 2, init="zeros").weights.any()
    a = xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 6, 6), 3, 2, seed=4, init="he_normal"),
            xpcnn.Flatten(),
            xpcnn.Dense(5, seed=5, init="lecun_normal"),
        ]
    )
    b = xpcnn.Sequential(
        [
            xpcnn.Convolutional(3, 2, seed=4, init="he_normal"),
            xpcnn.Flatten(),
            xpcnn.Dense(5, seed=5, init="lecun_normal"),
        ],
        input_shape=(1, 6, 6),
    )
    np.testing.assert_array_equal(a.layers[0].kernels, b.layers[0].kernels)
    np.testing.assert_array_equal(a.layers[2].weights, b.layers[2].weights)
    assert a.layers[0].config()["init"] == "he_normal"
    a.save(tmp_path / "m.xpcnn")
    c = xpcnn.load(tmp_path / "m.xpcnn")
    assert c.layers[0].init == "he_normal" and c.layers[2].init == "lecun_normal"
    with pytest.raises(
        ValueError, match=r"Convolutional: Expected init to be one of .*Received init='orthogonal'"
    ):
        xpcnn.Convolutional(3, 2, init="orthogonal")
    assert set(init.INITIALIZERS) >= {"glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "zeros"}
