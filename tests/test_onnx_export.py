"""``xpcnn.export_onnx``: every supported layer, option and zoo model, exported, checked with
``onnx.checker`` and run with onnxruntime (CPU) against ``model.predict`` on the same input;
and the errors at the public edge.  NumPy CPU only: the exporter reads host copies.

Parameters are perturbed from their initial values (zero biases, unit BatchNorm scales would
hide a bias or a scale that the export dropped), and BatchNorm's running statistics come from
a few training steps."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason='the ONNX export tests need onnx: pip install "xpcnn[onnx]"')
ort = pytest.importorskip(
    "onnxruntime", reason='the ONNX export tests run the files with onnxruntime: pip install "xpcnn[onnx]"'
)

import xpcnn  # noqa: E402
from xpcnn import zoo  # noqa: E402
from xpcnn.export import onnx as exporter  # noqa: E402
from xpcnn.layers import (  # noqa: E402
    ELU,
    GELU,
    Activation,
    AvgPool2D,
    BatchNorm,
    Convolutional,
    Dense,
    Dropout,
    Flatten,
    Gaussian,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    Heaviside,
    InverseMultiquadratic,
    Layer,
    LeakyReLU,
    Linear,
    Logistic,
    MaxPool2D,
    Multiquadratic,
    ReLU,
    Reshape,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from xpcnn.layers.base import REGISTRY  # noqa: E402
from xpcnn.model import Sequential  # noqa: E402
from xpcnn.residual import Residual  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-5, 1e-6


# ------------------------------------------------------------------------------- helpers
def perturb(model: Sequential, seed: int = 0, scale: float = 0.1) -> Sequential:
    """Every parameter moved by seeded noise, ``v (1 + scale z) + scale z'``: biases become
    non-zero, BatchNorm's gamma leaves 1, weights keep their initializer's size."""
    rng = np.random.default_rng(seed)
    for leaf in model.leaves():
        values = {k: xpcnn.to_host(v) for k, v in leaf.parameters().items()}
        leaf.set_parameters({k: (v * (1 + scale * rng.standard_normal(v.shape))
                                 + scale * rng.standard_normal(v.shape)).astype(v.dtype)
                             for k, v in values.items()})  # fmt: skip
    return model


def random_statistics(model: Sequential, seed: int = 1) -> Sequential:
    """Seeded running statistics for every BatchNorm (mean near 0, variance in [0.5, 1.5])."""
    rng = np.random.default_rng(seed)
    for leaf in model.leaves():
        if isinstance(leaf, BatchNorm):
            c, dtype = leaf.num_features, leaf.dtype
            leaf.set_state({"running_mean": (0.2 * rng.standard_normal(c)).astype(dtype),
                            "running_var": rng.uniform(0.5, 1.5, c).astype(dtype)})  # fmt: skip
    return model


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["output"], {"input": x})
    return out


def roundtrip(model: Sequential, tmp_path: Path, input_shape=None, *, dtype="float32", opset=None,
              batch: int = 3, seed: int = 0, rtol=RTOL, atol=ATOL, **kwargs):  # fmt: skip
    """Export, check, run with onnxruntime and compare with ``predict``; return both outputs."""
    path = tmp_path / "model.onnx"
    if opset is not None:
        kwargs["opset"] = opset
    returned = xpcnn.export_onnx(model, path, input_shape=input_shape, dtype=dtype, **kwargs)
    assert returned == os.fspath(path)
    proto = onnx.load(os.fspath(path))
    onnx.checker.check_model(proto, full_check=True)
    [graph_input], [graph_output] = proto.graph.input, proto.graph.output
    assert (graph_input.name, graph_output.name) == ("input", "output")
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "N"
    shape = tuple(input_shape or model.input_shape or model._first_input_shape())
    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype(model.dtype)
    expected = xpcnn.to_host(model.predict(x))
    got = run_onnx(path, x.astype(dtype))
    assert got.shape == expected.shape and got.dtype == np.dtype(dtype)
    # the absolute floor follows the output's size: an element that is the difference of
    # large float32 terms carries their rounding, not its own
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale)
    return got, expected


def ops(path) -> list[str]:
    return [node.op_type for node in onnx.load(os.fspath(path)).graph.node]


# ------------------------------------------------------------------------------ the zoo
ZOO = {
    "xor_network": (lambda: zoo.xor_network(seed=3), (2,)),
    "binary_cnn": (lambda: zoo.binary_cnn(seed=3), (1, 28, 28)),
    "digits_cnn": (lambda: zoo.digits_cnn(seed=3), (1, 28, 28)),
    "digits_resnet": (lambda: zoo.digits_resnet(seed=3), (1, 28, 28)),
}


@pytest.mark.parametrize("name", list(ZOO), ids=list(ZOO))
def test_zoo_models_match_predict(name, tmp_path):
    factory, shape = ZOO[name]
    model = random_statistics(perturb(factory().build(shape)))
    got, expected = roundtrip(model, tmp_path)  # xor_network is float64: exported as float32
    assert np.abs(expected).max() > 0  # a non-trivial output was compared


def test_float64_export_of_a_dense_network_keeps_double_precision(tmp_path):
    model = perturb(zoo.xor_network(seed=1).build((2,)))
    assert model.dtype == "float64"
    roundtrip(model, tmp_path, dtype="float64", rtol=1e-12, atol=1e-14)


def test_float64_export_of_a_convolution_is_valid_onnx(tmp_path):
    """onnxruntime's CPU provider has no float64 Conv; the file itself is still valid ONNX."""
    model = zoo.digits_cnn(dtype="float64")
    path = xpcnn.export_onnx(model, tmp_path / "m.onnx", dtype="float64", input_shape=(1, 28, 28))
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert {t.data_type for t in proto.graph.initializer} == {onnx.TensorProto.DOUBLE}


