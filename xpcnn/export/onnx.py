"""Export a ``Sequential`` to an ONNX file: ``xpcnn.export_onnx(model, "model.onnx")``.

The file holds the model's *inference* function, the one :meth:`Sequential.predict`
computes: ``BatchNorm`` normalises with its running statistics and ``Dropout`` is the
identity, whatever mode the layers are in.  Every parameter and running statistic is copied
to the host (any device) and stored as an initializer.

The graph has one input, ``"input"``, of shape ``("N", *input_shape)`` (a symbolic batch
dimension ``N``), and one output, ``"output"``, of shape ``("N", *model.output_shape(...))``.
``input_shape`` is one sample's shape; it defaults to the shape the model was built or fit
with (``model.input_shape``), else the input its first layer declares.

Layer -> ONNX operators (the default domain; the model's opset, 17 by default, and at least 13):

================================  ==================================================================
xpcnn layer                       ONNX
================================  ==================================================================
``Dense``                         ``Gemm(X, W, b, transB=1)``: ``X W^T + b``
``Convolutional``                 ``Conv`` (``kernel_shape``, ``strides``, ``pads``,
                                  ``dilations``, ``group``); ``bias="channel"``: Conv's ``B``;
                                  ``bias="pixel"``: Conv without ``B``, then ``Add`` of a
                                  ``(1, C, H, W)`` initializer; ``bias="none"``: no bias
``MaxPool2D``                     ``MaxPool`` (padding never wins, as in xpcnn)
``AvgPool2D``                     ``AveragePool(count_include_pad=1)`` (xpcnn divides by the
                                  whole window, padding included)
``GlobalAvgPool2D``               ``GlobalAveragePool``, ``Flatten(axis=1)``: ``(N, C)``
``GlobalMaxPool2D``               ``GlobalMaxPool``, ``Flatten(axis=1)``: ``(N, C)``
``Flatten``                       ``Flatten(axis=1)``
``Reshape``                       ``Reshape`` to ``[0, *output_shape]`` (0: the batch)
``BatchNorm``                     ``BatchNormalization`` with the running mean and variance and
                                  ``epsilon=eps`` (``(N, C)`` and ``(N, C, H, W)`` inputs)
``Dropout``                       ``Identity``
``Softmax``                       ``Softmax(axis=-1)``
``ReLU``                          ``Relu``
``Sigmoid`` (= ``Logistic``)      ``Sigmoid``
``Tanh``                          ``Tanh``
``LeakyReLU(negative_slope)``     ``LeakyRelu(alpha=negative_slope)``
``ELU(alpha)``                    ``Elu(alpha)``
``Softplus``                      ``Softplus``
``SiLU``                          ``Mul(X, Sigmoid(X))``
``GELU(approximate)``             opset >= 20: ``Gelu(approximate)``; below: ``X/2 (1 +
                                  Erf(X / sqrt 2))``, or the tanh form from ``Tanh``, ``Mul``
                                  and ``Add``
``Linear(a, b)``                  ``Identity`` (``a=0, b=1``), else ``Mul`` by ``b``, ``Add`` ``a``
``Heaviside``                     ``Cast(Greater(X, 0))``
``Gaussian(c, sigma)``            ``Exp(-(1/2) d d)``, ``d = (X - c) / sigma`` (Sub, Div, Mul)
``Multiquadratic(c, a)``          ``Sqrt(d d + a^2)``, ``d = X - c``
``InverseMultiquadratic(c, a)``   ``Reciprocal(Sqrt(d d + a^2))``
``Sequential`` (nested)           its layers, inlined
``Residual(block, shortcut)``     ``Add`` of the block's subgraph and the shortcut's (the
                                  identity: the input itself)
================================  ==================================================================

A generic ``Activation(f, f_prime)`` (arbitrary Python functions) and any layer class not in
this table (a user's own registered layer, a subclass of a listed one) raise
:class:`ExportError` naming the layer (``"layer 3 (MyLayer)"``) and the supported layers.

Precision: ``dtype="float32"`` (the default) stores every initializer, the input and the
output as float32, also for a float64 model (its parameters are rounded to float32).
``dtype="float64"`` keeps double precision and writes valid ONNX, but onnxruntime's CPU
provider (1.32) implements only some operators in float64: not ``Conv``, ``AveragePool``,
``GlobalAveragePool``, ``GlobalMaxPool``, ``Elu``, ``Softplus`` nor ``Erf`` (exact GELU), so
it refuses such a graph at load time; dense networks (``Gemm``, ``BatchNormalization``,
``MaxPool``, ``Relu``, ``Sigmoid``, ``Tanh``, ``Softmax``, ...) run.  Float attributes
(``LeakyRelu``'s and ``Elu``'s ``alpha``, ``BatchNormalization``'s ``epsilon``) are float32 in
ONNX itself, even in a float64 graph.

The file is written atomically, as xpcnn's checkpoints are: a temporary file in the same
folder, then ``os.replace``; on any error the previous file at ``path`` is untouched and no
temporary is left.  The graph is checked with ``onnx.checker.check_model(full_check=True)``
before anything is written.

``onnx`` is an optional dependency (``pip install "xpcnn[onnx]"``), imported only when
:func:`export_onnx` is called; ``import xpcnn`` never imports it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backend
from .._validate import float_dtype
from ..checkpoint import format as _fmt
from ..layers import (
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
    LeakyReLU,
    Linear,
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
from ..layers.base import REGISTRY, Layer

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "ExportError", "export_onnx"]

#: The opset written when none is given (every operator used exists there; onnxruntime >= 1.17 runs it).
DEFAULT_OPSET = 17
#: The lowest opset accepted: from 13 on, ``Softmax`` works on one axis and ``Squeeze`` /
#: ``Unsqueeze`` / ``Reshape`` take their shapes as inputs, as this exporter writes them.
MIN_OPSET = 13
_GELU_OPSET = 20  # the first opset with a Gelu operator

INSTALL_HINT = 'pip install "xpcnn[onnx]"'


class ExportError(ValueError):
    """A model that cannot be written as ONNX: a layer without an ONNX equivalent, an unknown
    input shape, an input shape that does not fit the model."""


# ------------------------------------------------------------------------------ the graph
class _Graph:
    """The nodes and initializers being built, with unique names."""

    def __init__(self, onnx: Any, dtype: str, opset: int):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.dtype = np.dtype(dtype)
        self.elem_type = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._names = {"input", "output"}

    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def tensor(self, name: str, value, dtype=None) -> str:
        """An initializer holding ``value`` (a host copy, in the export dtype unless ``dtype``)."""
        array = np.ascontiguousarray(np.asarray(value, dtype=self.dtype if dtype is None else dtype))
        name = self._unique(name)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def parameter(self, prefix: str, layer: Layer, attribute: str, shape: tuple | None = None) -> str:
        """The layer's array ``attribute`` copied to the host (optionally reshaped)."""
        host = backend.to_host(getattr(layer, attribute))
        return self.tensor(f"{prefix}.{attribute}", host if shape is None else host.reshape(shape))

    def scalar(self, prefix: str, what: str, value: float) -> str:
        return self.tensor(f"{prefix}.{what}", value)

    def op(self, prefix: str, op_type: str, inputs, **attributes) -> str:
        """Append node ``op_type(*inputs)`` and return the name of its one output."""
        out = self._unique(f"{prefix}/{op_type}")
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=out, **attributes))
        return out


