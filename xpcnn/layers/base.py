"""The Layer base class (notes section 2.1).

A layer is a function with a ``forward`` pass ``Y = layer(X)`` and a ``backward`` pass
that, given ``dE/dY``, returns ``dE/dX`` (eq. 5) and stores ``dE/dW`` for each trainable
parameter ``W`` (eq. 4).  All arrays are batched along axis 0.

Validation happens once, at the public edge: :meth:`Layer.forward` and :meth:`Layer.backward`
check their arguments and then call the trusted ``_forward(xp, x)`` and
``_backward(xp, output_gradient, input_gradient)`` that a subclass implements.
``Sequential`` checks a model's input once and then runs the trusted entries of the chain.

Parameters are created on the host from a seeded ``numpy.random.Generator`` (through
:mod:`xpcnn.init`), so one seed gives one model on every backend, and are moved with
:meth:`Layer.to`.
"""

from __future__ import annotations

import math

from .. import _validate, backend, descent
from ..backend import Array, DeviceLike

REGISTRY: dict[str, type[Layer]] = {}


def register(cls):
    """Add a layer class to the fixed registry used by checkpoints (no code from files)."""
    REGISTRY[cls.__name__] = cls
    return cls


def shown(batch: int | None, sample: tuple) -> str:
    """A batched shape as messages show it: ``(64, 1, 28, 28)``, or ``(N, 1, 28, 28)``."""
    parts = ["N" if batch is None else str(batch), *map(str, sample)]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def single_sample_hint(batch: int | None, sample: tuple, expected: tuple) -> str:
    """The hint for one sample passed without its batch axis (``x[0]`` instead of ``x[:1]``)."""
    if batch is not None and (batch, *sample) == tuple(expected):
        return " Hint: this looks like one sample without its batch axis; pass x[None] (or x[i:i+1])."
    return ""


