"""``Sequential``: layers in a chain, trained by backpropagation (notes section 2).

The loop of the notes, batched: ``Y = network(X, W)`` (forward, layer after layer), the
error ``E`` and ``dE/dY`` from a loss, then ``dE/dX`` back through the layers in reverse
(eq. 5), each storing ``dE/dW`` (eq. 4), and finally an optimizer step ``w <- w - gamma
dE/dw`` (eq. 1) or one of its refinements (:mod:`xpcnn.optim`).

Where data live (see :mod:`xpcnn.data`): ``forward`` and ``backward`` take arrays already on
the model's device; ``fit``, ``evaluate`` and ``predict`` take host (NumPy) data - or device
data - and copy one batch at a time.  No dtype is converted silently.
"""

from __future__ import annotations

import contextlib
import os
import sys

from . import backend, checkpoint, init, optim, resume, schedules
from . import callbacks as cb
from . import distributed as dist
from . import losses as _losses
from ._validate import float_dtype, integer, positive
from .backend import Array, DeviceLike
from .data import ArrayPair, DataSource, SourcePair, is_source
from .descent import descend_layers
from .layers.base import Layer, register
from .loop import (
    History,
    NonFiniteLossError,
    _batches,
    _check_resume,
    _EpochLoop,
    _host_check,
    _NonFinite,
    _start,
)

__all__ = ["CUDA_STEPS_PER_SYNC", "History", "NonFiniteLossError", "Sequential", "load"]

#: ``fit``'s default ``steps_per_sync`` on a GPU: batches queued between two reads of the losses.
CUDA_STEPS_PER_SYNC = 16


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper()):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _callback_list(callbacks) -> list:
    """``fit``'s ``callbacks``: ``None``, one Callback or an iterable of them, as a new list."""
    if callbacks is None:
        return []
    if isinstance(callbacks, cb.Callback):
        return [callbacks]
    expected = "fit: expected callbacks to be a Callback or a list of Callbacks."
    try:
        items = list(callbacks) if not isinstance(callbacks, (str, bytes, dict, type)) else None
    except TypeError:
        items = None
    if items is None:
        raise TypeError(f"{expected} Received {type(callbacks).__name__}: {callbacks!r}.")
    for i, c in enumerate(items):
        if not isinstance(c, cb.Callback):
            raise TypeError(f"{expected} Received {type(c).__name__} at position {i}: {c!r}.")
    return items