def _prefix(layer: Layer) -> str:
    return type(layer).__name__ if layer.index is None else f"layer{layer.index}"


# ------------------------------------------------------------------------ the layer rules
_Rule = Callable[[_Graph, Any, str, str], str]


def _dense(g: _Graph, layer: Dense, x: str, p: str) -> str:
    return g.op(p, "Gemm", [x, g.parameter(p, layer, "weights"), g.parameter(p, layer, "bias")], transB=1)


def _conv(g: _Graph, layer: Convolutional, x: str, p: str) -> str:
    (ph, pw), inputs = layer.padding, [x, g.parameter(p, layer, "kernels")]
    if layer.bias_mode == "channel":
        inputs.append(g.parameter(p, layer, "biases"))
    y = g.op(p, "Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
             pads=[ph, pw, ph, pw], dilations=list(layer.dilation), group=layer.groups)  # fmt: skip
    if layer.bias_mode == "pixel":  # B (C, H, W): one bias per output pixel (eq. 17)
        y = g.op(p, "Add", [y, g.parameter(p, layer, "biases", (1, *layer.biases.shape))])
    return y


def _pool(op_type: str, **extra) -> _Rule:
    def rule(g: _Graph, layer, x: str, p: str) -> str:
        (ph, pw) = layer.padding
        return g.op(p, op_type, [x], kernel_shape=list(layer.pool_size), strides=list(layer.stride),
                    pads=[ph, pw, ph, pw], **extra)  # fmt: skip

    return rule


