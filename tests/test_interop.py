"""PyTorch weights into and out of xpcnn models (xpcnn.interop), and arrays through DLPack.

The layouts are proved by outputs: a torch model and its xpcnn twin, sharing weights, give the
same predictions to 1e-12 in float64.
"""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

import xpcnn
from xpcnn import (
    BatchNorm,
    Convolutional,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sequential,
    load_torch_state_dict,
    to_torch_state_dict,
    zoo,
)

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

TOL = 1e-12


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def torch_out(torch_model, x: np.ndarray) -> np.ndarray:
    torch_model.eval()
    with torch.no_grad():
        return torch_model(torch.from_numpy(x)).numpy()


def xpcnn_out(model, x: np.ndarray) -> np.ndarray:
    return xpcnn.to_host(model.predict(x))


def all_arrays(model) -> list[np.ndarray]:
    return [np.array(xpcnn.to_host(v)) for leaf in model.leaves() for v in leaf.tensors().values()]


def randomize_batchnorm(torch_model, gen: torch.Generator) -> None:
    """Non-trivial affine parameters and running statistics in every BatchNorm."""
    for m in torch_model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
                m.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
                m.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.2)
                m.num_batches_tracked.fill_(7)


def torch_lenet():
    """Named modules (``features.0``, ``classifier.2``): keys grouped by prefix."""
    features = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
    )  # fmt: skip
    classifier = nn.Sequential(
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)
    )
    return nn.Sequential(OrderedDict(features=features, flatten=nn.Flatten(), classifier=classifier)).double()


def xpcnn_lenet(seed: int = 1, device="cpu"):
    return Sequential(
        [
            Convolutional((1, 28, 28), 5, 6, padding=2, seed=seed), ReLU(), MaxPool2D(2),
            Convolutional((6, 14, 14), 5, 16, seed=seed + 1), ReLU(), MaxPool2D(2),
            Flatten(), Dense(400, 120, seed=seed + 2), ReLU(), Dense(120, 84, seed=seed + 3), ReLU(),
            Dense(84, 10, seed=seed + 4),
        ],
        device=device,
        dtype="float64",
    )  # fmt: skip


def torch_bn_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3),
    ).double()  # fmt: skip


def xpcnn_bn_net(seed: int = 3):
    return Sequential(
        [
            Convolutional((3, 10, 10), 3, 8, padding=1, bias="none", seed=seed), BatchNorm(8), ReLU(),
            Convolutional((8, 10, 10), 3, 4, stride=2, seed=seed + 1), BatchNorm(4), ReLU(),
            Flatten(), Dense(64, 6, seed=seed + 2), BatchNorm(6), ReLU(), Dense(6, 3, seed=seed + 3),
        ],
        dtype="float64",
    )  # fmt: skip


def torch_grouped():
    return nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2), nn.ReLU(),
        nn.Conv2d(6, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 5 * 7, 5),
    ).double()  # fmt: skip


def xpcnn_grouped(seed: int = 5):
    return Sequential(
        [
            Convolutional((4, 9, 9), 3, 6, padding=2, dilation=2, groups=2, seed=seed), ReLU(),
            Convolutional((6, 9, 9), (3, 2), 6, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=6,
                          seed=seed + 1),
            ReLU(), Flatten(), Dense(6 * 5 * 7, 5, seed=seed + 2),
        ],
        dtype="float64",
    )  # fmt: skip


PAIRS = {
    "lenet": (torch_lenet, xpcnn_lenet, (1, 28, 28)),
    "batchnorm": (torch_bn_net, xpcnn_bn_net, (3, 10, 10)),
    "groups-dilation": (torch_grouped, xpcnn_grouped, (4, 9, 9)),
}


def make_pair(name: str):
    make_torch, make_xpcnn, shape = PAIRS[name]
    torch_model, model = make_torch(), make_xpcnn()
    randomize_batchnorm(torch_model, torch.Generator().manual_seed(11))
    x = np.random.default_rng(7).standard_normal((3, *shape))
    return torch_model, model, x