@register
class Sequential(Layer):
    """A chain of layers on one device and dtype.

    Args:
        layers: the :class:`~xpcnn.layers.Layer` objects, in order.  Each gets its ``index``
            (errors then read "layer 2 (Dense): ...") and is moved with ``layer.to``.
        device: ``"cpu"`` (NumPy), ``"cuda"`` / ``"cuda:<n>"`` (CuPy) or a
            :class:`~xpcnn.backend.Placement`.
        dtype: ``"float32"`` or ``"float64"`` for every parameter; ``None`` keeps the
            layers' own dtype (they must agree).

    Attributes: ``layers``, ``placement``, ``dtype``, and after ``fit``: ``loss``,
    ``optimizer``, ``metrics``, ``history``.
    """

    def __init__(self, layers, device="cpu", dtype: str | None = None, input_shape=None):
        if isinstance(layers, Layer):
            raise TypeError(
                f"Sequential: expected a list of layers, received a single {type(layers).__name__}. "
                f"Wrap it in a list: Sequential([{type(layers).__name__}(...)])."
            )
        try:
            layers = list(layers)
        except TypeError:
            raise TypeError(
                f"Sequential: expected a list of layers, received {type(layers).__name__}: {layers!r:.80}."
            ) from None
        if not layers:
            raise ValueError("Sequential: expected at least one layer. Received an empty list.")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: expected xpcnn layers. Received {type(layer).__name__} at position {i}."
                )
        leaves = [leaf for layer in layers for leaf in layer.leaves()]
        if len({id(layer) for layer in layers}) != len(layers) or len({id(leaf) for leaf in leaves}) != len(
            leaves
        ):
            raise ValueError("Sequential: the same layer object appears twice; create one object per layer.")
        if dtype is None:
            found = {layer.dtype for layer in layers if layer.param_names}
            if len(found) > 1:
                raise TypeError(
                    f"Sequential: the layers have different dtypes {sorted(found)}; pass dtype='float32' "
                    "or dtype='float64' to convert them all."
                )
            dtype = found.pop() if found else "float32"
        self.dtype = float_dtype(dtype, where="Sequential")
        self.layers = layers
        self.index: int | str | None = None  # set when this model is a layer of another
        self._input = None
        for i, layer in enumerate(layers):
            layer._set_index(i)
        self.placement = backend.placement(device)
        for layer in layers:
            layer.to(self.placement, self.dtype)
        self.loss = None
        self.optimizer: optim.Optimizer | None = None
        self.metrics: dict = {}
        self.history: History | None = None
        #: How far ``fit`` got (epoch, batch, shuffle generator, history): saved with the
        #: training state, so that ``fit(resume_from=...)`` goes on from there.
        self.fit_state: dict | None = None
        #: The communicator of the ``fit`` in progress (``fit(..., distributed=comm)``), else
        #: None: callbacks that write files do so on rank 0 only.
        self.distributed = None
        self.stop_training = False
        self.stop_reason: str | None = None  # set by a callback that stops training
        self.input_shape: tuple | None = None  # per-sample, recorded from the data
        self._validated: set = set()  # (per-sample shape, dtype) that went through every check
        self._leaves = self.leaves()
        self._output_shape: tuple | None = None  # of the last forward
        if input_shape is not None:
            self.build(input_shape)
        else:
            first = self._first_input_shape()
            if first is not None:  # the layers declare their sizes: a mismatch is named now
                self.output_shape(first)

    def build(self, input_shape) -> Sequential:
        """Infer every size from one sample's ``input_shape`` (e.g. ``(1, 28, 28)``): layers
        whose sizes were left out (``Dense(10)``, ``Convolutional(3, 16)``) create their
        parameters now, and a layer that does not fit the shape before it raises
        ``ValueError`` naming it.  ``Sequential(..., input_shape=...)`` calls it; ``fit``,
        ``predict`` and ``summary(input_shape=...)`` do it too.  Returns self."""
        try:
            shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise TypeError(
                f"Sequential: expected input_shape to be one sample's shape, e.g. (1, 28, 28). Received "
                f"input_shape={input_shape!r}."
            ) from None
        if not shape or min(shape) < 1:
            raise ValueError(
                f"Sequential: expected input_shape of positive sizes. Received input_shape={input_shape!r}."
            )
        self.output_shape(shape)
        self.input_shape = shape
        return self

    @property
    def built(self) -> bool:  # type: ignore[override]
        """Whether every layer knows its sizes (and has its parameters)."""
        return all(layer.built for layer in self.layers)

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Sequential:
        """Training mode for every layer (``mode=False``: evaluation mode).  ``fit`` trains in
        training mode; ``evaluate``, ``predict`` and ``fit``'s validation run in evaluation mode;
        each puts the previous modes back when it ends.  Returns self."""
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        """Evaluation mode for every layer, ``train(False)``.  Returns self."""
        return self.train(False)

    @property
    def training(self) -> bool:  # type: ignore[override]
        """True when every layer (inside blocks too) is in training mode."""
        return all(leaf.training for leaf in self._leaves)

    def _modal(self) -> list:
        """Every layer and container below this model (not the nested ``Sequential`` objects,
        whose mode is that of their layers), depth first."""
        out = []
        stack = list(reversed(self.layers))
        while stack:
            layer = stack.pop()
            if not isinstance(layer, Sequential):
                out.append(layer)
            for inner in reversed(list(layer.children().values())):
                stack.extend(reversed(inner))
        return out

    @contextlib.contextmanager
    def _mode(self, training: bool):
        """Every layer in ``training`` mode for the block; each layer's previous mode after it
        (a layer frozen with ``eval()`` inside a block stays frozen)."""
        before = [(layer, layer.training) for layer in self._modal()]
        self.train(training)
        try:
            yield
        finally:
            for layer, mode in before:
                layer.training = mode

    # ---------------------------------------------------------------- basics
    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], device={self.placement.name!r}, dtype={self.dtype!r})"

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def parameters(self) -> dict:
        """``{"<layer index>.<name>": array}``, e.g. ``"0.weights"`` (``"3.1.weights"`` inside a
        nested block): the arrays themselves."""
        return {
            f"{i}.{name}": p for i, layer in enumerate(self.layers) for name, p in layer.parameters().items()
        }

    def state(self) -> dict:
        """Non-trainable arrays (running statistics), named as :meth:`parameters` names them."""
        return {f"{i}.{name}": p for i, layer in enumerate(self.layers) for name, p in layer.state().items()}

    @property
    def param_names(self) -> tuple:  # type: ignore[override]
        """The names of :meth:`parameters` (empty when nothing here is trainable)."""
        return tuple(self.parameters())

    @property
    def grads(self) -> dict:  # type: ignore[override]
        """The gradients of the last backward, named as :meth:`parameters` names them."""
        return {f"{i}.{name}": g for i, layer in enumerate(self.layers) for name, g in layer.grads.items()}

    def leaves(self) -> list:
        """The layers that are not containers, depth first: what an optimizer steps."""
        return [leaf for layer in self.layers for leaf in layer.leaves()]

    def parameter_count(self) -> int:
        return sum(layer.parameter_count() for layer in self.layers)

    def set_parameters(self, values: dict) -> None:
        raise TypeError(
            "Sequential.set_parameters: set the parameters of its layers, e.g. model.layers[0].set_parameters(...)."
        )

    set_state = set_tensors = set_parameters

    def copy_parameters(self) -> list[dict]:
        """Device copies of every layer's parameters and state (running statistics), for
        :meth:`restore_parameters`."""
        xp = self.placement.xp
        return [{k: xp.asarray(v, copy=True) for k, v in leaf.tensors().items()} for leaf in self.leaves()]

    def restore_parameters(self, saved: list[dict]) -> None:
        """Put back parameters and state from :meth:`copy_parameters` (same device and dtype)."""
        for leaf, values in zip(self.leaves(), saved, strict=True):
            for name, value in values.items():
                setattr(leaf, name, value)

    def to(self, device: DeviceLike = None, dtype: str | None = None) -> Sequential:
        """Move (and optionally cast) every parameter *and* the optimizer's state.  Returns self."""
        target = self.placement if device is None else backend.placement(device)
        new_dtype = self.dtype if dtype is None else float_dtype(dtype, where="Sequential.to")
        for layer in self.layers:
            layer.to(target, new_dtype)
        if self.optimizer is not None:
            self.optimizer.to(target, new_dtype)
        self.placement, self.dtype = target, new_dtype
        self._validated = set()
        return self

    def save(self, path: str | os.PathLike, **kwargs) -> None:
        """Write a checkpoint with :func:`xpcnn.checkpoint.save` (no pickle, atomic; see that
        module; ``kwargs`` such as ``metadata=`` go to it).  Load it with :func:`xpcnn.load`."""
        return checkpoint.save(self, path, **kwargs)

    def export_onnx(self, path: str | os.PathLike, **kwargs) -> str:
        """Write the model's inference graph to an ONNX file with :func:`xpcnn.export_onnx`
        (``kwargs``: ``input_shape=``, ``opset=``, ``dtype=``); returns ``path``.  Needs the
        optional ``onnx`` package (``pip install "xpcnn[onnx]"``), imported only here."""
        from .export.onnx import export_onnx

        return export_onnx(self, path, **kwargs)

    # ------------------------------------------------------------- the passes
    def _check_device_input(self, x, argument: str, where: str) -> None:
        if not backend.is_array(x):
            raise TypeError(
                f"Sequential.{where}: expected {argument} to be an array on {self.placement.name}, received "
                f"{type(x).__name__}. Hint: predict() and fit() accept host data."
            )
        got = backend.placement_of(x)
        if got != self.placement:
            if backend.is_host_array(x):
                raise ValueError(
                    f"Sequential.{where}: {argument} is a NumPy array on the host but the model is on "
                    f"{self.placement.name}; {where}() takes device arrays. Use model.predict(x), which copies "
                    f"host data batch by batch, or copy it with model.placement.asarray({argument})."
                )
            raise ValueError(
                f"Sequential.{where}: {argument} is on {got.name} but the model is on {self.placement.name}. "
                f"Move the data, or the model with model.to(...)."
            )

    def forward(self, x: Array) -> Array:
        """``Y = layer_L(... layer_1(X))`` for a batch ``x`` already on the model's device."""
        self._check_device_input(x, "x", "forward")
        with self.placement.activate():
            return self._chain_forward(x)

    __call__ = forward

    def _chain_forward(self, x):
        """The layers in order.  The first batch of each per-sample shape and dtype runs every
        layer's validated ``forward``; once it went through, batches of that shape and dtype
        run the trusted ``_forward`` of each layer (the shapes between layers are then known
        to fit).  ``to()`` forgets what was validated."""
        self._input = x  # (as a layer inside another model: its backward checks it)
        key = (tuple(x.shape[1:]), backend.dtype_name(x.dtype))
        if key in self._validated:
            xp = self.placement.xp
            for layer in self.layers:
                x = layer._forward(xp, x)
        else:
            for layer in self.layers:
                x = layer.forward(x)
            self._validated.add(key)
        self._output_shape = tuple(x.shape)
        return x

    def backward(
        self, loss_gradient: Array, learning_rate: float | None = None, *, input_gradient: bool = True
    ) -> Array | None:
        """Backpropagate ``dE/dY`` (device array, the shape of the last forward's output) through
        the layers in reverse (eq. 5); each stores ``dE/dW`` (eq. 4).  Returns ``dE/dX``.  With
        ``learning_rate`` every parameter then takes the notes' plain step (eq. 1), as
        ``Layer.backward`` does.

        With ``input_gradient=False`` (what ``fit`` does) ``dE/dX`` of the model's input is not
        wanted: the layers before the first one with parameters are not run backward, that
        layer skips its own ``dE/dX`` (``Layer.backward(..., input_gradient=False)``; for a
        convolution about a third of its backward), and ``None`` is returned.  The parameter
        gradients are the same."""
        self._check_device_input(loss_gradient, "loss_gradient", "backward")
        if self._output_shape is None:
            raise RuntimeError("Sequential.backward: backward() was called before forward().")
        if tuple(loss_gradient.shape) != self._output_shape:
            raise ValueError(
                f"Sequential.backward: expected loss_gradient of shape {self._output_shape} (the last "
                f"forward output), received {tuple(loss_gradient.shape)}."
            )
        received = backend.dtype_name(loss_gradient.dtype)
        if received != self.dtype:
            raise TypeError(
                f"Sequential.backward: loss_gradient has dtype {received} but the model is {self.dtype}."
            )
        layers = self.layers
        stop = (
            0 if input_gradient else next((i for i, la in enumerate(layers) if la.param_names), len(layers))
        )
        for layer in layers[stop:]:
            if layer._input is None:
                raise RuntimeError(f"{layer.label}: backward() was called before forward().")
        if learning_rate is not None:  # checked first: bad input changes nothing
            learning_rate = positive(learning_rate, "learning_rate", "Sequential.backward")
        with self.placement.activate():
            dx = self._chain_backward(loss_gradient, input_gradient)
            if learning_rate is not None:
                descend_layers(self._leaves, learning_rate)
        return dx

    # ------------------------------------------------- as a layer inside another model
    def _forward(self, xp, x):
        return self._chain_forward(x)

    def _backward(self, xp, output_gradient, input_gradient: bool):
        return self._chain_backward(output_gradient, input_gradient)

    def check_input_shape(self, input_shape: tuple) -> None:
        self.output_shape(input_shape)

    child_slots = ("layers",)

    def _set_index(self, index) -> None:
        self.index = index
        for i, layer in enumerate(self.layers):
            layer._set_index(i if index is None else f"{index}.{i}")

    def children(self) -> dict:
        return {"layers": list(self.layers)}

    @classmethod
    def from_children(cls, config: dict, children: dict) -> Sequential:
        if config:  # save writes {}: anything else is not a file xpcnn wrote
            raise ValueError(f"a nested Sequential has no configuration, found {sorted(config)}")
        return cls(children["layers"])

    def config(self) -> dict:
        return {}

    def _chain_backward(self, gradient, input_gradient: bool = True):
        """The trusted backward chain (the gradient comes from a loss or from the layers)."""
        layers = self.layers
        stop = 0
        if not input_gradient:  # nothing before the first layer with parameters is needed
            stop = next((i for i, layer in enumerate(layers) if layer.param_names), len(layers))
            if stop == len(layers):  # nothing to train: dE/dX was the only result
                return None
        xp = self.placement.xp
        for i in range(len(layers) - 1, stop - 1, -1):
            gradient = layers[i]._backward(xp, gradient, input_gradient or i > stop)
        return gradient if input_gradient else None

    # ------------------------------------------------------------- one step
    def compile(self, loss=None, optimizer=None, metrics=None) -> Sequential:
        """Set the loss, the optimizer and the metrics that :meth:`train_step`, ``fit`` and
        ``evaluate`` use by default (names or objects, as ``fit`` takes them).  Returns self."""
        if loss is not None:
            self.loss = self._resolve_loss(loss)
        if optimizer is not None:
            optimizer = optim.get(optimizer)
            optimizer.check_owner(self._leaves, "compile")
            self.optimizer = optimizer
        if metrics is not None:
            self.metrics = self._resolve_metrics(metrics)
        return self

    def train_step(self, x_batch: Array, y_batch: Array) -> Array:
        """One step of mini-batch gradient descent on a batch already on the model's device:
        forward, the loss ``E`` and ``dE/dY``, backward (no ``dE/dX`` of the data), optimizer
        step (notes section 2, eq. 1-5).  Returns ``E`` as a 0-d device array (nothing is read
        back to the host on a GPU).  The update is applied only where ``E`` is finite: a NaN or
        infinite loss leaves the parameters and the optimizer state as they were (on the CPU,
        where reading ``E`` costs nothing, the step is skipped; on a GPU the update is masked on
        the device; either way the optimizer counts the step).

        Uses the loss and optimizer of :meth:`compile` (or of the last ``fit``), in training
        mode (the layers' modes are put back after).  ``fit`` is the loop around this step; a
        custom loop calls it directly."""
        self._check_device_input(x_batch, "x_batch", "train_step")
        self._check_device_input(y_batch, "y_batch", "train_step")
        if self.loss is None or self.optimizer is None:
            raise ValueError(
                "Sequential.train_step: no loss or optimizer; call model.compile(loss=..., optimizer=...) "
                "first (fit sets them too)."
            )
        value_and_gradient = _value_and_gradient(self.loss)
        with contextlib.nullcontext() if self.training else self._mode(True):  # no walk per step
            if self.placement.is_cuda:
                with self.placement.activate():
                    return self._train_step(x_batch, y_batch, value_and_gradient, self.placement.xp.isfinite)[
                        0
                    ]
            try:
                return self._train_step(x_batch, y_batch, value_and_gradient, _host_check)[0]
            except _NonFinite as bad:
                self.optimizer.iterations += 1  # counted, as the masked step on a GPU is
                return bad.loss

    def _train_step(self, x, y, value_and_gradient, check):
        """The step itself.  ``check(E)`` is the non-finite policy: it returns ``None`` (apply
        the update) or a device boolean that masks it, or raises before anything changes."""
        prediction = self._chain_forward(x)  # eq. 6-7, 12, 17: each layer's forward, in order
        value, gradient = value_and_gradient(prediction, y)  # E and dE/dY
        mask = check(value)
        self._chain_backward(gradient, input_gradient=False)  # eq. 4-5; dE/dX of the data is unused
        self.optimizer.step(self._leaves, mask=mask)  # eq. 1, or one of its refinements
        return value, prediction

    # -------------------------------------------------------------- resolving
    def _resolve_loss(self, loss):
        if loss is None:
            if self.loss is None:
                raise ValueError(
                    "Sequential: no loss given. Pass loss=..., e.g. loss='quadratic' or "
                    "loss=xpcnn.SoftmaxCrossEntropy()."
                )
            return self.loss
        if not isinstance(loss, (str, type)) and callable(loss) and callable(getattr(loss, "gradient", None)):
            return loss
        return _losses.get(loss)

    def _resolve_metrics(self, metrics) -> dict:
        if metrics is None:
            return dict(self.metrics)
        if isinstance(metrics, (str, dict)) or callable(metrics):
            metrics = [metrics] if not isinstance(metrics, dict) else metrics
        if isinstance(metrics, dict):
            items = list(metrics.items())
        else:
            items = []
            for m in metrics:
                if isinstance(m, str):
                    items.append((m.strip().lower(), m))
                elif isinstance(m, type):  # a class: resolved now, named like its instances
                    m = _losses.get(m, kind="metric")
                    items.append((_snake(m.name), m))
                elif isinstance(m, _losses.Loss):
                    items.append((_snake(m.name), m))
                else:
                    items.append((getattr(m, "__name__", _snake(type(m).__name__)), m))
        resolved = {}
        for name, m in items:
            if isinstance(m, (str, type)):
                m = _losses.get(m, kind="metric")
            if not callable(m):
                raise TypeError(f"Expected a metric name or a function (prediction, target). Received {m!r}.")
            resolved[name] = m
        return resolved

    def _source(self, data, what: str, where: str, target: bool, stage: bool = False) -> DataSource:
        return DataSource(
            data, self.placement, what=what, where=where, dtype=self.dtype, target=target, stage=stage
        )

    def _pair(self, x, y, where: str, prefix: str = "", stage: bool = False):
        xs = self._source(x, prefix + "x", where, target=False, stage=stage)
        ys = self._source(y, prefix + "y", where, target=True, stage=stage)
        if len(xs) != len(ys):
            raise ValueError(
                f"{where}: {prefix}x and {prefix}y must have the same number of samples. Received "
                f"{len(xs)} and {len(ys)} ({prefix}x shape {xs.shape}, {prefix}y shape {ys.shape})."
            )
        if len(xs) == 0:
            raise ValueError(f"{where}: {prefix}x has no samples (shape {xs.shape}); nothing to do.")
        return xs, ys

    # --------------------------------------------------------------- predict
    def predict(self, x, batch_size: int = 256, steps: int | None = None) -> Array:
        """The network's output for ``x`` (host or device data, batch axis first), computed
        ``batch_size`` samples at a time; or for a data source (see :meth:`fit`), whose items
        may be inputs alone or ``(x, y)`` pairs (``y`` is not used), ``steps`` batches of an
        iterable (default: all it gives).  Returns a device array on the model's placement
        (``xpcnn.to_host(...)`` gives a NumPy array)."""
        batch_size = integer(batch_size, "batch_size", 1, where="predict")
        feed = self._feed(x, None, "predict", steps=steps, targets=False)
        with self.placement.activate(), self._mode(False):
            outputs = [self._chain_forward(xb) for xb, _ in _batches(feed, batch_size)]
            if not outputs:  # no samples: an empty batch through the layers
                if feed.kind != "arrays":
                    raise ValueError("predict: the data source gave no batch.")
                return self._chain_forward(feed.xs.take(slice(0, 0)))
            return outputs[0] if len(outputs) == 1 else self.placement.xp.concat(outputs, axis=0)

    # -------------------------------------------------------------- evaluate
    def evaluate(
        self, x, y=None, loss=None, metrics=None, batch_size: int = 256, steps: int | None = None
    ) -> dict:
        """``{"loss": mean loss, <metric>: mean value, ...}`` over ``(x, y)`` (host or device
        data, or a data source as :meth:`fit` takes it, with ``y=None``), as Python floats.
        ``loss`` and ``metrics`` default to those of the last ``fit``; batch values are
        weighted by batch size and summed on the device (one read at the end)."""
        batch_size = integer(batch_size, "batch_size", 1, where="evaluate")
        if loss is None and self.loss is None and not (metrics or self.metrics):
            raise ValueError("evaluate: no loss and no metrics to compute; pass loss=... or metrics=[...].")
        loss = self._resolve_loss(loss) if (loss is not None or self.loss is not None) else None
        metrics = self._resolve_metrics(metrics)
        return self._evaluate(self._feed(x, y, "evaluate", steps=steps), loss, metrics, batch_size)

    def _evaluate(self, feed, loss, metrics: dict, batch_size: int, prefix: str = "", comm=None) -> dict:
        sums = {} if loss is None else {"loss": 0.0}
        sums.update({name: 0.0 for name in metrics})
        value = loss
        if loss is not None and feed.kind == "arrays":
            value = self._checked_targets(loss, feed.xs, feed.ys, "evaluate", value_only=True)
        seen = 0
        with self.placement.activate(), self._mode(False):
            for xb, yb in _batches(feed, batch_size, comm):
                prediction = self._chain_forward(xb)
                size = int(xb.shape[0])
                seen += size
                if value is not None:
                    sums["loss"] = sums["loss"] + value(prediction, yb) * size
                for name, metric in metrics.items():
                    sums[name] = sums[name] + metric(prediction, yb) * size
        if comm is not None:  # weighted sums over the ranks' shares
            seen, *totals = comm.allreduce_floats([seen, *sums.values()])
            sums = dict(zip(sums, totals, strict=True))
        if seen == 0:
            raise ValueError(
                f"{'fit (validation)' if prefix else 'evaluate'}: the data source gave no batch."
            )
        return {prefix + k: float(v) / seen for k, v in sums.items()}  # one read per key

    # --------------------------------------------------------------- data
    def _feed(self, x, y, where: str, *, prefix: str = "", stage: bool = False, steps=None, targets=True,
              steps_name: str = "steps"):  # fmt: skip
        """``x`` (and ``y``) as one ArrayPair or SourcePair (:mod:`xpcnn.data`)."""
        if is_source(x):
            if y is not None:
                raise TypeError(
                    f"{where}: {prefix}x is a data source, which gives (x, y) itself; received {prefix}y too "
                    f"({type(y).__name__}). Pass y=None."
                )
            return SourcePair(x, self.placement, where=where, dtype=self.dtype, steps_per_epoch=steps,
                              targets=targets, steps_argument=steps_name)  # fmt: skip
        if steps is not None:
            raise TypeError(
                f"{where}: {steps_name} applies to an iterable of batches or a BatchSequence, not to arrays. "
                f"Received {steps_name}={steps!r}."
            )
        if targets and y is None:
            raise TypeError(
                f"{where}: expected {prefix}y (the targets) with array {prefix}x; y may be left out only when x "
                "is a data source giving (x, y) pairs."
            )
        if not targets:
            return ArrayPair(self._source(x, prefix + "x", where, target=False, stage=stage), None)
        return ArrayPair(*self._pair(x, y, where, prefix=prefix, stage=stage))

    def _split(self, x, y, validation_split, validation_data, steps_per_epoch):
        """``fit``'s training feed and validation feed (or None)."""
        if (
            isinstance(validation_split, bool)
            or not isinstance(validation_split, (int, float))
            or not (0 <= validation_split < 1)
        ):
            raise ValueError(
                f"fit: expected validation_split in [0, 1). Received validation_split={validation_split!r}."
            )
        if validation_split and validation_data is not None:
            raise ValueError("fit: give validation_data or validation_split, not both.")
        if validation_data is not None:
            if is_source(validation_data):
                val = self._feed(validation_data, None, "fit (validation_data)")
            elif not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                kind = type(validation_data).__name__
                if isinstance(validation_data, (tuple, list)):
                    kind = f"a {kind} of {len(validation_data)} item(s)"
                raise ValueError(
                    f"fit: expected validation_data=(x_val, y_val) or a data source. Received {kind}."
                )
            else:
                val = self._feed(*validation_data, "fit", prefix="val_")
            return self._feed(
                x, y, "fit", stage=True, steps=steps_per_epoch, steps_name="steps_per_epoch"
            ), val
        if not validation_split:
            return self._feed(
                x, y, "fit", stage=True, steps=steps_per_epoch, steps_name="steps_per_epoch"
            ), None
        train = self._feed(x, y, "fit", steps=steps_per_epoch, steps_name="steps_per_epoch")
        if train.kind not in ("arrays", "samples"):
            raise ValueError(
                "fit: validation_split takes the last samples of arrays or of a data set with __len__ and "
                "__getitem__; give validation_data for a source read batch by batch."
            )
        n = len(train)
        cut = int(n * (1 - validation_split))  # Keras's rule: the last fraction, before any shuffling
        if cut < 1 or cut == n:
            raise ValueError(
                f"fit: validation_split={validation_split} of {n} samples leaves {cut} for training and "
                f"{n - cut} for validation; both need at least one."
            )
        if train.kind == "samples":
            source = train.source
            pieces = [SourcePair(source, self.placement, where=w, dtype=self.dtype, indices=r)
                      for w, r in (("fit", range(cut)), ("fit (validation_split)", range(cut, n)))]  # fmt: skip
            return pieces[0], pieces[1]
        xs, ys = train.xs.array, train.ys.array
        return (
            self._feed(xs[:cut], ys[:cut], "fit", stage=True),
            self._feed(xs[cut:], ys[cut:], "fit", prefix="val_"),
        )

    # ------------------------------------------------------------------- fit
    def fit(
        self,
        x,
        y=None,
        loss=None,
        optimizer=None,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        seed=None,
        validation_data=None,
        callbacks=None,
        metrics=None,
        progress=True,
        on_nonfinite: str = "raise",
        verbose=None,
        steps_per_sync: int | None = None,
        initial_epoch: int = 0,
        resume_from=None,
        validation_split: float = 0.0,
        steps_per_epoch: int | None = None,
        distributed=None,
    ) -> History:
        """Train with mini-batch gradient descent; return a :class:`History`.

        Args:
            x, y: training inputs ``(N, ...)`` and targets ``(N, ...)``: host (NumPy) arrays,
                copied to the device one batch at a time (on a GPU: copied whole, once, when
                they fit :data:`xpcnn.data.STAGE_BYTES`), or arrays already on the model's
                device.  ``x`` must have the model's dtype; ``y`` too, or integer class labels.
                Or ``x`` alone is a data source (:class:`xpcnn.data.SourcePair` says how each is
                read; a numpy.memmap is an array and is read batch by batch already): a data set
                with ``__len__`` and ``__getitem__`` giving ``(x, y)`` samples (batched and
                shuffled as arrays of its length would be), a
                :class:`~xpcnn.data.BatchSequence` of batches, or an iterable of ``(x, y)``
                batches (see ``steps_per_epoch``); each batch is checked as it comes.
            loss: a :class:`~xpcnn.losses.Loss` or a name (``"quadratic"``, ``"mse"``,
                ``"binary_crossentropy"``, ``"softmax_crossentropy"``, ...); defaults to the
                previous fit's (or :meth:`compile`'s).
            optimizer: an :class:`~xpcnn.optim.Optimizer` or a name (``"sgd"``, ``"momentum"``,
                ``"adam"``, ``"adamw"``); defaults to the previous fit's, else ``SGD(0.01)``.
                Its state persists across calls (``optimizer.reset()`` clears it).
            epochs: passes over the data (0 trains nothing).
            batch_size: samples per step; the last batch holds the remainder.
            shuffle, seed: a new permutation per epoch from ``numpy.random.default_rng(seed)``
                (an int, a Generator or None); one seed, one sequence of batches.
            validation_data: ``(x_val, y_val)`` or a data source, evaluated after each epoch
                (``val_*`` logs).
            validation_split: a fraction in [0, 1): the last samples of ``x`` and ``y`` (before
                any shuffling, as in Keras) are held out and used as ``validation_data``.
            steps_per_epoch: batches an epoch from an iterable data source, drawn from one
                iterator that runs on across epochs (Keras's rule); without it each epoch is one
                full pass over the iterable (a new ``iter()``).
            callbacks: a :class:`~xpcnn.callbacks.Callback` or a list of them.
            metrics: names (``"accuracy"``), losses or functions ``(prediction, target)``, or a
                dict name -> metric; averaged over each epoch's batches as they are trained.
            progress: ``True`` a tqdm bar (a line per epoch without tqdm), ``"line"``,
                ``False`` silent.  ``verbose`` is an alias.
            on_nonfinite: ``"raise"`` (:class:`NonFiniteLossError` naming the epoch, the batch
                and the value) or ``"stop"`` (end training quietly; ``history.stop_reason``
                says why).  Either way no update of that batch, or of any later one, is applied.
            steps_per_sync: batches between two reads of the losses by the host (Keras's
                ``steps_per_execution``).  ``None``: 1 on the CPU, where a read costs nothing,
                :data:`CUDA_STEPS_PER_SYNC` on a GPU, where each read waits for the device.
            initial_epoch: the epoch to start at (Keras's convention: ``epochs`` is the index of
                the last epoch plus one, so ``fit(..., epochs=10, initial_epoch=5)`` trains 5
                epochs, numbered 5 to 9).  With an integer ``seed`` the shuffle generator first
                draws the permutations of the epochs skipped, so a run continued from a
                checkpoint with the same seed sees the batches the uninterrupted run saw.
            resume_from: a checkpoint path: its weights, running statistics, optimizer state
                (loaded into ``optimizer`` when one is given, which must have the saved class
                and hyperparameters), loss and metrics (where not given) and progress (the
                epoch and batch reached, the shuffle generator, the history, the partial
                epoch sums) are put back into this model (same architecture, checked) and
                training goes on from there to ``epochs``; ``seed`` is then not used.  A
                :class:`~xpcnn.callbacks.BackupAndRestore` callback does the same with its
                backup file when there is one.
            distributed: a communicator of :mod:`xpcnn.distributed` (``mpi()`` in an MPI job,
                ``single()``): data-parallel training, ``batch_size`` the global batch, each
                rank training on its share of every batch with the gradients combined exactly
                (eq. 34); the progress bar and file writes on rank 0 only.

        Every batch is one :meth:`train_step`.  The losses stay on the device and are read
        every ``steps_per_sync`` batches (and at the end of each epoch), in one transfer; the
        batch callbacks (``on_batch_end``, the progress bar) then run for those batches, in
        order.  The non-finite check is done on the device in between: each step's update is
        masked by a flag that turns False at the first non-finite loss and stays False until
        the read, so the parameters and the optimizer state after the read are exactly those
        after the last finite batch, and the error names the batch that caused it.  With one
        step per read the check is on the host and the masks are skipped.  Class labels are
        checked against the number of outputs once, on the whole ``y``, before the first step.
        """
        if verbose is not None:
            progress = verbose
        if on_nonfinite not in ("raise", "stop"):
            raise ValueError(
                f'Expected on_nonfinite "raise" or "stop". Received on_nonfinite={on_nonfinite!r}.'
            )
        epochs = integer(epochs, "epochs", 0, where="fit")
        batch_size = integer(batch_size, "batch_size", 1, where="fit")
        if steps_per_sync is None:
            steps_per_sync = CUDA_STEPS_PER_SYNC if self.placement.is_cuda else 1
        steps_per_sync = integer(steps_per_sync, "steps_per_sync", 1, where="fit")
        initial_epoch = integer(initial_epoch, "initial_epoch", 0, where="fit")
        comm = dist.check_communicator(distributed, "fit")
        if comm is not None and comm.rank != 0:
            progress = False  # one progress bar, on rank 0
        callbacks = _callback_list(callbacks)
        backups = [c for c in callbacks if isinstance(c, cb.BackupAndRestore)]
        if len(backups) > 1:
            raise ValueError(f"fit: expected at most one BackupAndRestore callback. Received {len(backups)}.")
        backup = backups[0] if backups else None
        source = resume_from if resume_from is not None else (backup.backup_path() if backup else None)
        if source is None:  # (a resumed run may take its loss from the checkpoint)
            loss = self._resolve_loss(loss)
        train, val = self._split(x, y, validation_split, validation_data, steps_per_epoch)
        reached = planned = None
        if source is not None:  # checked now, applied once every other check has passed
            if not self.built:
                self.build(train.sample_shape())
            given = optim.get(optimizer) if optimizer is not None else self.optimizer
            planned = resume.plan(self, source, given, "fit")
            reached = planned.progress
            loss = self._resolve_loss(loss if loss is not None else (self.loss or planned.loss))
            optimizer = planned.optimizer or given
            if metrics is None and not self.metrics and planned.metrics:
                metrics = planned.metrics
        if getattr(loss, "differentiable", True) is False:
            raise ValueError(
                f"fit: {loss!r} is a metric without a gradient; train with a differentiable loss."
            )
        if optimizer is None:
            optimizer = self.optimizer if self.optimizer is not None else optim.SGD(0.01)
        optimizer = optim.get(optimizer)
        if planned is None:  # (a resumed optimizer gets the checkpoint's state, bound to these layers)
            optimizer.check_owner(self._leaves, "fit")
        metrics = self._resolve_metrics(metrics)
        value_and_gradient = _value_and_gradient(loss)  # a data source's batches are checked one by one
        if train.kind == "arrays":
            value_and_gradient = self._checked_targets(loss, train.xs, train.ys, "fit", metrics=metrics)
        if train.kind in ("arrays", "samples"):
            self._check_batch_statistics(len(train), batch_size)
        if val is not None and val.kind == "arrays":
            self._checked_targets(
                loss, val.xs, val.ys, "fit (validation_data)", value_only=True, metrics=metrics
            )
        n = None if train.kind == "iterable" else len(train)
        steps = train.steps(batch_size)
        if reached is not None:
            _check_resume(reached, initial_epoch, n, batch_size, steps)
        if planned is not None:
            planned.apply()
        if comm is not None:  # the same batches, model and state on every rank
            seed = dist.prepare(comm, self, optimizer, train, seed, "fit")
        start = _start(reached, initial_epoch, seed, shuffle and train.kind != "iterable", n)
        rng, history = start.rng, start.history
        self.loss, self.optimizer, self.metrics = loss, optimizer, metrics
        if train.kind != "iterable":
            self.input_shape = train.sample_shape()

        for c in callbacks:
            if isinstance(c, cb.ReduceLROnPlateau):
                c.adopt(optimizer)
        plateau = schedules.find_plateau(optimizer.schedule)
        if plateau is not None and not any(getattr(c, "schedule", None) is plateau for c in callbacks):
            callbacks.append(cb.ReduceLROnPlateau(schedule=plateau))
        if progress and not any(isinstance(c, cb.ProgressBar) for c in callbacks):
            callbacks.append(cb.ProgressBar("line" if progress == "line" else "auto"))
        logged = ["loss", *metrics, "learning_rate"]
        if val is not None:
            logged += ["val_loss", *(f"val_{name}" for name in metrics)]
        for c in callbacks:
            c.set_model(self)
            c.params = {"epochs": epochs, "batches": steps, "samples": n, "logs": logged}
        loop = _EpochLoop(self, callbacks, value_and_gradient, metrics, steps_per_sync, on_nonfinite)
        loop.backup, loop.history, loop.sizes = backup, history, (n, batch_size)
        loop.comm = comm

        self.history = history
        self.distributed = comm
        self.stop_training, self.stop_reason = False, None
        for c in callbacks:
            c.on_train_begin({})
        with self._mode(True):
            try:
                for epoch in range(start.epoch, epochs):
                    loop.epoch_rng = init.rng_state(rng)  # before this epoch's permutation
                    for c in callbacks:
                        c.on_epoch_begin(epoch, {})
                    skip = start.batch if epoch == start.epoch else 0
                    indices = train.epoch(batch_size, shuffle, rng)
                    logs = loop.run(epoch, epochs, train, indices, steps, skip, start.partial if skip else {})
                    if logs is None:  # a non-finite loss with on_nonfinite="stop"
                        history.stop_reason = loop.stop_reason
                        self.stop_training = True
                        break
                    if val is not None:
                        logs.update(self._evaluate(val, loss, metrics, batch_size, prefix="val_", comm=comm))
                    logs["learning_rate"] = optimizer.last_learning_rate
                    history.append(epoch, logs)
                    self.fit_state = loop.fit_state(epoch + 1, 0, init.rng_state(rng), {})
                    for c in callbacks:
                        c.on_epoch_end(epoch, logs)
                    if backup is not None:
                        backup.write(self)
                    if self.stop_training:
                        break
                if self.stop_training and history.stop_reason is None:
                    history.stop_reason = self.stop_reason or "a callback set model.stop_training"
                if backup is not None:
                    backup.finished()
            finally:
                self.distributed = None
                for c in callbacks:
                    c.on_train_end({})
        return history

    def _checked_targets(self, loss, xs, ys, where: str, value_only: bool = False, metrics=None):
        """Check the whole ``y`` against the loss once (class labels against the number of
        outputs, target values); returns the per-batch ``value_and_gradient`` (or, with
        ``value_only``, the value alone) that can then skip that check (a device read per batch
        on a GPU).  With ``metrics``, the loss and each metric also run once on one sample of
        ``y`` against a stand-in prediction of the model's output shape, so that a metric that
        cannot read these targets (or outputs) fails here, before any step changes the model."""
        unchecked = loss if value_only else _value_and_gradient(loss)
        try:
            outputs = self.output_shape(xs.shape[1:])
        except Exception:  # the shapes do not chain: the first batch's forward names the layer
            return unchecked
        with self.placement.activate():
            check = getattr(loss, "check_targets", None)
            if check is not None:
                check(ys.array, outputs, where)
            if metrics:
                stand_in = self.placement.zeros((1, *outputs), self.dtype) + 0.5
                first = ys.take(slice(0, 1))
                for name, metric in metrics.items():
                    try:
                        metric(stand_in, first)
                    except (TypeError, ValueError) as exc:
                        kind = TypeError if isinstance(exc, TypeError) else ValueError
                        raise kind(
                            f"{where}: metric {name!r} cannot be computed on the model's outputs "
                            f"{(len(ys), *outputs)} and y {ys.shape}: {exc}"
                        ) from exc
        if check is None:
            return unchecked
        return loss.trusted_value if value_only else loss.trusted_value_and_gradient

    def _check_batch_statistics(self, n: int, batch_size: int) -> None:
        """A BatchNorm over (N, C) inputs cannot take statistics of a one-sample batch: refuse
        such a run before its first step rather than in the middle of an epoch."""
        sizes = {min(batch_size, n), n % batch_size or batch_size}
        for leaf in self.leaves():
            if getattr(leaf, "values_per_sample", None) == 1 and 1 in sizes:
                raise ValueError(
                    f"fit: {leaf.label} would see a batch of one sample (n={n}, batch_size={batch_size}), "
                    "which has no batch statistics; choose a batch_size that leaves no single-sample batch."
                )

    def output_shape(self, input_shape) -> tuple:
        """The per-sample output shape of the model for a per-sample ``input_shape``; raises
        ``ValueError`` naming the first layer whose input rules the shape before it breaks."""
        shape = tuple(input_shape)
        for layer in self.layers:
            layer.check_input_shape(shape)
            shape = tuple(layer.output_shape(shape))
        return shape

    # --------------------------------------------------------------- summary
    def _first_input_shape(self):
        first = self.layers[0]
        inner = getattr(first, "_first_input_shape", None)
        if inner is not None:  # a block: its own first layer tells
            return inner()
        for attr in ("input_shape",):
            shape = getattr(first, attr, None)
            if shape is not None:
                return tuple(shape)
        size = getattr(first, "input_size", None)
        return (size,) if size is not None else None

    def summary(self, input_shape=None, file=None) -> str:
        """A table of the layers, their output shapes (``N`` = batch) and parameter counts, with
        the total.  ``input_shape`` (one sample's) defaults to the shape of the data last seen by
        ``fit`` / ``predict``, else the first layer's declared input.  Prints it (to ``file``,
        default stdout) and returns the text.  Raises ``ValueError`` naming the first layer
        that the shape before it does not fit."""
        shape = input_shape or self.input_shape or self._first_input_shape()
        shape = tuple(shape) if shape is not None else None
        rows = []
        for i, layer in enumerate(self.layers):
            if shape is not None:
                layer.check_input_shape(shape)  # a mismatch raises, naming the layer and both sizes
                shape = tuple(layer.output_shape(shape))
            shown = "(N, " + ", ".join(str(s) for s in shape) + ")" if shape is not None else "?"
            count = f"{layer.parameter_count():,}" if layer.built else "?"
            rows.append((str(i), type(layer).__name__, shown, count))
        header = ("#", "Layer", "Output shape", "Parameters")
        widths = [max(len(r[k]) for r in [header, *rows]) for k in range(4)]

        def line(r):
            return (
                f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}".rstrip()
            )

        rule = "-" * len(line(header))
        text = "\n".join(
            [
                f"Sequential on {self.placement.name}, {self.dtype}",
                line(header),
                rule,
                *(line(r) for r in rows),
                rule,
                f"Total parameters: {self.parameter_count():,}"
                if self.built
                else "Total parameters: ? (sizes inferred from the data: pass summary(input_shape=...))",
            ]
        )
        print(text, file=file or sys.stdout)
        return text