def _global_pool(op_type: str) -> _Rule:
    def rule(g: _Graph, layer, x: str, p: str) -> str:
        return g.op(p, "Flatten", [g.op(p, op_type, [x])], axis=1)  # (N, C, 1, 1) -> (N, C), as xpcnn

    return rule


def _reshape(g: _Graph, layer: Reshape, x: str, p: str) -> str:
    shape = g.tensor(f"{p}.shape", [0, *layer.target_shape], dtype=np.int64)  # 0: keep the batch size
    return g.op(p, "Reshape", [x, shape])


def _batch_norm(g: _Graph, layer: BatchNorm, x: str, p: str) -> str:
    inputs = [x] + [g.parameter(p, layer, a) for a in ("gamma", "beta", "running_mean", "running_var")]
    return g.op(p, "BatchNormalization", inputs, epsilon=float(layer.eps))


def _unary(op_type: str, **attributes: Callable[[Any], Any]) -> _Rule:
    """A rule for one ONNX operator whose attributes are read from the layer's config."""

    def rule(g: _Graph, layer, x: str, p: str) -> str:
        return g.op(p, op_type, [x], **{k: read(layer.config()) for k, read in attributes.items()})

    return rule


def _silu(g: _Graph, layer: SiLU, x: str, p: str) -> str:
    return g.op(p, "Mul", [x, g.op(p, "Sigmoid", [x])])


def _gelu(g: _Graph, layer: GELU, x: str, p: str) -> str:
    if g.opset >= _GELU_OPSET:
        return g.op(p, "Gelu", [x], approximate=layer.approximate)
    half_x = g.op(p, "Mul", [x, g.scalar(p, "half", 0.5)])
    if layer.approximate == "none":  # (x / 2) (1 + erf(x / sqrt 2))
        inner = g.op(p, "Erf", [g.op(p, "Mul", [x, g.scalar(p, "inv_sqrt2", 1.0 / math.sqrt(2.0))])])
    else:  # (x / 2) (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        cube = g.op(p, "Mul", [g.op(p, "Mul", [x, x]), x])
        poly = g.op(p, "Add", [x, g.op(p, "Mul", [cube, g.scalar(p, "k", 0.044715)])])
        inner = g.op(p, "Tanh", [g.op(p, "Mul", [poly, g.scalar(p, "c", math.sqrt(2.0 / math.pi))])])
    return g.op(p, "Mul", [half_x, g.op(p, "Add", [inner, g.scalar(p, "one", 1.0)])])


def _linear(g: _Graph, layer: Linear, x: str, p: str) -> str:
    a, b = layer.config()["a"], layer.config()["b"]
    if a == 0 and b == 1:
        return g.op(p, "Identity", [x])
    y = x if b == 1 else g.op(p, "Mul", [x, g.scalar(p, "b", b)])
    return y if a == 0 else g.op(p, "Add", [y, g.scalar(p, "a", a)])