# ------------------------------------------------------------------------- Convolutional
CONV_OPTIONS = {
    "channel-bias": {},
    "pixel-bias": {"bias": "pixel"},
    "no-bias": {"bias": "none"},
    "padding-1": {"padding": 1},
    "padding-pair": {"padding": (1, 2)},
    "padding-same": {"padding": "same"},
    "padding-full": {"padding": "full", "bias": "pixel"},
    "stride-2": {"stride": 2},
    "stride-pair-padding": {"stride": (2, 1), "padding": 1, "bias": "pixel"},
    "dilation-2": {"dilation": 2},
    "dilation-pair-same": {"dilation": (1, 2), "padding": "same"},
    "groups-2": {"groups": 2},
    "depthwise": {"groups": 4, "depth": 8},
    "everything": {"groups": 2, "stride": 2, "dilation": 2, "padding": 2, "bias": "pixel"},
}


CONV_CASES = [
    (kernel, name)
    for kernel in (3, (3, 2))
    for name, options in CONV_OPTIONS.items()
    if not (kernel == (3, 2) and options.get("padding") == "same" and "dilation" not in options)
]  # padding="same" needs an odd (dilated) kernel: 3x2 without dilation is not a layer


@pytest.mark.parametrize(
    "kernel, name",
    CONV_CASES,
    ids=[f"{'x'.join(map(str, np.broadcast_to(k, 2)))}-{n}" for k, n in CONV_CASES],
)
def test_convolutional_options(kernel, name, tmp_path):
    options = dict(CONV_OPTIONS[name])
    depth = options.pop("depth", 6)
    model = Sequential([Convolutional((4, 9, 8), kernel, depth, seed=5, **options)], input_shape=(4, 9, 8))
    roundtrip(perturb(model), tmp_path)
    expected_ops = ["Conv", "Add"] if options.get("bias") == "pixel" else ["Conv"]
    assert ops(tmp_path / "model.onnx") == expected_ops