# ----------------------------------------------------------------------------- layouts
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stride": 2, "padding": 1},
        {"dilation": 2, "padding": 2, "groups": 2},
        {"stride": (1, 2), "dilation": (2, 1), "groups": 4},
    ],
    ids=["plain", "stride-pad", "dilation-groups", "asymmetric-depthwise"],
)
def test_kernel_layout_is_torch_conv2d_weight(rng, kw):
    """Convolutional.kernels (out, in/groups, kh, kw) is Conv2d.weight as it is: no flip, no transpose."""
    layer = Convolutional((4, 8, 7), 3, 8, dtype="float64", seed=0, **kw)
    assert tuple(layer.kernels.shape) == (8, 4 // kw.get("groups", 1), 3, 3)
    layer.set_parameters({"biases": rng.standard_normal(8)})
    x = rng.standard_normal((2, 4, 8, 7))
    expected = F.conv2d(
        torch.from_numpy(x), torch.from_numpy(layer.kernels), torch.from_numpy(layer.biases), **kw
    )
    np.testing.assert_allclose(layer.forward(x), expected.numpy(), rtol=0, atol=TOL)


def test_dense_layout_is_torch_linear_weight(rng):
    """Dense.weights (out, in) and bias (out,) are Linear.weight and Linear.bias."""
    layer = Dense(5, 3, dtype="float64", seed=0)
    assert tuple(layer.weights.shape) == (3, 5) and tuple(layer.bias.shape) == (3,)
    layer.set_parameters({"bias": rng.standard_normal(3)})
    x = rng.standard_normal((4, 5))
    expected = F.linear(torch.from_numpy(x), torch.from_numpy(layer.weights), torch.from_numpy(layer.bias))
    np.testing.assert_allclose(layer.forward(x), expected.numpy(), rtol=0, atol=TOL)


# --------------------------------------------------------------------- torch -> xpcnn
@pytest.mark.parametrize("name", list(PAIRS))
def test_torch_to_xpcnn_same_predictions(name):
    torch_model, model, x = make_pair(name)
    loaded = load_torch_state_dict(model, torch_model.state_dict())
    assert not any(k.endswith("num_batches_tracked") for k in loaded)
    assert len(loaded) == sum(len(leaf.tensors()) for leaf in model.leaves())
    np.testing.assert_allclose(xpcnn_out(model, x), torch_out(torch_model, x), rtol=0, atol=TOL)


def test_load_reports_the_pairing():
    torch_model, model, _ = make_pair("lenet")
    loaded = load_torch_state_dict(model, torch_model.state_dict())
    assert loaded["features.0.weight"] == "0.kernels"
    assert loaded["features.3.bias"] == "3.biases"
    assert loaded["classifier.4.weight"] == "11.weights"
    assert list(loaded) == list(torch_model.state_dict())


def test_batchnorm_running_statistics_are_loaded():
    torch_model, model, _ = make_pair("batchnorm")
    load_torch_state_dict(model, torch_model.state_dict())
    np.testing.assert_array_equal(model.layers[1].running_var, torch_model[1].running_var.numpy())
    np.testing.assert_array_equal(model.layers[4].running_mean, torch_model[4].running_mean.numpy())
    np.testing.assert_array_equal(model.layers[8].gamma, torch_model[8].weight.detach().numpy())


def test_numpy_state_dict_float32_is_cast_to_the_model_dtype_as_a_copy():
    torch_model, model, x = make_pair("lenet")
    state = {k: v.float().numpy() for k, v in torch_model.state_dict().items()}
    load_torch_state_dict(model, state)
    assert all(str(a.dtype) == "float64" for a in all_arrays(model))
    np.testing.assert_allclose(xpcnn_out(model, x), torch_out(torch_model.float(), x.astype("float32")),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    kernels = np.array(model.layers[0].kernels)
    state["features.0.weight"][:] = 0  # the model holds a copy
    np.testing.assert_array_equal(model.layers[0].kernels, kernels)


def test_float64_tensors_into_a_float32_model():
    torch_model, _, x = make_pair("batchnorm")
    model = xpcnn_bn_net().to(dtype="float32")
    load_torch_state_dict(model, torch_model.state_dict())
    assert model.dtype == "float32" and all(str(a.dtype) == "float32" for a in all_arrays(model))
    np.testing.assert_allclose(
        xpcnn_out(model, x.astype("float32")), torch_out(torch_model, x), rtol=1e-4, atol=1e-4
    )


def test_load_onto_every_backend(be):
    """The arrays reach the model's device through set_parameters / set_state."""
    torch_model = torch_bn_net()
    randomize_batchnorm(torch_model, torch.Generator().manual_seed(11))
    model = xpcnn_bn_net().to(be.place)
    load_torch_state_dict(model, torch_model.state_dict())
    assert all(be.place.holds(a) for leaf in model.leaves() for a in leaf.tensors().values())
    x = np.random.default_rng(7).standard_normal((2, 3, 10, 10))
    out = be.to_host(model.predict(be.asarray(x)))
    np.testing.assert_allclose(out, torch_out(torch_model, x), rtol=0, atol=1e-10)
    back = to_torch_state_dict(model, template=torch_model.state_dict())
    for key, value in torch_model.state_dict().items():
        np.testing.assert_array_equal(back[key], value.numpy())


# --------------------------------------------------------------------- xpcnn -> torch
@pytest.mark.parametrize("name", list(PAIRS))
def test_xpcnn_to_torch_same_predictions(name):
    torch_model, model, x = make_pair(name)
    for leaf in model.leaves():  # non-trivial xpcnn batch-norm state and biases
        rng = np.random.default_rng(len(leaf.label))
        leaf.set_tensors(
            {
                k: rng.uniform(0.5, 1.5, v.shape)
                for k, v in leaf.tensors().items()
                if k not in ("kernels", "weights")
            }
        )
    template = torch_model.state_dict()
    sd = to_torch_state_dict(model, template=template)
    assert list(sd) == list(template)  # num_batches_tracked kept from the template
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    np.testing.assert_allclose(torch_out(torch_model, x), xpcnn_out(model, x), rtol=0, atol=TOL)


def test_default_names_are_those_of_an_nn_sequential_of_the_same_layers():
    model = xpcnn_grouped()
    sd = to_torch_state_dict(model)
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias"]
    twin = torch_grouped()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})  # strict: the same keys
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 9))
    np.testing.assert_allclose(torch_out(twin, x), xpcnn_out(model, x), rtol=0, atol=TOL)