def load(path: str | os.PathLike, device: DeviceLike = "cpu") -> Sequential:
    """Load a checkpoint written by :func:`xpcnn.save` onto ``device`` (``"cpu"``, ``"cuda"``, a
    :class:`~xpcnn.backend.Placement`).

    Returns a ``Sequential`` whose parameters are bit-identical to the saved ones; a file saved
    with its training state (``save(..., include_optimizer=True)``, the default for a compiled
    or fitted model) also gives back its ``loss``, ``metrics``, ``optimizer`` (with every state
    array and its step count), ``progress`` and ``history``, so that ``fit`` continues the
    run (``fit(..., initial_epoch=...)`` or ``fit(..., resume_from=path)``).  The file is
    fully validated first (:mod:`xpcnn.checkpoint`); any problem raises
    :class:`~xpcnn.checkpoint.CheckpointError` naming the path and the reason.  An unavailable
    ``device`` raises as ``placement`` does.
    """
    place = backend.placement(device)
    content, layers, extra = checkpoint.load_layers(path)
    model = Sequential(layers, device=place, dtype=content.dtype)
    if content.training is not None:
        parts = checkpoint.restore_training(path, content.training, extra, model.leaves())
        model.loss, model.optimizer = parts["loss"], parts["optimizer"]
        model.metrics = parts["metrics"] or {}
        model.fit_state = parts["progress"]
        if model.fit_state is not None:
            model.history = History.from_dict(model.fit_state["history"])
    return model


def _value_and_gradient(loss):
    """``loss.value_and_gradient``, or its two halves for a loss object of one's own."""
    both = getattr(loss, "value_and_gradient", None)
    return both if both is not None else (lambda p, t: (loss(p, t), loss.gradient(p, t)))