# ---------------------------------------------------------------------------- activations
ACTIVATIONS = {
    "Linear": Linear,
    "Linear-a-b": lambda: Linear(0.5, -2.0),
    "Linear-b": lambda: Linear(0.0, 3.0),
    "ReLU": ReLU,
    "Heaviside": Heaviside,
    "Sigmoid": Sigmoid,
    "Logistic": Logistic,
    "Tanh": Tanh,
    "Gaussian": lambda: Gaussian(0.3, 0.7),
    "Gaussian-default": Gaussian,
    "Multiquadratic": lambda: Multiquadratic(0.2, 0.5),
    "InverseMultiquadratic": lambda: InverseMultiquadratic(-0.1, 0.8),
    "LeakyReLU": lambda: LeakyReLU(0.2),
    "ELU": lambda: ELU(0.7),
    "Softplus": Softplus,
    "SiLU": SiLU,
    "GELU": GELU,
    "GELU-tanh": lambda: GELU("tanh"),
    "Softmax": Softmax,
}


@pytest.mark.parametrize("factory", list(ACTIVATIONS.values()), ids=list(ACTIVATIONS))
def test_activations(factory, tmp_path):
    """Each activation after a Dense (so its input is not the graph input) on 3-D samples."""
    model = Sequential([Reshape((2, 3, 4), (24,)), Dense(24, 12, seed=2), Reshape((12,), (3, 4)), factory()],
                       input_shape=(2, 3, 4))  # fmt: skip
    roundtrip(perturb(model, scale=0.3), tmp_path, batch=5)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("opset", [13, 17, 20], ids=["opset13", "opset17", "opset20"])
def test_gelu_with_and_without_the_gelu_operator(approximate, opset, tmp_path):
    model = Sequential([GELU(approximate)], input_shape=(4, 5))
    roundtrip(model, tmp_path, opset=opset, batch=7)
    assert ("Gelu" in ops(tmp_path / "model.onnx")) == (opset >= 20)


def test_activations_on_large_inputs(tmp_path):
    """Far from 0 (saturating functions, the exact softplus and ELU branches)."""
    for factory in (Sigmoid, Tanh, Softplus, SiLU, GELU, lambda: ELU(0.7), lambda: LeakyReLU(0.2)):
        model = Sequential([Linear(0.0, 30.0), factory()], input_shape=(40,))
        roundtrip(model, tmp_path, batch=4, atol=1e-5)


# -------------------------------------------------------------------------------- pooling
POOLS = {
    "max-2": lambda: MaxPool2D(2),
    "max-3-stride-2-pad-1": lambda: MaxPool2D(3, stride=2, padding=1),
    "max-rect": lambda: MaxPool2D((3, 2), stride=(1, 2), padding=(1, 1)),
    "max-overlap": lambda: MaxPool2D(3, stride=1),
    "avg-2": lambda: AvgPool2D(2),
    "avg-3-stride-2-pad-1": lambda: AvgPool2D(3, stride=2, padding=1),
    "avg-rect": lambda: AvgPool2D((3, 2), stride=(1, 2), padding=(1, 1)),
    "avg-overlap": lambda: AvgPool2D(3, stride=1),
    "global-avg": GlobalAvgPool2D,
    "global-max": GlobalMaxPool2D,
}


@pytest.mark.parametrize("factory", list(POOLS.values()), ids=list(POOLS))
def test_pooling(factory, tmp_path):
    model = Sequential([Convolutional((2, 7, 6), 1, 3, seed=1), factory()], input_shape=(2, 7, 6))
    got, _ = roundtrip(perturb(model), tmp_path)
    assert got.ndim == (2 if isinstance(model.layers[1], (GlobalAvgPool2D, GlobalMaxPool2D)) else 4)


# --------------------------------------------------------------------- reshape and friends
def test_flatten_then_dense(tmp_path):
    model = Sequential([Convolutional((1, 6, 6), 3, 2, seed=0), Flatten(), Dense(32, 4, seed=1)],
                       input_shape=(1, 6, 6))  # fmt: skip
    roundtrip(perturb(model), tmp_path)


def test_reshape_between_shapes(tmp_path):
    model = Sequential([Reshape((24,), (2, 3, 4)), Convolutional((2, 3, 4), 2, 3, seed=0), Flatten(),
                        Reshape((18,), (3, 6)), Softmax()], input_shape=(24,))  # fmt: skip
    roundtrip(perturb(model), tmp_path)


def test_flatten_of_rank_one_samples(tmp_path):
    model = Sequential([Flatten(), Dense(5, 2, seed=0)], input_shape=(5,))
    roundtrip(perturb(model), tmp_path)