def test_to_torch_returns_copies():
    model = xpcnn_grouped()
    sd = to_torch_state_dict(model)
    sd["0.weight"][:] = 0
    assert np.any(model.layers[0].kernels != 0)


def test_round_trip_through_torch_is_exact():
    torch_model, model, _ = make_pair("batchnorm")
    before = all_arrays(model)
    other = xpcnn_bn_net(seed=50)
    load_torch_state_dict(other, to_torch_state_dict(model))
    for a, b in zip(before, all_arrays(other), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_lone_layer_uses_bare_names():
    layer = Dense(4, 2, dtype="float64", seed=0)
    linear = nn.Linear(4, 2).double()
    linear.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(layer).items()})
    load_torch_state_dict(layer, linear.state_dict())
    assert list(to_torch_state_dict(layer)) == ["weight", "bias"]


# ------------------------------------------------------------------------------- the zoo
def test_zoo_digits_cnn_has_an_nn_sequential_twin():
    model = zoo.digits_cnn(dtype="float64", seed=2)
    twin = nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 128), nn.ReLU(), nn.Linear(128, 10),
    ).double()  # fmt: skip
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28))
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(model).items()})
    np.testing.assert_allclose(torch_out(twin, x), xpcnn_out(model, x), rtol=0, atol=TOL)
    for m in twin.modules():  # new torch weights, back into xpcnn
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    load_torch_state_dict(model, twin.state_dict())
    np.testing.assert_allclose(xpcnn_out(model, x), torch_out(twin, x), rtol=0, atol=TOL)