class Layer:
    """Base class: parameter bookkeeping, placement, input checks and the gradient step.

    Subclasses set ``param_names`` and implement ``_forward(xp, x)`` (storing what backward
    needs, at least ``self._input = x``), ``_backward(xp, output_gradient, input_gradient)``
    (returning ``dE/dX``, or ``None`` when ``input_gradient`` is False and the layer can skip
    it, and filling ``self.grads``), ``config`` and, where the shape changes,
    ``output_shape``; ``_check_sample_shape(sample, received)`` adds the layer's own rules on
    one sample's shape (used for arrays and for shapes alone, as in ``summary()``), and
    ``parameter_shapes(config)`` states the parameter shapes a configuration implies
    (checkpoints validate files against it before building anything).
    """

    param_names: tuple[str, ...] = ()
    #: A container's named lists of layers (``Sequential``: ``("layers",)``; ``Residual``:
    #: ``("block", "shortcut")``); empty for a layer that holds tensors itself.
    child_slots: tuple[str, ...] = ()
    #: Non-trainable arrays (running statistics): moved by ``to()``, saved in checkpoints,
    #: never touched by optimizers.
    state_names: tuple[str, ...] = ()
    #: Keys of ``config()`` that count training progress rather than describe the layer
    #: (``Dropout``: ``("steps",)``): a resumed run takes them from the checkpoint.
    progress_config: tuple[str, ...] = ()

    def __init__(self, *, dtype: str = "float32"):
        self.dtype = _validate.float_dtype(dtype, where=type(self).__name__)
        self.placement = backend.placement("cpu")
        self.grads: dict = {}
        self.index: int | str | None = None  # set by Sequential ("3" or "3.block.1"), for messages
        self._input = None
        self.training = True  # the mode: train() / eval()
        self.built = True  # False for a layer whose sizes are inferred from its first input

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Layer:
        """Training mode (``mode=True``, the default) or evaluation mode: ``Dropout`` and
        ``BatchNorm`` behave differently in each; the other layers do not care.  Returns self."""
        self.training = bool(mode)
        return self

    def eval(self) -> Layer:
        """Evaluation mode, ``train(False)``.  Returns self."""
        return self.train(False)

    # ------------------------------------------------------------ shape inference
    def build(self, input_shape: tuple) -> Layer:
        """Create the parameters for inputs of per-sample shape ``input_shape``, once (a layer
        whose sizes were all given is built at construction).  Parameters come from the seed
        given at construction, so ``Dense(10, seed=0)`` built for 4 inputs equals
        ``Dense(4, 10, seed=0)``, on every backend.  Returns self."""
        if not self.built:
            self._build(tuple(int(s) for s in input_shape))
            self.built = True
        return self

    def _build(self, input_shape: tuple) -> None:
        """Set the inferred sizes and create the parameters (on ``self.placement``, in
        ``self.dtype``); raise ``ValueError`` when ``input_shape`` cannot be this layer's input."""

    # ----------------------------------------------------------------- naming
    @property
    def label(self) -> str:
        """``"layer 2 (Dense)"`` inside a model, ``"Dense"`` alone: the prefix of every error."""
        name = type(self).__name__
        return name if self.index is None else f"layer {self.index} ({name})"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def config(self) -> dict:
        """The constructor arguments (JSON-serialisable) that rebuild this layer."""
        return {}

    @classmethod
    def parameter_shapes(cls, config: dict) -> dict[str, tuple[int, ...]]:
        """The shape of every parameter that ``cls(**config)`` creates, computed without creating
        anything (checkpoints check a file against it before any allocation).  Raises
        ``ValueError`` or ``TypeError`` for a configuration the constructor would refuse.

        The default covers layers without parameters; a layer with parameters must override it.
        """
        if cls.param_names:
            raise NotImplementedError(
                f"{cls.__name__} has parameters {list(cls.param_names)} but does not define the "
                "classmethod parameter_shapes(config)."
            )
        return {}

    # ------------------------------------------------------------- parameters
    def parameters(self) -> dict:
        """Trainable parameters, name -> array (the arrays themselves, not copies); empty
        until the layer is built."""
        if not self.built:
            return {}
        return {name: getattr(self, name) for name in self.param_names}

    def state(self) -> dict:
        """Non-trainable arrays (``state_names``: running statistics), name -> array."""
        if not self.built:
            return {}
        return {name: getattr(self, name) for name in self.state_names}

    def leaves(self) -> list:
        """The layers an optimizer steps: ``[self]``; a container (``Sequential``,
        ``Residual``) gives its layers', depth first."""
        return [self]

    def _set_index(self, index) -> None:
        """Set the position used in error messages (``"layer 3.block.1 (Dense)"``)."""
        self.index = index

    def children(self) -> dict:
        """A container's ``{slot: [layers]}`` (what checkpoints nest); ``{}`` for other layers."""
        return {}

    @classmethod
    def from_children(cls, config: dict, children: dict) -> Layer:
        """Rebuild a container from its ``config()`` and its ``children()`` (checkpoints)."""
        raise TypeError(f"{cls.__name__} is not a container")

    def tensors(self) -> dict:
        """Every array a checkpoint holds: :meth:`parameters` and :meth:`state`."""
        return {**self.parameters(), **self.state()}

    def gradients(self) -> dict:
        """``dE/dW`` per parameter from the last ``backward``, name -> array."""
        return dict(self.grads)

    def set_parameters(self, values: dict) -> None:
        """Replace parameters by copies of arrays of the same shapes and dtype (from any
        placement).  Every value is checked before any is replaced."""
        self._assign(values, self.parameters(), "parameter")

    def set_state(self, values: dict) -> None:
        """Replace non-trainable state (running statistics) as :meth:`set_parameters` does."""
        self._assign(values, self.state(), "state array")

    def set_tensors(self, values: dict) -> None:
        """Replace parameters and state at once (what a checkpoint holds)."""
        self._assign(values, self.tensors(), "tensor")

    def _assign(self, values, current: dict, kind: str) -> None:
        if not isinstance(values, dict):
            raise TypeError(
                f"{self.label}: set_{'parameters' if kind == 'parameter' else 'state'} expects a dict of "
                f"name -> array, received {type(values).__name__}."
            )
        if not self.built:
            raise RuntimeError(
                f"{self.label}: the layer is not built yet (its sizes come from its first input); "
                "build it first, e.g. with model.build(input_shape)."
            )
        unknown = set(values) - set(current)
        if unknown:
            raise KeyError(f"{self.label}: unknown {kind}(s) {sorted(unknown)}; it has {sorted(current)}.")
        for name, value in values.items():  # every value is checked before any is replaced
            if not backend.is_array(value):
                raise TypeError(
                    f"{self.label}: {kind} {name!r} must be an array, received {type(value).__name__}."
                )
            shape = tuple(current[name].shape)
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"{self.label}: {kind} {name!r} must have shape {shape}, received {tuple(value.shape)}."
                )
            received = backend.dtype_name(value.dtype)
            if received != self.dtype:
                raise TypeError(
                    f"{self.label}: {kind} {name!r} must have dtype {self.dtype}, received {received}; "
                    f"xpcnn never casts silently (convert it, or the layer with .to(dtype={received!r}))."
                )
        # copies: later changes to the caller's arrays must not change the layer
        new = {name: self.placement.asarray(backend.to_host(v), copy=True) for name, v in values.items()}
        for name, value in new.items():
            setattr(self, name, value)

    def parameter_count(self) -> int:
        return sum(math.prod(p.shape) for p in self.parameters().values())

    def to(self, device: DeviceLike = None, dtype: str | None = None) -> Layer:
        """Move (and optionally cast) the parameters: ``device`` is ``"cpu"``, ``"cuda"``, a
        :class:`~xpcnn.backend.Placement` or an array whose placement is taken.  Returns self."""
        target = self.placement if device is None else backend.placement(device)
        new_dtype = self.dtype if dtype is None else _validate.float_dtype(dtype, where=self.label)
        for name, value in self.tensors().items():
            setattr(self, name, target.asarray(backend.to_host(value), dtype=new_dtype))
        self.grads = {}
        self._input = None
        self.placement, self.dtype = target, new_dtype
        return self

    # ------------------------------------------------------------------ checks
    def _check_input(self, x):
        """Validate the forward input (array, floating, same placement and dtype); return xp."""
        expected = self.placement if self.param_names else None
        dtype = self.dtype if self.param_names else None
        return backend.check_array(x, "the input", self.label, expected, dtype)

    def _check_output_gradient(self, output_gradient, output_shape):
        xp = backend.check_array(output_gradient, "output_gradient", self.label)
        if tuple(output_gradient.shape) != tuple(output_shape):
            raise ValueError(
                f"{self.label}: expected output_gradient of shape {tuple(output_shape)} (the forward "
                f"output), received {tuple(output_gradient.shape)}."
            )
        got, expected = backend.placement_of(output_gradient), backend.placement_of(self._input)
        if got != expected:
            raise ValueError(
                f"{self.label}: output_gradient is on {got.name} but the forward input was on {expected.name}."
            )
        got, expected = backend.dtype_name(output_gradient.dtype), backend.dtype_name(self._input.dtype)
        if got != expected:
            raise TypeError(
                f"{self.label}: output_gradient has dtype {got}, the forward input had {expected}."
            )
        return xp

    # ------------------------------------------------------------- the passes
    def forward(self, x: Array) -> Array:
        """``Y = layer(X)`` for a batch ``x`` (validated here, then :meth:`_forward`); a layer
        that is not built yet is built for ``x``'s per-sample shape first."""
        xp = self._check_input(x)
        if not self.built and x.ndim >= 1:
            self.build(tuple(x.shape[1:]))
        self._check_shape(x)
        return self._forward(xp, x)

    def __call__(self, x):
        return self.forward(x)

    def _check_shape(self, x) -> None:
        """The input must be batched; then the layer's per-sample rules (:meth:`_check_sample_shape`)."""
        if x.ndim < 1:
            raise ValueError(
                f"{self.label}: expected a batch (samples along axis 0), received a 0-d array. "
                "Hint: add a batch axis, e.g. x[None]."
            )
        self._check_sample_shape(tuple(int(s) for s in x.shape[1:]), int(x.shape[0]))

    def check_input_shape(self, input_shape: tuple) -> None:
        """Raise ``ValueError`` naming the rule when one sample of shape ``input_shape`` cannot
        enter this layer (``Sequential`` checks a whole chain with it before any data).  A
        layer that is not built yet is built for it."""
        shape = tuple(int(s) for s in input_shape)
        self.build(shape)
        self._check_sample_shape(shape, None)

    def _check_sample_shape(self, sample: tuple, batch: int | None) -> None:
        """The layer's own rules on one sample's shape ``sample``, for a batch of ``batch``
        samples (``None``: a shape alone, shown as ``(N, ...)``).  None by default."""

    def _forward(self, xp, x):
        """The trusted forward pass on a validated ``x``; stores ``self._input``."""
        raise NotImplementedError

    def backward(
        self, output_gradient: Array, learning_rate: float | None = None, *, input_gradient: bool = True
    ) -> Array | None:
        """Return ``dE/dX`` given ``dE/dY`` (eq. 5); store ``dE/dW`` in ``self.grads`` (eq. 4).

        With ``learning_rate`` the plain gradient-descent step of the notes is applied:
        ``W <- W - learning_rate * dE/dW`` (eq. 1, :func:`xpcnn.descent.descend`, the rule
        ``SGD`` applies too).  With ``input_gradient=False`` the caller will not use
        ``dE/dX``: ``None`` is returned and a layer may skip computing it (``Convolutional``
        does: about a third of its backward); the parameter gradients are the same.
        """
        if self._input is None:
            raise RuntimeError(f"{self.label}: backward() was called before forward().")
        if learning_rate is not None:  # checked first: bad input changes nothing
            learning_rate = _validate.positive(learning_rate, "learning_rate", self.label)  # a Python float
        x = self._input
        expected = (x.shape[0], *self.output_shape(tuple(x.shape[1:])))
        xp = self._check_output_gradient(output_gradient, expected)
        input_gradient = bool(input_gradient)
        dx = self._backward(xp, output_gradient, input_gradient)
        if learning_rate is not None:
            descent.descend_layers(self.leaves(), learning_rate)  # a container's live in its layers
        return dx if input_gradient else None

    def _backward(self, xp, output_gradient, input_gradient: bool):
        """The trusted backward pass: fill ``self.grads`` and return ``dE/dX`` (or ``None`` when
        ``input_gradient`` is False and the layer skips it)."""
        raise NotImplementedError

    def output_shape(self, input_shape: tuple) -> tuple:
        """The per-sample output shape for a per-sample ``input_shape`` (default: unchanged)."""
        return tuple(input_shape)
