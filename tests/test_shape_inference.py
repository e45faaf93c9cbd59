"""Shape inference (issue 11): sizes that follow from the previous layer are optional, the
parameters are created when the shape is known, from the layer's seed, and a mismatch is
named before any data is touched."""

from __future__ import annotations

import io

import numpy as np
import pytest

import xpcnn


def _same_tensors(a, b):
    for la, lb in zip(a.layers, b.layers, strict=True):
        ta, tb = la.tensors(), lb.tensors()
        assert ta.keys() == tb.keys()
        for name in ta:
            np.testing.assert_array_equal(xpcnn.to_host(ta[name]), xpcnn.to_host(tb[name]))


def _inferred(seed=0):
    return xpcnn.Sequential(
        [
            xpcnn.Convolutional(3, 4, padding="same", seed=seed),
            xpcnn.ReLU(),
            xpcnn.MaxPool2D(2),
            xpcnn.Convolutional(3, 6, seed=seed + 1),
            xpcnn.Flatten(),
            xpcnn.Dense(10, seed=seed + 2),
        ],
        input_shape=(2, 10, 10),
    )


def _explicit(seed=0):
    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((2, 10, 10), 3, 4, padding="same", seed=seed),
            xpcnn.ReLU(),
            xpcnn.MaxPool2D(2),
            xpcnn.Convolutional((4, 5, 5), 3, 6, seed=seed + 1),
            xpcnn.Flatten(),
            xpcnn.Dense(6 * 3 * 3, 10, seed=seed + 2),
        ]
    )


def test_inferred_sizes_give_the_model_the_notes_signatures_give():
    a, b = _inferred(), _explicit()
    assert [layer.config() for layer in a.layers] == [layer.config() for layer in b.layers]
    _same_tensors(a, b)
    assert a.layers[3].input_shape == (4, 5, 5) and a.layers[5].input_size == 54


def test_summary_before_any_data_shows_every_inferred_shape():
    text = _inferred().summary(file=io.StringIO())
    for shown in ("(N, 4, 10, 10)", "(N, 4, 5, 5)", "(N, 6, 3, 3)", "(N, 54)", "(N, 10)"):
        assert shown in text
    assert "Total parameters: 848" in text  # 2*4*9 + 4, 4*6*9 + 6, 54*10 + 10
    assert _explicit().parameter_count() == 848


def test_a_model_without_an_input_shape_is_built_by_its_first_data(rng):
    lazy = xpcnn.Sequential([xpcnn.Dense(8, seed=1), xpcnn.Tanh(), xpcnn.Dense(2, seed=2)])
    assert not lazy.built
    text = lazy.summary(file=io.StringIO())
    assert "?" in text and "summary(input_shape=...)" in text
    x = rng.standard_normal((6, 3)).astype(np.float32)
    lazy.fit(x, rng.integers(0, 2, 6), loss="softmax_crossentropy", progress=False)
    assert lazy.built and lazy.layers[0].input_size == 3
    eager = xpcnn.Sequential([xpcnn.Dense(3, 8, seed=1), xpcnn.Tanh(), xpcnn.Dense(8, 2, seed=2)])
    eager.fit(x, rng.integers(0, 2, 6), loss="softmax_crossentropy", progress=False)  # other labels
    lazy2 = xpcnn.Sequential([xpcnn.Dense(8, seed=1), xpcnn.Tanh(), xpcnn.Dense(2, seed=2)]).build((3,))
    _same_tensors(
        lazy2, xpcnn.Sequential([xpcnn.Dense(3, 8, seed=1), xpcnn.Tanh(), xpcnn.Dense(8, 2, seed=2)])
    )


def test_a_mismatch_is_named_at_construction():
    with pytest.raises(ValueError, match=r"layer 2 \(Dense\): expected 54 input features, received 120"):
        xpcnn.Sequential(
            [xpcnn.Convolutional(3, 6), xpcnn.Flatten(), xpcnn.Dense(54, 10)], input_shape=(1, 4, 12)
        )
    with pytest.raises(
        ValueError, match=r"layer 1 \(Dense\): expected input of rank 2 \(batch, features\).*Flatten"
    ):
        xpcnn.Sequential([xpcnn.Convolutional(3, 6), xpcnn.Dense(10)], input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"kernel height 5 is larger than the padded input height 4"):
        xpcnn.Sequential([xpcnn.Convolutional(5, 2)], input_shape=(1, 4, 8))
    with pytest.raises(TypeError, match=r"input_shape to be one sample's shape"):
        xpcnn.Sequential([xpcnn.Dense(2)], input_shape="big")


def test_an_unbuilt_model_cannot_be_saved_and_a_built_one_round_trips(tmp_path):
    lazy = xpcnn.Sequential([xpcnn.Dense(4), xpcnn.BatchNorm(), xpcnn.Dense(2)])
    with pytest.raises(xpcnn.CheckpointError, match=r"layer 0 \(Dense\) is not built yet.*model\.build"):
        lazy.save(tmp_path / "lazy.xpcnn")
    assert not (tmp_path / "lazy.xpcnn").exists()
    lazy.build((3,)).save(tmp_path / "built.xpcnn")
    _same_tensors(lazy, xpcnn.load(tmp_path / "built.xpcnn"))


def test_the_notes_signatures_still_work_and_missing_sizes_are_explained():
    assert xpcnn.Dense(784, 10).input_size == 784
    assert xpcnn.Convolutional((1, 28, 28), 5, 3).output_shape() == (3, 24, 24)
    with pytest.raises(TypeError, match=r"Dense: expected output_size"):
        xpcnn.Dense()
    with pytest.raises(TypeError, match=r"Convolutional: expected kernel_size and depth"):
        xpcnn.Convolutional((1, 28, 28), 3)
    with pytest.raises(RuntimeError, match=r"not built yet"):
        xpcnn.Dense(3).set_parameters({})


def test_lazy_layers_are_created_where_the_model_lives(be):
    model = xpcnn.Sequential([xpcnn.Convolutional(3, 2, seed=0), xpcnn.Flatten(), xpcnn.Dense(3, seed=1)],
                             device=be.place, dtype="float64")  # fmt: skip
    x = be.asarray(np.ones((2, 1, 5, 5)))
    y = model.forward(x)
    assert xpcnn.backend.placement_of(y) == be.place
    _same_tensors(model, _explicit_small())


def _explicit_small():
    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 5, 5), 3, 2, seed=0, dtype="float64"),
            xpcnn.Flatten(),
            xpcnn.Dense(18, 3, seed=1, dtype="float64"),
        ]
    )  # built in float64 from the start, as the lazy layers are