class TorchResidual(nn.Module):
    """relu(block(x) + shortcut(x)), the attributes in xpcnn's leaf order (block, then shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        project = cin != cout or stride != 1
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if project
            else None
        )

    def forward(self, x):
        return F.relu(self.block(x) + (x if self.shortcut is None else self.shortcut(x)))


def test_zoo_digits_resnet_with_residual_blocks():
    """Leaves depth first through Residual (block, then shortcut) match a torch module's order."""
    model = zoo.digits_resnet(widths=(4, 8), dtype="float64", seed=3)
    twin = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        TorchResidual(4, 4, 1), TorchResidual(4, 8, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 10),
    ).double()  # fmt: skip
    randomize_batchnorm(twin, torch.Generator().manual_seed(5))
    x = np.random.default_rng(2).standard_normal((2, 1, 28, 28))
    load_torch_state_dict(model, twin.state_dict())
    np.testing.assert_allclose(xpcnn_out(model, x), torch_out(twin, x), rtol=0, atol=TOL)
    assert "3.block.1.running_var" in load_torch_state_dict(model, twin.state_dict()).values()
    twin2 = TorchResidual(4, 8, 2).double()  # xpcnn -> torch through a template
    sd = to_torch_state_dict(model.layers[5], template=twin2.state_dict())
    twin2.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    xb = np.random.default_rng(3).standard_normal((2, 4, 28, 28))
    expected = xpcnn_out(Sequential([model.layers[5], ReLU()]), xb)
    np.testing.assert_allclose(torch_out(twin2, xb), expected, rtol=0, atol=TOL)


def test_zoo_binary_cnn_untied_bias_is_refused():
    model = zoo.binary_cnn(dtype="float64")
    state = {"0.weight": np.zeros((5, 1, 3, 3)), "0.bias": np.zeros(5)}
    with pytest.raises(ValueError, match=r"layer 0 \(Convolutional\) has an untied per-pixel bias"):
        load_torch_state_dict(model, state, strict=False)
    with pytest.raises(ValueError, match=r"bias='pixel', shape \(5, 26, 26\).*no PyTorch equivalent"):
        to_torch_state_dict(model)


# ---------------------------------------------------------------------------- errors
def test_shape_mismatch_names_both_sides():
    _, model, _ = make_pair("lenet")
    state = torch_lenet().state_dict()
    state["classifier.4.weight"] = torch.zeros(10, 120, dtype=torch.float64)
    with pytest.raises(ValueError) as info:
        load_torch_state_dict(model, state)
    assert (
        "layer 11 (Dense) weights has shape (10, 84) but state_dict['classifier.4.weight'] has (10, 120)"
        in str(info.value)
    )
    assert "nothing was changed" in str(info.value)


def test_shapes_are_checked_without_strict_too():
    _, model, _ = make_pair("lenet")
    state = dict(torch_lenet().state_dict())
    state["features.0.bias"] = torch.zeros(7, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"layer 0 \(Convolutional\) biases has shape \(6,\) but"):
        load_torch_state_dict(model, state, strict=False)


def test_missing_key_under_strict():
    _, model, _ = make_pair("lenet")
    state = dict(torch_lenet().state_dict())
    del state["classifier.4.bias"]
    with pytest.raises(
        ValueError, match=r"layer 11 \(Dense\) takes \['weight', 'bias'\].*missing \['bias'\]"
    ):
        load_torch_state_dict(model, state)
    bias = np.array(model.layers[11].bias)  # not strict: that bias keeps its value
    loaded = load_torch_state_dict(model, state, strict=False)
    assert "classifier.4.bias" not in loaded and "classifier.4.weight" in loaded
    np.testing.assert_array_equal(model.layers[11].bias, bias)