def _heaviside(g: _Graph, layer: Heaviside, x: str, p: str) -> str:
    return g.op(p, "Cast", [g.op(p, "Greater", [x, g.scalar(p, "zero", 0.0)])], to=g.elem_type)


def _centred(g: _Graph, layer, x: str, p: str) -> str:
    c = layer.config()["c"]
    return x if c == 0 else g.op(p, "Sub", [x, g.scalar(p, "c", c)])


def _gaussian(g: _Graph, layer: Gaussian, x: str, p: str) -> str:
    d = g.op(p, "Div", [_centred(g, layer, x, p), g.scalar(p, "sigma", layer.config()["sigma"])])
    return g.op(p, "Exp", [g.op(p, "Mul", [g.op(p, "Mul", [d, g.scalar(p, "minus_half", -0.5)]), d])])


def _radius(g: _Graph, layer, x: str, p: str) -> str:
    d, a = _centred(g, layer, x, p), layer.config()["a"]
    return g.op(p, "Sqrt", [g.op(p, "Add", [g.op(p, "Mul", [d, d]), g.scalar(p, "a_squared", a * a)])])


def _inverse_radius(g: _Graph, layer, x: str, p: str) -> str:
    return g.op(p, "Reciprocal", [_radius(g, layer, x, p)])


_RULES: dict[type, _Rule] = {
    Dense: _dense,
    Convolutional: _conv,
    MaxPool2D: _pool("MaxPool"),
    AvgPool2D: _pool("AveragePool", count_include_pad=1),
    GlobalAvgPool2D: _global_pool("GlobalAveragePool"),
    GlobalMaxPool2D: _global_pool("GlobalMaxPool"),
    Flatten: _unary("Flatten", axis=lambda config: 1),
    Reshape: _reshape,
    BatchNorm: _batch_norm,
    Dropout: _unary("Identity"),
    Softmax: _unary("Softmax", axis=lambda config: -1),
    ReLU: _unary("Relu"),
    Sigmoid: _unary("Sigmoid"),
    Tanh: _unary("Tanh"),
    LeakyReLU: _unary("LeakyRelu", alpha=lambda config: float(config["negative_slope"])),
    ELU: _unary("Elu", alpha=lambda config: float(config["alpha"])),
    Softplus: _unary("Softplus"),
    SiLU: _silu,
    GELU: _gelu,
    Linear: _linear,
    Heaviside: _heaviside,
    Gaussian: _gaussian,
    Multiquadratic: _radius,
    InverseMultiquadratic: _inverse_radius,
}


def _containers() -> tuple[type[Layer], type[Layer]]:
    """``Sequential`` and ``Residual``, from the layer registry (importing ``xpcnn.model``
    here would be an import cycle: the model's ``export_onnx`` method imports this module)."""
    return REGISTRY["Sequential"], REGISTRY["Residual"]


def supported_layers() -> list[str]:
    """The names of the layer classes :func:`export_onnx` writes (containers included)."""
    return sorted([cls.__name__ for cls in _RULES] + ["Residual", "Sequential"])


def _unsupported(layer: Layer) -> ExportError:
    if type(layer) is Activation:
        why = "a generic Activation(f, f_prime) wraps arbitrary Python functions, which ONNX cannot hold"
    else:
        why = "xpcnn.export_onnx has no ONNX equivalent for this layer class"
    return ExportError(
        f"{layer.label} cannot be exported to ONNX: {why}. Supported layers: {', '.join(supported_layers())}."
    )


def _emit(g: _Graph, layer: Layer, x: str, shape: tuple, containers: tuple[type[Layer], type[Layer]]) -> str:
    """Append ``layer``'s nodes, reading the tensor ``x`` of per-sample ``shape``; return the
    name of the layer's output."""
    sequential, residual = containers
    kind = type(layer)
    if kind is sequential:
        for inner in layer.layers:  # type: ignore[attr-defined]
            x = _emit(g, inner, x, shape, containers)
            shape = tuple(inner.output_shape(shape))
        return x
    if kind is residual:
        block, shortcut = layer.block, layer.shortcut  # type: ignore[attr-defined]
        y = _emit(g, block, x, shape, containers)
        s = x if shortcut is None else _emit(g, shortcut, x, shape, containers)
        return g.op(_prefix(layer), "Add", [y, s])
    rule = _RULES.get(kind)  # exact classes: a subclass may compute something else
    if rule is None:
        raise _unsupported(layer)
    return rule(g, layer, x, _prefix(layer))


