"""Convolutional with dilation and groups (issue 11): against PyTorch in float64, float64
gradient checks on every backend, the Array-API path on CuPy (the CUDA kernels have neither
option), checkpoints and errors."""

from __future__ import annotations

import numpy as np
import pytest

import xpcnn

CONFIGS = [
    # (c_I, depth, kernel, stride, padding, dilation, groups)
    (4, 6, 3, 1, 0, 2, 1),
    (4, 6, 3, 1, 2, 2, 2),  # grouped and dilated
    (6, 6, 3, 2, 1, 1, 6),  # depthwise, strided
    (3, 6, (3, 2), (1, 2), (1, 0), (2, 1), 3),
    (2, 4, 1, 1, 0, 1, 2),
]
IDS = ["dilated", "grouped-dilated", "depthwise-strided", "rectangular", "grouped-1x1"]


def _layer(c, depth, kernel, stride, padding, dilation, groups, seed=0):
    return xpcnn.Convolutional((c, 9, 8), kernel, depth, stride=stride, padding=padding, dilation=dilation,
                               groups=groups, seed=seed, dtype="float64")  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_matches_pytorch(rng, config):
    torch = pytest.importorskip("torch")
    layer = _layer(*config)
    layer.set_parameters({"biases": rng.normal(size=layer.depth)})
    x = rng.normal(size=(3, config[0], 9, 8))
    y = layer.forward(x)
    g = rng.normal(size=y.shape)
    dx = layer.backward(g)
    t = torch.tensor(x, requires_grad=True)
    k = torch.tensor(layer.kernels, requires_grad=True)
    b = torch.tensor(layer.biases, requires_grad=True)
    ty = torch.nn.functional.conv2d(t, k, b, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                    groups=layer.groups)  # fmt: skip
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(dx, t.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.grads["kernels"], k.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.grads["biases"], b.grad.numpy(), rtol=0, atol=1e-10)
    assert layer.kernels.shape == (layer.depth, config[0] // layer.groups, *layer.kernel_size)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_gradients_on_every_backend(be, rng, config):
    layer = _layer(*config).to(be.place)
    x = be.asarray(rng.normal(size=(2, config[0], 9, 8)))
    y = layer.forward(x)
    assert xpcnn.backend.placement_of(y) == be.place
    xpcnn.check_layer_gradients(layer, x)


def test_cupy_takes_the_array_api_path_for_dilation_and_groups(be, rng, monkeypatch):
    if not be.is_cupy:
        pytest.skip("the dispatch to the CUDA kernels concerns CuPy arrays only")
    from xpcnn.ops import cuda

    calls = []
    real = cuda.conv2d_forward
    monkeypatch.setattr(cuda, "conv2d_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = be.asarray(rng.normal(size=(2, 4, 9, 8)))
    plain = _layer(4, 6, 3, 1, 0, 1, 1).to(be.place)
    plain.forward(x)
    assert calls == [1]  # an ordinary layer runs on the kernels
    grouped = _layer(4, 6, 3, 1, 2, 2, 2).to(be.place)
    y = grouped.forward(x)
    assert calls == [1]  # the grouped, dilated one does not
    host = _layer(4, 6, 3, 1, 2, 2, 2)
    np.testing.assert_allclose(be.to_host(y), host.forward(be.to_host(x)), rtol=1e-13, atol=1e-13)


def test_inferred_sizes_checkpoints_and_errors(tmp_path):
    model = xpcnn.Sequential(
        [xpcnn.Convolutional(3, 8, padding="same"), xpcnn.Convolutional(3, 8, groups=8, dilation=2, padding="same"),
         xpcnn.GlobalAvgPool2D(), xpcnn.Dense(3)],
        input_shape=(2, 10, 10),
    )  # fmt: skip
    assert model.output_shape((2, 10, 10)) == (3,)
    assert model.layers[1].kernels.shape == (8, 1, 3, 3) and model.layers[1].padding == (2, 2)
    model.save(tmp_path / "g.xpcnn")
    again = xpcnn.load(tmp_path / "g.xpcnn")
    assert again.layers[1].config() == model.layers[1].config()
    np.testing.assert_array_equal(again.layers[1].kernels, model.layers[1].kernels)
    with pytest.raises(ValueError, match=r"depth 6 is not a multiple of groups=4"):
        xpcnn.Convolutional(3, 6, groups=4)
    with pytest.raises(ValueError, match=r"5 input channels do not split into groups=2"):
        xpcnn.Convolutional((5, 8, 8), 3, 4, groups=2)
    with pytest.raises(
        ValueError, match=r"kernel height 3 \(dilated to 7\) is larger than the padded input height 6"
    ):
        xpcnn.Convolutional((1, 6, 6), 3, 2, dilation=3)
    with pytest.raises(
        ValueError, match=r"conv2d_forward: x has 4 channels but the kernel expects 1 x 2 groups"
    ):
        xpcnn.conv2d_forward(np.zeros((1, 4, 5, 5)), np.zeros((2, 1, 3, 3)), groups=2)