def test_extra_key_and_extra_module_under_strict():
    _, model, _ = make_pair("lenet")
    state = dict(torch_lenet().state_dict())
    state["classifier.4.scale"] = torch.ones(10, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"unexpected \['scale'\]"):
        load_torch_state_dict(model, state)
    del state["classifier.4.scale"]
    state["head.weight"], state["head.bias"] = torch.zeros(2, 10), torch.zeros(2)
    with pytest.raises(ValueError, match=r"left over in state_dict: module 'head' \(bias, weight\)"):
        load_torch_state_dict(model, state)
    loaded = load_torch_state_dict(model, state, strict=False)  # trailing leftovers skipped
    assert "head.weight" not in loaded


def test_layer_left_over_under_strict():
    _, model, _ = make_pair("lenet")
    state = {k: v for k, v in torch_lenet().state_dict().items() if not k.startswith("classifier.4")}
    with pytest.raises(ValueError, match=r"left over in the model: layer 11 \(Dense\)"):
        load_torch_state_dict(model, state)


def test_a_module_of_another_kind_is_named():
    _, model, _ = make_pair("batchnorm")
    state = torch_bn_net().state_dict()
    first = [k for k in state if k.startswith("1.")]  # the batch norm before the first conv
    swapped = {k: state[k] for k in first + [k for k in state if k not in first]}
    with pytest.raises(
        ValueError, match=r"layer 0 \(Convolutional\) takes \['weight'\] but state_dict's module '1'"
    ):
        load_torch_state_dict(model, swapped)