# --------------------------------------------------------------- BatchNorm and Dropout
def _fit_a_few_steps(model: Sequential, shape: tuple, outputs: int) -> Sequential:
    rng = np.random.default_rng(4)
    x = (1.5 * rng.standard_normal((48, *shape)) + 0.7).astype("float32")
    y = rng.standard_normal((48, outputs)).astype("float32")
    model.fit(
        x, y, loss="quadratic", optimizer=xpcnn.SGD(0.01), epochs=2, batch_size=16, seed=0, progress=False
    )
    return model


@pytest.mark.parametrize("images", [True, False], ids=["NCHW", "NC"])
def test_batchnorm_in_evaluation_mode_after_training(images, tmp_path):
    if images:
        layers = [Convolutional((2, 6, 6), 3, 4, seed=0), BatchNorm(eps=1e-3), ReLU(), Flatten(), Dense(3)]
        shape = (2, 6, 6)
    else:
        layers = [Dense(5, 6, seed=0), BatchNorm(), Tanh(), Dense(3)]
        shape = (5,)
    model = _fit_a_few_steps(Sequential(layers, input_shape=shape), shape, 3)
    bn = next(leaf for leaf in model.leaves() if isinstance(leaf, BatchNorm))
    assert np.abs(xpcnn.to_host(bn.running_mean)).max() > 1e-3  # the statistics moved
    assert np.abs(xpcnn.to_host(bn.running_var) - 1).max() > 1e-3
    model.train()  # the export is the inference function whatever the mode
    roundtrip(model, tmp_path)
    assert "BatchNormalization" in ops(tmp_path / "model.onnx")


def test_dropout_is_the_identity(tmp_path):
    model = Sequential([Dense(6, 8, seed=0), Dropout(0.5, seed=1), ReLU(), Dense(8, 2, seed=2)],
                       input_shape=(6,))  # fmt: skip
    model.train()
    roundtrip(perturb(model), tmp_path)
    assert ops(tmp_path / "model.onnx") == ["Gemm", "Identity", "Relu", "Gemm"]


def test_a_model_of_identities_still_has_a_node(tmp_path):
    model = Sequential([Dropout(0.3, seed=0)], input_shape=(4,))
    roundtrip(model, tmp_path)


# ------------------------------------------------------------------ containers
def test_residual_with_identity_shortcut(tmp_path):
    block = [
        Convolutional(3, 3, padding=1, seed=0),
        BatchNorm(),
        ReLU(),
        Convolutional(3, 3, padding=1, seed=1),
    ]
    model = Sequential([Residual(block), ReLU(), GlobalAvgPool2D()], input_shape=(3, 6, 6))
    roundtrip(random_statistics(perturb(model)), tmp_path)


def test_residual_with_projection_shortcut(tmp_path):
    block = [Convolutional(3, 5, stride=2, padding=1, seed=0), Tanh()]
    shortcut = [Convolutional(1, 5, stride=2, bias="none", seed=1), BatchNorm()]
    model = Sequential([Residual(block, shortcut), Flatten(), Dense(2, seed=2)], input_shape=(3, 6, 6))
    roundtrip(random_statistics(perturb(model)), tmp_path)


def test_dense_residual_and_nested_residuals(tmp_path):
    inner = Residual([Dense(4, 4, seed=0), Sigmoid()])
    model = Sequential([Dense(3, 4, seed=1), Residual([inner, Dense(4, 4, seed=2)], Dense(4, 4, seed=3))],
                       input_shape=(3,))  # fmt: skip
    roundtrip(perturb(model), tmp_path)
    assert ops(tmp_path / "model.onnx").count("Add") == 2


def test_nested_sequential_is_inlined(tmp_path):
    inner = Sequential([Dense(4, 5, seed=0), ReLU(), Sequential([Dense(5, 5, seed=1), Tanh()])])
    model = Sequential([inner, Dense(5, 2, seed=2), Softmax()], input_shape=(4,))
    roundtrip(perturb(model), tmp_path)
    assert ops(tmp_path / "model.onnx") == ["Gemm", "Relu", "Gemm", "Tanh", "Gemm", "Softmax"]