# ---------------------------------------------------------------------- the public edge
def _import_onnx():
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
        import onnx.shape_inference
    except ImportError as exc:
        raise ImportError(
            f"xpcnn.export_onnx needs the optional onnx package; install it with {INSTALL_HINT} "
            f"(onnx>=1.16; onnxruntime>=1.17 to run the file). ({exc})"
        ) from exc
    return onnx


def _check_path(path) -> str:
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"export_onnx: expected path to be a str or os.PathLike, e.g. 'model.onnx'. Received "
            f"{type(path).__name__}: {path!r:.80}."
        )
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"export_onnx: expected a text path, received {type(text).__name__}: {text!r:.80}.")
    if not text:
        raise ValueError("export_onnx: expected a file path, received an empty string.")
    if os.path.isdir(text):
        raise IsADirectoryError(f"export_onnx: {text!r} is a folder; give a file path, e.g. 'model.onnx'.")
    return text


def _check_opset(opset, newest: int) -> int:
    if not isinstance(opset, numbers.Integral) or isinstance(opset, bool):
        raise TypeError(f"export_onnx: expected opset to be an int. Received opset={opset!r}.")
    if not MIN_OPSET <= int(opset) <= newest:
        raise ValueError(
            f"export_onnx: expected opset between {MIN_OPSET} and {newest} (the newest this onnx "
            f"package knows). Received opset={opset!r}."
        )
    return int(opset)


def _input_shape(model, input_shape) -> tuple[int, ...]:
    if input_shape is None:
        input_shape = model.input_shape or model._first_input_shape()
        if input_shape is None:
            raise ExportError(
                "export_onnx: the model's input shape is unknown; pass input_shape=(1, 28, 28) (one "
                "sample's shape) or build the model first (model.build(input_shape), or fit it)."
            )
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (
        not shape
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape)
        or min(shape) < 1
    ):
        raise ValueError(
            "export_onnx: expected input_shape to be one sample's shape, a tuple of positive ints such "
            f"as (1, 28, 28). Received input_shape={input_shape!r}."
        )
    return tuple(int(s) for s in shape)


def _write_chunk(f, data) -> None:
    """Write one buffer (its own function so that tests can interrupt a write)."""
    f.write(data)