def test_all_or_nothing():
    """A bad last entry leaves every parameter and running statistic as it was."""
    torch_model, model, _ = make_pair("batchnorm")
    before = all_arrays(model)
    state = dict(torch_model.state_dict())
    state["10.weight"] = torch.zeros(3, 7, dtype=torch.float64)
    with pytest.raises(ValueError, match="nothing was changed"):
        load_torch_state_dict(model, state)
    for a, b in zip(before, all_arrays(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_values_and_arguments():
    _, model, _ = make_pair("groups-dilation")
    state = dict(torch_grouped().state_dict())
    state["0.bias"] = [0.0] * 6
    with pytest.raises(TypeError, match=r"state_dict\['0.bias'\] must be an array or tensor, received list"):
        load_torch_state_dict(model, state)
    state["0.bias"] = np.zeros(6, dtype=bool)
    with pytest.raises(ValueError, match=r"state_dict\['0.bias'\] has dtype bool"):
        load_torch_state_dict(model, state)
    state["0.bias"] = torch.zeros(6, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match=r"state_dict\['0.bias'\] cannot be read as a NumPy array"):
        load_torch_state_dict(model, state)
    with pytest.raises(TypeError, match="expected state_dict to be a mapping.*received list"):
        load_torch_state_dict(model, list(state.items()))
    with pytest.raises(TypeError, match="expected model to be an xpcnn model or layer, received Sequential"):
        load_torch_state_dict(torch_grouped(), state)
    with pytest.raises(TypeError, match="expected strict to be True or False, received 1"):
        load_torch_state_dict(model, state, strict=1)


def test_unbuilt_layer_is_named():
    model = Sequential([Convolutional(3, 4), ReLU(), GlobalAvgPool2D(), Dense(2)], dtype="float64")
    with pytest.raises(ValueError, match=r"layer 0 \(Convolutional\) is not built yet.*model.build"):
        load_torch_state_dict(model, {})
    model.build((1, 8, 8))
    assert list(to_torch_state_dict(model)) == ["0.weight", "0.bias", "3.weight", "3.bias"]


def test_template_mismatch_names_both_sides():
    model = xpcnn_grouped()
    template = torch_grouped().state_dict()
    template["5.weight"] = torch.zeros(5, 11)
    with pytest.raises(
        ValueError,
        match=r"layer 5 \(Dense\) weights has shape \(5, 210\) but template\['5.weight'\] has \(5, 11\)",
    ):
        to_torch_state_dict(model, template=template)


def test_interop_does_not_import_torch():
    code = "import sys, xpcnn, xpcnn.interop; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ DLPack
def test_from_dlpack_shares_a_torch_tensors_memory():
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    a = xpcnn.from_dlpack(t)
    assert type(a) is np.ndarray and a.shape == (3, 4) and a.dtype == np.float64
    t[1, 2] = -5.0
    assert a[1, 2] == -5.0
    a[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    assert xpcnn.from_dlpack(t, device="cpu") is not None and np.shares_memory(
        xpcnn.from_dlpack(t, device="cpu"), a
    )


def test_torch_from_dlpack_shares_the_models_arrays():
    model = xpcnn_grouped()
    kernels = xpcnn.to_host(model.layers[0].kernels)
    t = torch.from_dlpack(kernels)
    assert tuple(t.shape) == (6, 2, 3, 3)
    t[0, 0, 0, 0] = 123.0
    assert model.layers[0].kernels[0, 0, 0, 0] == 123.0
    assert np.shares_memory(t.numpy(), model.layers[0].kernels)


def test_prediction_from_a_torch_produced_input():
    torch_model, model, _ = make_pair("lenet")
    load_torch_state_dict(model, torch_model.state_dict())
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    out = model.predict(xpcnn.from_dlpack(x))
    np.testing.assert_allclose(out, torch_out(torch_model, x.numpy()), rtol=0, atol=TOL)
    y = torch.from_dlpack(out)  # and the prediction back to torch, without a copy
    assert np.shares_memory(y.numpy(), out)


def test_from_dlpack_errors():
    with pytest.raises(TypeError, match=r"from_dlpack: expected obj to be a DLPack producer.*received list"):
        xpcnn.from_dlpack([1.0, 2.0])

    class Elsewhere:
        def __dlpack__(self, **kwargs):
            raise AssertionError("not reached")

        def __dlpack_device__(self):
            return (8, 0)  # Metal

    with pytest.raises(ValueError, match="DLPack device type 8"):
        xpcnn.from_dlpack(Elsewhere())


def test_from_dlpack_to_another_placement_is_a_copy_there(be):
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    a = xpcnn.from_dlpack(t, device=be.place)
    assert be.place.holds(a)
    np.testing.assert_array_equal(be.to_host(a), t.numpy())
    t[0, 0] = 9.0
    if be.name == "numpy":  # the producer's own placement: a view
        assert be.to_host(a)[0, 0] == 9.0
    if be.is_cupy:  # device memory: a copy
        assert be.to_host(a)[0, 0] == 0.0


def test_from_dlpack_sends_cuda_producers_to_cupy(monkeypatch):
    """The dispatch on __dlpack_device__ (no GPU here: a recording stand-in for CuPy)."""
    calls = []

    class Device:
        def __init__(self, index):
            self.index = index

        def __enter__(self):
            calls.append(("device", self.index))

        def __exit__(self, *exc):
            return False

    class FakeCupy:
        cuda = type("cuda", (), {"Device": Device})

        @staticmethod
        def from_dlpack(obj):
            calls.append(("from_dlpack", obj))
            return "cupy array"

    class OnGpu:
        def __dlpack__(self, **kwargs):
            raise AssertionError("CuPy reads it, not NumPy")

        def __dlpack_device__(self):
            return (2, 1)  # kDLCUDA, GPU 1

    monkeypatch.setattr(xpcnn.backend, "_cupy", lambda: FakeCupy)
    producer = OnGpu()
    assert xpcnn.from_dlpack(producer) == "cupy array"
    assert calls == [("device", 1), ("from_dlpack", producer)]