# ------------------------------------------------------------------ the file and its header
def test_header_batch_sizes_and_the_method(tmp_path):
    model = perturb(zoo.digits_cnn(depths=(4, 8), hidden=16, seed=2))
    path = tmp_path / "a.onnx"
    assert model.export_onnx(path, input_shape=(1, 28, 28), opset=18) == os.fspath(path)
    proto = onnx.load(os.fspath(path))
    assert proto.producer_name == "xpcnn" and proto.producer_version == xpcnn.__version__
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 18)]
    assert proto.doc_string and "(N, 1, 28, 28)" in proto.doc_string
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 10]
    for batch in (1, 5):  # the batch dimension is symbolic
        x = np.random.default_rng(batch).standard_normal((batch, 1, 28, 28)).astype("float32")
        np.testing.assert_allclose(run_onnx(path, x), xpcnn.to_host(model.predict(x)), rtol=RTOL, atol=ATOL)
    xpcnn.export_onnx(model, tmp_path / "b.onnx", input_shape=(1, 28, 28), opset=18)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()  # deterministic


def test_input_shape_defaults_to_the_built_shape(tmp_path):
    model = Sequential([Flatten(), Dense(6)])  # sizes inferred: build records the shape
    model.build((2, 3))
    roundtrip(perturb(model), tmp_path)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    model = Sequential([Dense(3, 2, seed=0)])
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous")

    def full_disk(f, data):
        f.write(bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exporter, "_write_chunk", full_disk)
    with pytest.raises(OSError, match="No space left") as info:
        xpcnn.export_onnx(model, path)
    assert info.value.filename == os.fspath(path)
    assert path.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]
    monkeypatch.undo()
    xpcnn.export_onnx(model, path)  # and a good write replaces it
    assert path.read_bytes() != b"previous" and sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_a_missing_folder_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        xpcnn.export_onnx(Sequential([Dense(3, 2, seed=0)]), tmp_path / "nowhere" / "m.onnx")
    assert info.value.filename == os.fspath(tmp_path / "nowhere" / "m.onnx")


# ------------------------------------------------------------------------------ errors
class Doubler(Layer):
    """A user's own layer: ``Y = 2 X``."""

    def _forward(self, xp, x):
        self._input = x
        return 2 * x

    def _backward(self, xp, output_gradient, input_gradient):
        return 2 * output_gradient


@pytest.fixture
def registered_doubler(monkeypatch):
    monkeypatch.setitem(REGISTRY, "Doubler", Doubler)  # registered as xpcnn.layers.register does
    return Doubler


@pytest.mark.parametrize(
    "build, label",
    [
        (lambda d: [Dense(3, 4, seed=0), d(), Dense(4, 2, seed=1)], "layer 1 (Doubler)"),
        (lambda d: [Dense(3, 3, seed=0), Residual([ReLU(), d()])], "layer 1.block.1 (Doubler)"),
        (lambda d: [Sequential([Dense(3, 3, seed=0), d()])], "layer 0.1 (Doubler)"),
        (lambda d: [Dense(3, 3, seed=0), Activation(np.sin, np.cos)], "layer 1 (Activation)"),
    ],
    ids=["custom", "custom-in-residual", "custom-in-nested", "generic-activation"],
)
def test_an_unsupported_layer_is_named_and_nothing_is_written(build, label, registered_doubler, tmp_path):
    model = Sequential(build(registered_doubler), input_shape=(3,))
    with pytest.raises(xpcnn.ExportError, match="Supported layers: .*Convolutional.*Dense") as info:
        xpcnn.export_onnx(model, tmp_path / "m.onnx")
    assert label in str(info.value)
    if "Activation" in label:
        assert "arbitrary Python functions" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert os.listdir(tmp_path) == []


def test_a_subclass_of_a_supported_layer_is_not_taken_for_it(tmp_path):
    class Shifted(ReLU):
        def _forward(self, xp, x):
            return super()._forward(xp, x) + 1

    with pytest.raises(xpcnn.ExportError, match=r"layer 0 \(Shifted\)"):
        xpcnn.export_onnx(Sequential([Shifted()], input_shape=(3,)), tmp_path / "m.onnx")


