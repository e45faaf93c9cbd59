"""Composition beyond a chain (issue 11): a Sequential as a layer of another, and
``Residual(block, shortcut)``: forward against the definition, float64 gradient checks on
every backend in both modes, training identical to the flattened chain, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

import xpcnn


def _block(c, stride=1, seed=0):
    return [
        xpcnn.Convolutional(3, c, stride=stride, padding=1, seed=seed, dtype="float64"),
        xpcnn.BatchNorm(dtype="float64"),
        xpcnn.ReLU(),
        xpcnn.Convolutional(3, c, padding=1, seed=seed + 1, dtype="float64"),
    ]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("projection", [False, True], ids=["identity", "projection"])
def test_residual_gradients(be, rng, training, projection):
    if projection:
        layer = xpcnn.Residual(
            _block(3, stride=2), xpcnn.Convolutional(1, 3, stride=2, seed=9, dtype="float64")
        )
    else:
        layer = xpcnn.Residual(_block(2))
    layer.to(be.place)
    x = be.asarray(rng.normal(size=(3, 2, 6, 6)))
    layer.forward(x)  # built, running statistics moved
    layer.train(training)
    y = layer.forward(x)
    assert xpcnn.backend.placement_of(y) == be.place
    results = xpcnn.check_layer_gradients(layer, x)
    assert len(results) == 1 + len(layer.parameters())  # dE/dX and every parameter of both paths


def test_residual_is_the_sum_of_its_paths(rng):
    block = xpcnn.Sequential(_block(4, stride=2))
    shortcut = xpcnn.Sequential([xpcnn.Convolutional(1, 4, stride=2, seed=5, dtype="float64")])
    layer = xpcnn.Residual(block, shortcut).eval()
    x = rng.normal(size=(2, 2, 8, 8))
    y = layer.forward(x)
    np.testing.assert_allclose(y, block.predict(x) + shortcut.predict(x), rtol=1e-14)
    identity = xpcnn.Residual(_block(2)).eval()
    np.testing.assert_allclose(identity.forward(x), identity.block.predict(x) + x, rtol=1e-14)
    g = rng.normal(size=(2, 2, 8, 8))
    identity.forward(x)
    dx = identity.backward(g)
    identity.block.forward(x)
    np.testing.assert_allclose(dx, identity.block.backward(g) + g, rtol=1e-14)  # eq. 33


def test_a_nested_sequential_trains_exactly_as_the_flat_chain(rng):
    def layers():
        return [
            xpcnn.Dense(5, 8, seed=1, dtype="float64"),
            xpcnn.ReLU(),
            xpcnn.Dense(8, 8, seed=2, dtype="float64"),
            xpcnn.Tanh(),
            xpcnn.Dense(8, 3, seed=3, dtype="float64"),
        ]

    a = layers()
    flat = xpcnn.Sequential(a)
    b = layers()
    nested = xpcnn.Sequential([b[0], xpcnn.Sequential(b[1:4]), b[4]])
    x, y = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    for model in (flat, nested):
        model.fit(x, y, loss="softmax_crossentropy", optimizer=xpcnn.Adam(0.01), epochs=3, batch_size=8, seed=0,
                  progress=False)  # fmt: skip
    for la, lb in zip(flat.leaves(), nested.leaves(), strict=True):
        for name, value in la.parameters().items():
            np.testing.assert_array_equal(value, lb.parameters()[name])
    assert nested.layers[1].layers[1].label == "layer 1.1 (Dense)"
    assert set(nested.parameters()) == {
        "0.weights",
        "0.bias",
        "1.1.weights",
        "1.1.bias",
        "2.weights",
        "2.bias",
    }


def test_a_residual_network_fits_and_round_trips(tmp_path, rng):
    model = xpcnn.Sequential(
        [
            xpcnn.Convolutional(3, 4, padding=1, seed=0, dtype="float64"),
            xpcnn.Residual(_block(4, seed=1)),
            xpcnn.Residual(
                _block(8, stride=2, seed=3), xpcnn.Convolutional(1, 8, stride=2, seed=5, dtype="float64")
            ),
            xpcnn.GlobalAvgPool2D(),
            xpcnn.Dropout(0.2, seed=0),
            xpcnn.Dense(3, seed=6, dtype="float64"),
        ],
        input_shape=(1, 8, 8),
    )
    x, y = rng.normal(size=(16, 1, 8, 8)), rng.integers(0, 3, 16)
    history = model.fit(
        x, y, loss="softmax_crossentropy", optimizer="adam", epochs=4, batch_size=8, seed=0, progress=False
    )
    assert history["loss"][-1] < history["loss"][0]
    assert model.layers[2].block.layers[1].label == "layer 2.block.1 (BatchNorm)"
    model.save(tmp_path / "r.xpcnn")
    again = xpcnn.load(tmp_path / "r.xpcnn")
    assert [type(layer).__name__ for layer in again.layers] == [
        type(layer).__name__ for layer in model.layers
    ]
    for la, lb in zip(model.leaves(), again.leaves(), strict=True):
        for name, value in la.tensors().items():
            assert value.tobytes() == lb.tensors()[name].tobytes()  # running statistics too
    np.testing.assert_array_equal(model.predict(x), again.predict(x))


def test_composition_errors_are_named():
    with pytest.raises(
        ValueError, match=r"the block's output \(8, 4, 4\) and the input \(identity shortcut\) \(4, 8, 8\)"
    ):
        xpcnn.Sequential([xpcnn.Residual(_block(8, stride=2))], input_shape=(4, 8, 8))
    with pytest.raises(
        TypeError, match=r"Residual: expected block to be a layer, a list of layers or a Sequential"
    ):
        xpcnn.Residual("conv")
    with pytest.raises(TypeError, match=r"Residual\.set_parameters"):
        xpcnn.Residual(xpcnn.Dense(2, 2)).set_parameters({})
    inner = xpcnn.Sequential([xpcnn.Dense(2, 2)])
    with pytest.raises(ValueError, match=r"the same layer object appears twice"):
        xpcnn.Sequential([inner, inner])