def _write_atomic(path: str, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file in the same folder and ``os.replace``: on
    any error the previous file is untouched and the temporary is removed."""
    target = os.path.abspath(path)
    _fmt.remove_stale_temporaries(target, time.time())
    try:
        tmp, f = _fmt._open_temporary(target)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with f:
            view = memoryview(data)
            for start in range(0, len(view), 1 << 24):
                _write_chunk(f, view[start : start + (1 << 24)])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise
    _fmt._fsync_folder(os.path.dirname(target))


def _naming(exc: OSError, path: str) -> OSError:
    """The same kind of ``OSError``, naming the ONNX file instead of the temporary."""
    reason = exc.strerror or str(exc)
    folder = os.path.dirname(os.path.abspath(path))
    if isinstance(exc, FileNotFoundError) and not os.path.isdir(folder):
        reason = f"the folder {folder!r} does not exist"
    return type(exc)(exc.errno, f"Cannot write the ONNX file: {reason}", path)


def export_onnx(
    model: Any,
    path: str | os.PathLike,
    *,
    input_shape=None,
    opset: int = DEFAULT_OPSET,
    dtype: str = "float32",
) -> str:
    """Write ``model`` (a built :class:`~xpcnn.Sequential`) to ``path`` as an ONNX model and
    return ``path``.

    Args:
        model: a ``Sequential`` whose layers all have their parameters (built or fit).
        path: the file to write (atomically; no suffix is added).
        input_shape: one sample's shape, e.g. ``(1, 28, 28)``; default: ``model.input_shape``
            (set by ``build`` and ``fit``), else the input the first layer declares.
        opset: the ONNX opset of the default domain, ``MIN_OPSET`` (13) up to the newest the
            installed ``onnx`` knows; ``DEFAULT_OPSET`` (17) by default.
        dtype: ``"float32"`` (default; a float64 model is rounded to it) or ``"float64"`` (valid
            ONNX, but onnxruntime's CPU provider lacks float64 ``Conv``, ``AveragePool``, the
            global pools, ``Elu``, ``Softplus`` and ``Erf``).

    Raises:
        ImportError: ``onnx`` is not installed (``pip install "xpcnn[onnx]"``).
        TypeError: ``model`` is not a ``Sequential``, or ``path`` / ``opset`` has the wrong type.
        ExportError: (a ``ValueError``) a layer has no ONNX equivalent, the input shape is unknown
            or does not fit the model, or the model is not built.
        ValueError: a bad ``input_shape``, ``opset`` or ``dtype``.
        OSError: the file system refused the file (the error names ``path``).

    See the module's documentation (:mod:`xpcnn.export.onnx`) for the layer -> operator table.
    """
    onnx = _import_onnx()
    sequential, residual = _containers()
    if not isinstance(model, sequential):
        hint = ""
        if isinstance(model, Layer):
            name = type(model).__name__
            hint = f" Wrap a single layer in a model: Sequential([{name}(...)])."
        raise TypeError(f"export_onnx: expected a Sequential model, received {type(model).__name__}.{hint}")
    text = _check_path(path)
    opset = _check_opset(opset, onnx.defs.onnx_opset_version())
    dtype = float_dtype(dtype, where="export_onnx")
    if not model.built:
        unbuilt = [leaf.label for leaf in model.leaves() if not leaf.built]
        raise ExportError(
            f"export_onnx: the model is not built ({', '.join(unbuilt)} has no parameters yet); build "
            "it first with model.build(input_shape) (or fit it), then export."
        )
    shape = _input_shape(model, input_shape)
    try:
        output_shape = tuple(int(s) for s in model.output_shape(shape))
    except ValueError as exc:
        raise ExportError(f"export_onnx: input_shape={shape} does not fit the model: {exc}") from None

    g = _Graph(onnx, dtype, opset)
    last = _emit(g, model, "input", shape, (sequential, residual))
    if last == "input":  # nothing but identities: the graph still needs a node
        g.op("output", "Identity", ["input"])
        last = g.nodes[-1].output[0]
    for node in g.nodes:  # the last value is the graph's output: rename it
        node.output[:] = ["output" if name == last else name for name in node.output]
        node.input[:] = ["output" if name == last else name for name in node.input]

    from .. import __version__

    helper = onnx.helper
    graph = helper.make_graph(
        g.nodes,
        "xpcnn",
        [helper.make_tensor_value_info("input", g.elem_type, ["N", *shape])],
        [helper.make_tensor_value_info("output", g.elem_type, ["N", *output_shape])],
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="xpcnn",
        producer_version=__version__,
        doc_string=(
            f"An xpcnn {type(model).__name__} of {len(model.leaves())} layers, exported for inference "
            f"(BatchNorm uses its running statistics, Dropout is the identity): input (N, "
            f"{', '.join(map(str, shape))}) -> output (N, {', '.join(map(str, output_shape))}), {dtype}."
        ),
    )
    if proto.ByteSize() >= 2**31:
        raise ExportError(
            "export_onnx: the model is larger than 2 GiB, the limit of one ONNX (protobuf) file; "
            "external tensor data is not supported."
        )
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:  # a bug here
        raise ExportError(f"export_onnx: the graph failed onnx.checker (please report it): {exc}") from exc
    _write_atomic(text, proto.SerializeToString())
    return text