def test_an_unknown_input_shape_says_how_to_give_it(tmp_path):
    model = Sequential([Flatten(), Dense(12, 2, seed=0)])  # built, but nothing declares the input
    with pytest.raises(xpcnn.ExportError, match=r"pass input_shape=\(1, 28, 28\).*or build the model"):
        xpcnn.export_onnx(model, tmp_path / "m.onnx")
    roundtrip(perturb(model), tmp_path, input_shape=(3, 4))  # given, it exports


def test_an_unbuilt_model_is_refused(tmp_path):
    model = Sequential([Dense(3)])
    with pytest.raises(xpcnn.ExportError, match=r"not built.*model\.build\(input_shape\)"):
        xpcnn.export_onnx(model, tmp_path / "m.onnx", input_shape=(4,))
    assert not model.built  # the export created nothing


def test_an_input_shape_that_does_not_fit_is_named(tmp_path):
    model = Sequential([Dense(3, 2, seed=0)])
    with pytest.raises(xpcnn.ExportError, match=r"input_shape=\(4,\) does not fit.*layer 0 \(Dense\)"):
        xpcnn.export_onnx(model, tmp_path / "m.onnx", input_shape=(4,))


@pytest.mark.parametrize(
    "model, hint",
    [(Dense(3, 2, seed=0), r"Sequential\(\[Dense"), ("model.onnx", "received str"), (None, "NoneType")],
    ids=["layer", "str", "none"],
)
def test_a_model_that_is_not_sequential_is_refused(model, hint, tmp_path):
    with pytest.raises(TypeError, match=hint):
        xpcnn.export_onnx(model, tmp_path / "m.onnx")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"path": 3}, TypeError, "path"),
        ({"path": b"m.onnx"}, TypeError, "path"),
        ({"path": ""}, ValueError, "empty"),
        ({"opset": 12}, ValueError, "opset between 13"),
        ({"opset": 10_000}, ValueError, "opset between 13"),
        ({"opset": "17"}, TypeError, "opset"),
        ({"opset": True}, TypeError, "opset"),
        ({"dtype": "float16"}, ValueError, "float32 or float64"),
        ({"input_shape": (0,)}, ValueError, "positive ints"),
        ({"input_shape": "abc"}, ValueError, "positive ints"),
        ({"input_shape": (2.0,)}, ValueError, "positive ints"),
        ({"input_shape": ()}, ValueError, "positive ints"),
    ],
    ids=[
        "path-int",
        "path-bytes",
        "path-empty",
        "opset-12",
        "opset-huge",
        "opset-str",
        "opset-bool",
        "dtype-float16",
        "shape-zero",
        "shape-str",
        "shape-float",
        "shape-empty",
    ],
)
def test_bad_arguments(kwargs, error, match, tmp_path):
    kwargs = {"path": tmp_path / "m.onnx", **kwargs}
    with pytest.raises(error, match=match):
        xpcnn.export_onnx(Sequential([Dense(2, 2, seed=0)]), **kwargs)
    assert os.listdir(tmp_path) == []


def test_a_folder_is_not_a_file_path(tmp_path):
    with pytest.raises(IsADirectoryError, match="folder"):
        xpcnn.export_onnx(Sequential([Dense(2, 2, seed=0)]), tmp_path)


def test_without_onnx_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "xpcnn\[onnx\]"'):
        xpcnn.export_onnx(Sequential([Dense(2, 2, seed=0)]), tmp_path / "m.onnx")
    with pytest.raises(ImportError, match=r'pip install "xpcnn\[onnx\]"'):
        Sequential([Dense(2, 2, seed=0)]).export_onnx(tmp_path / "m.onnx")


def test_importing_xpcnn_does_not_import_onnx():
    code = (
        "import sys, xpcnn; print(xpcnn.__file__); "
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve() == REPO / "xpcnn" / "__init__.py"


def test_supported_layers_lists_every_rule():
    names = exporter.supported_layers()
    assert names == sorted(names) and {"Sequential", "Residual", "Dense", "GELU", "BatchNorm"} <= set(names)
    assert "Activation" not in names
