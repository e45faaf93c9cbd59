"""Optimizers: gradient descent (notes eq. 1 and section 2, step 3) and its refinements.

Every optimizer applies, once per batch, ``w <- update(w, dE/dw)`` to each trainable
parameter of each layer, reading ``layer.parameters()`` and ``layer.grads`` (filled by
the layer's ``backward``).  The :class:`Optimizer` base holds everything they share:
hyperparameter checks, the step counter ``t``, the learning-rate schedule, per-parameter
state (velocities, moments) keyed by ``(layer, name)`` and created on the parameter's own
device and dtype, moving that state with :meth:`Optimizer.to`.  A subclass only states its
update rule, in a few lines:

* :class:`SGD`: ``w <- w - gamma g`` (plain gradient descent, eq. 1); with momentum
  ``mu``: ``v <- mu v + g``, ``w <- w - gamma v`` (Nesterov: ``w <- w - gamma (g + mu v)``).
* :class:`Adam` (Kingma and Ba, 2015): ``m <- b1 m + (1 - b1) g``,
  ``v <- b2 v + (1 - b2) g^2``, ``w <- w - gamma m_hat / (sqrt(v_hat) + eps)`` with the bias
  corrections ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``.
* :class:`AdamW` (Loshchilov and Hutter, 2019): Adam plus a decoupled weight decay applied to
  the weights themselves, ``w <- w - gamma lambda w``, not added to the gradient.
* :class:`RMSProp` and :class:`Adagrad`: steps divided by a root mean square (running, or
  accumulated) of the gradients.

Every optimizer takes ``clip_norm=``: the step's gradients scaled to a global norm of at most
``clip_norm`` first.

Updates are array expressions in the parameters' own namespace (Python floats for the
scalars): no host round trip per step.  A parameter is replaced by a new array (the old
one is never written to), so arrays captured earlier keep their values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from . import backend
from ._validate import float_dtype, non_negative, positive, unit_interval
from .descent import descend
from .layers.base import Layer
from .schedules import Constant, Schedule, as_schedule, restore_state, to_config, without_state
from .schedules import from_config as schedule_from_config

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSProp", "from_config", "get"]


class Optimizer:
    """Base class: state, schedule and the loop over parameters; subclasses give ``_update``.

    Args:
        learning_rate: ``gamma``: a float > 0, a schedule from :mod:`xpcnn.schedules` or any
            callable ``t -> float``; ``t`` is the number of steps already taken.
        clip_norm: ``None``, or ``c > 0``: before each update every gradient is multiplied by
            ``min(1, c / (||g|| + 1e-6))``, ``||g||`` the global norm over all the step's
            gradients (PyTorch's ``clip_grad_norm_``), computed on the device, no host read.

    Attributes:
        iterations: ``t``, the number of :meth:`step` calls so far.
        state: ``{(layer, name): {slot: array}}``, each array on its parameter's device.
    """

    slots: tuple[str, ...] = ()  # names of the per-parameter state arrays

    def __init__(self, learning_rate, clip_norm: float | None = None):
        self.schedule = as_schedule(learning_rate, type(self).__name__)
        self.clip_norm = None if clip_norm is None else positive(clip_norm, "clip_norm", type(self).__name__)
        self.iterations = 0
        self.state: dict = {}
        self.last_learning_rate: float | None = None

    # -------------------------------------------------------------- learning rate
    @property
    def learning_rate(self) -> float:
        """The learning rate the next :meth:`step` will use, ``schedule(iterations)``."""
        return self.schedule(self.iterations)

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        """Replace the schedule (a float > 0, a schedule or a callable)."""
        self.schedule = as_schedule(value, type(self).__name__)

    # ----------------------------------------------------------------- the step
    def step(self, layers, *, mask=None) -> None:
        """Apply one update to every parameter of ``layers`` from their stored gradients.

        ``mask``: ``None``, or a 0-d boolean device array: where it is False the parameters and
        the state keep their values (``fit`` and ``train_step`` mask the update of a
        non-finite loss on the device, without reading it back); the step is counted either way.

        Raises ``RuntimeError`` when a parameter has no gradient (``backward`` not called) or
        when its state lives elsewhere than the parameter (the layer was moved without the
        optimizer: use ``model.to(...)``, which moves both, or :meth:`to`).  Everything is
        checked before any parameter changes.
        """
        name = type(self).__name__
        try:
            layers = list(layers)
        except TypeError:
            raise TypeError(
                f"{name}.step: expected a list of layers (e.g. model.layers), received "
                f"{type(layers).__name__}: {layers!r:.80}."
            ) from None
        flat = []
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"{name}.step: expected xpcnn layers, received {type(layer).__name__} at position {i}."
                )
            if layer.child_slots:  # a block steps its layers
                flat.extend(layer.leaves())
            else:
                flat.append(layer)
        layers = flat
        lr = self.schedule(self.iterations)
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(
                f"{type(self).__name__}: the learning-rate schedule gave {lr!r} at step "
                f"{self.iterations}; expected a finite value >= 0."
            )
        t = self.iterations + 1
        work = []
        for layer in layers:
            params = layer.parameters()
            if not params:
                continue
            grads = layer.grads
            for name, param in params.items():
                grad = grads.get(name)
                if grad is None:
                    raise RuntimeError(
                        f"{type(self).__name__}.step: {layer.label} has no gradient for {name!r}; "
                        "call backward() after forward() before step()."
                    )
                self._check_state(layer, name)
                work.append((layer, name, param, grad))
        if self.clip_norm is not None and work:
            work = self._clipped(work)
        for layer, name, param, grad in work:
            slots = self._slots_for(layer, name, param)
            if mask is None:
                setattr(layer, name, self._update(param, grad, slots, lr, t))
                continue
            xp = slots["_where"][0].xp
            before = {slot: slots[slot] for slot in self.slots}
            new = self._update(param, grad, slots, lr, t)
            for slot in self.slots:
                slots[slot] = xp.where(mask, slots[slot], before[slot])
            setattr(layer, name, xp.where(mask, new, param))
        self.iterations = t
        self.last_learning_rate = lr

    def _clipped(self, work: list) -> list:
        """``work`` with every gradient scaled by ``min(1, clip_norm / (global norm + 1e-6))``."""
        xp = backend.array_namespace(work[0][3])
        total = None
        for *_, grad in work:
            part = xp.sum(grad * grad)
            total = part if total is None else total + part
        scale = xp.minimum(self.clip_norm / (xp.sqrt(total) + 1e-6), xp.ones_like(total))
        return [(layer, name, param, grad * scale) for layer, name, param, grad in work]

    def _check_state(self, layer, name) -> None:
        """The state of ``layer.name`` (if any) lives where the parameter lives."""
        entry = self.state.get((layer, name))
        if entry is not None and entry["_where"] != (layer.placement, layer.dtype):
            where, dtype = entry["_where"]
            raise RuntimeError(
                f"{type(self).__name__}: the state of {layer.label}.{name} is on {where.name} ({dtype}) "
                f"but the parameter is on {layer.placement.name} ({layer.dtype}). Move the model with "
                "model.to(...), which moves the optimizer state too, or call optimizer.to(...)."
            )

    def _slots_for(self, layer, name, param) -> dict:
        """The state of ``layer.name``, created (zeros where the parameter lives) on first use."""
        key = (layer, name)
        entry = self.state.get(key)
        if entry is None:
            where = backend.placement_of(param)
            dtype = backend.dtype_name(param.dtype)
            entry = {"_where": (where, dtype)}
            for slot in self.slots:
                entry[slot] = where.zeros(tuple(param.shape), dtype) + self._initial(slot)
            self.state[key] = entry
        return entry

    def _initial(self, slot: str) -> float:
        """The starting value of a state slot (0; Adagrad's accumulator may start higher)."""
        return 0.0

    def _update(self, param, grad, state: dict, lr: float, t: int):
        """Return the new value of ``param`` given ``dE/dparam``; update ``state`` in place.
        ``lr`` is this step's learning rate, ``t`` the 1-based step number.  ``state`` holds
        the slots and ``"_where"``: ``(Placement, dtype name)``, whose ``.xp`` is the namespace."""
        raise NotImplementedError

    # ------------------------------------------------------------ housekeeping
    def zero_grad(self, layers) -> None:
        """Forget the stored gradients of ``layers`` (``step`` then refuses to run until the
        next ``backward``)."""
        for layer in layers:
            for leaf in layer.leaves():
                leaf.grads = {}

    def reset(self) -> None:
        """Drop all state (velocities, moments) and restart the step counter at 0; a
        :class:`~xpcnn.schedules.ReduceOnPlateau` schedule is reset too."""
        self.state = {}
        self.iterations = 0
        self.last_learning_rate = None
        if hasattr(self.schedule, "reset"):
            self.schedule.reset()

    def to(self, device=None, dtype: str | None = None) -> Optimizer:
        """Move (and optionally cast) every state array, as ``Layer.to`` does for parameters.

        ``device`` is ``"cpu"``, ``"cuda"``, a Placement or an array; ``dtype`` is float32 or
        float64 (``None`` keeps each array's).  Both are checked before anything moves, even
        with no state yet.  Returns self.
        """
        placement = None if device is None else backend.placement(device)
        cast = None if dtype is None else float_dtype(dtype, where=f"{type(self).__name__}.to")
        for entry in self.state.values():
            where, old_dtype = entry["_where"]
            target = where if placement is None else placement
            new_dtype = old_dtype if cast is None else cast
            for slot in self.slots:
                entry[slot] = target.asarray(backend.to_host(entry[slot]), dtype=new_dtype)
            entry["_where"] = (target, new_dtype)
        return self

    # ------------------------------------------------------------ saving and resuming
    def check_owner(self, layers, where: str = "") -> None:
        """Refuse to step ``layers`` (a model's leaves) when this optimizer holds state for
        other layer objects: after ``xpcnn.load`` the loaded model has new layers, and moments
        keyed to the old ones would be silently restarted at zero while the step counter ``t``
        (Adam's bias correction) runs on.  ``RuntimeError`` says what to do instead."""
        if not self.state:
            return
        known = {id(layer) for layer in layers}
        stray = [layer for layer, _ in self.state if id(layer) not in known]
        if stray:
            raise RuntimeError(
                f"{where + ': ' if where else ''}this {type(self).__name__} (step {self.iterations}) holds state "
                f"for layers of another model ({stray[0].label}, ...), e.g. the model before save/load. Use "
                "the optimizer that xpcnn.load restored (model.optimizer), give a new optimizer, or call "
                "optimizer.reset() to start its state over."
            )

    def _described_config(self) -> dict:
        """``config()`` with the schedule as JSON values (:func:`xpcnn.schedules.to_config`)."""
        config = dict(self.config())
        lr = config["learning_rate"]
        config["learning_rate"] = to_config(lr) if isinstance(lr, Schedule) else lr
        return config

    def state_dict(self, layers) -> dict:
        """Everything needed to resume this optimizer exactly, as PyTorch's
        ``optimizer.state_dict()``: ``{"type", "config", "iterations", "last_learning_rate",
        "state"}``; ``config`` holds the hyperparameters with the schedule as
        :func:`xpcnn.schedules.to_config` gives it (its position is ``iterations``), ``state``
        maps ``(k, name)`` to ``{slot: array}`` (the arrays themselves), ``k`` the index of the
        layer in ``layers`` (a model's :meth:`~xpcnn.Sequential.leaves`).  ``ValueError`` for an
        optimizer or schedule that cannot be described (a class or function of one's own)."""
        kind = type(self).__name__
        if REGISTRY.get(kind) is not type(self):
            raise ValueError(
                f"the optimizer {self!r:.80} is not one of {', '.join(REGISTRY)}, so it cannot be saved"
            )
        self.check_owner(layers, "state_dict")
        index = {id(layer): k for k, layer in enumerate(layers)}
        config = self._described_config()
        state = {
            (index[id(layer)], name): {slot: entry[slot] for slot in self.slots}
            for (layer, name), entry in self.state.items()
        }
        return {"type": kind, "config": config, "iterations": self.iterations,
                "last_learning_rate": self.last_learning_rate, "state": state}  # fmt: skip

    def load_state_dict(self, state: dict, layers) -> None:
        """Put back a :meth:`state_dict` (from this optimizer or one built with the same class
        and hyperparameters) for ``layers``; each array goes where its parameter lives, in its
        dtype.  Everything is checked first (class, hyperparameters, layer indices, parameter
        names, slots and shapes); on an error nothing changes.

        One difference in the hyperparameters is accepted: a constant learning rate where the
        saved optimizer has the :class:`~xpcnn.schedules.ReduceOnPlateau` schedule that
        :class:`~xpcnn.callbacks.ReduceLROnPlateau` installs from that rate (a script started
        again with the same command); the saved schedule, with what it learned, is taken."""
        self.checked_state(state, layers)()

    def checked_state(self, state: dict, layers) -> Callable[[], None]:
        """:meth:`load_state_dict` in two halves: check ``state`` now (raising ``ValueError``),
        and return the function that puts it in (which cannot fail)."""
        name = type(self).__name__
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state is of a {state.get('type')!r} optimizer.")
        mine, theirs = self._described_config(), state.get("config")
        adopted = _adopted_plateau(mine, theirs)
        if adopted is None and (
            not isinstance(theirs, dict) or _without_schedule_state(mine) != _without_schedule_state(theirs)
        ):
            raise ValueError(
                f"{name}.load_state_dict: the saved optimizer has the hyperparameters {theirs}, this one "
                f"{mine}; build the optimizer with the saved ones (or let xpcnn.load restore it)."
            )
        iterations = state.get("iterations")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or not 0 <= iterations <= 2**53:
            raise ValueError(
                f"{name}.load_state_dict: iterations must be an integer in [0, 2**53], received {iterations!r:.40}."
            )
        entries = {}
        for (k, param), slots in state.get("state", {}).items():
            if not (isinstance(k, int) and 0 <= k < len(layers)) or param not in layers[k].param_names:
                raise ValueError(f"{name}.load_state_dict: no parameter {param!r} in layer {k} of the model.")
            layer = layers[k]
            value = getattr(layer, param)
            if set(slots) != set(self.slots):
                raise ValueError(
                    f"{name}.load_state_dict: {layer.label}.{param} has slots {sorted(slots)}, expected "
                    f"{sorted(self.slots)}."
                )
            for slot, array in slots.items():
                if tuple(array.shape) != tuple(value.shape):
                    raise ValueError(
                        f"{name}.load_state_dict: {layer.label}.{param} {slot} has shape {tuple(array.shape)}, "
                        f"the parameter {tuple(value.shape)}."
                    )
            where = backend.placement_of(value)
            dtype = backend.dtype_name(value.dtype)
            entry = {"_where": (where, dtype)}
            for slot, array in slots.items():
                entry[slot] = where.asarray(backend.to_host(array), dtype=dtype)
            entries[(layer, param)] = entry
        last = state.get("last_learning_rate")
        if last is not None and (isinstance(last, bool) or not isinstance(last, (int, float))):
            raise ValueError(
                f"{name}.load_state_dict: last_learning_rate must be a number, received {last!r:.80}."
            )
        assert isinstance(theirs, dict)  # (checked above)
        lr = theirs.get("learning_rate")
        if adopted is None and isinstance(lr, dict):
            schedule_from_config(lr)  # checks the learned state on a copy; commit puts it in this one

        def commit():
            if adopted is not None:
                self.schedule = adopted
            elif isinstance(lr, dict):
                restore_state(self.schedule, lr)
            self.state = entries
            self.iterations = iterations
            self.last_learning_rate = None if last is None else float(last)

        return commit

    def state_arrays(self) -> dict:
        """``{(layer, name, slot): array}``: the state, for inspection and checkpoints."""
        return {
            (layer, name, slot): entry[slot]
            for (layer, name), entry in self.state.items()
            for slot in self.slots
        }

    def config(self) -> dict:
        schedule = self.schedule
        lr = schedule.initial if isinstance(schedule, Constant) else schedule
        return {"learning_rate": lr, **({"clip_norm": self.clip_norm} if self.clip_norm is not None else {})}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    ``momentum=0`` (the default) is the notes' rule ``w <- w - gamma dE/dw`` (eq. 1) with no
    state.  With momentum ``mu``: ``v <- mu v + g``, ``w <- w - gamma v``; with
    ``nesterov=True``: ``w <- w - gamma (g + mu v)`` (PyTorch's formulation: ``v`` is kept in
    gradient units, so a schedule's change of ``gamma`` acts at once).  ``weight_decay``
    ``lambda`` is coupled, as in PyTorch's SGD: ``g <- g + lambda w`` before the rest.
    """

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, clip_norm: float | None = None):  # fmt: skip
        super().__init__(learning_rate, clip_norm)
        self.weight_decay = non_negative(weight_decay, "weight_decay", type(self).__name__)
        self.momentum = unit_interval(momentum, "momentum", where=type(self).__name__)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"SGD: Nesterov momentum needs momentum > 0. Received momentum={momentum!r}.")
        self.slots = ("velocity",) if self.momentum > 0 else ()

    def _update(self, param, grad, state, lr, t):
        if self.weight_decay:  # coupled, as PyTorch's SGD: the decay's gradient joins g
            grad = grad + self.weight_decay * param
        if self.momentum == 0:
            return descend(param, grad, lr)  # eq. 1
        velocity = self.momentum * state["velocity"] + grad
        state["velocity"] = velocity
        direction = grad + self.momentum * velocity if self.nesterov else velocity
        return param - lr * direction

    def config(self) -> dict:
        extra = {"weight_decay": self.weight_decay} if self.weight_decay else {}
        return {**super().config(), "momentum": self.momentum, "nesterov": self.nesterov, **extra}


class Adam(Optimizer):
    """Adam: per-parameter steps from bias-corrected first and second moments of ``g``.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``w <- w - gamma (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``, ``t = 1, 2, ...``
    """

    slots = ("m", "v")

    def __init__(self, learning_rate=0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 clip_norm: float | None = None):  # fmt: skip
        super().__init__(learning_rate, clip_norm)
        self.beta1 = unit_interval(beta1, "beta1", where=type(self).__name__)
        self.beta2 = unit_interval(beta2, "beta2", where=type(self).__name__)
        self.eps = positive(eps, "eps", type(self).__name__)

    def _update(self, param, grad, state, lr, t):
        xp = state["_where"][0].xp
        m = self.beta1 * state["m"] + (1.0 - self.beta1) * grad
        v = self.beta2 * state["v"] + (1.0 - self.beta2) * (grad * grad)
        state["m"], state["v"] = m, v
        correction1 = 1.0 - self.beta1**t
        root_correction2 = math.sqrt(1.0 - self.beta2**t)
        return param - (lr / correction1) * m / (xp.sqrt(v) / root_correction2 + self.eps)

    def config(self) -> dict:
        return {**super().config(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w <- w (1 - gamma lambda)`` and then the Adam step
    computed from ``g`` alone (the decay never enters the moments)."""

    def __init__(
        self,
        learning_rate=0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        clip_norm: float | None = None,
    ):
        super().__init__(learning_rate, beta1, beta2, eps, clip_norm)
        self.weight_decay = non_negative(weight_decay, "weight_decay", type(self).__name__)

    def _update(self, param, grad, state, lr, t):
        return super()._update(param * (1.0 - lr * self.weight_decay), grad, state, lr, t)

    def config(self) -> dict:
        return {**super().config(), "weight_decay": self.weight_decay}


class RMSProp(Optimizer):
    """RMSProp (Hinton, 2012): steps scaled by a running root mean square of ``g``.

    ``s <- alpha s + (1 - alpha) g^2``; ``centered``: also ``a <- alpha a + (1 - alpha) g`` and
    ``d = sqrt(s - a^2) + eps``, else ``d = sqrt(s) + eps``; then ``w <- w - gamma g / d``, or
    with momentum ``mu``: ``b <- mu b + g / d``, ``w <- w - gamma b`` (PyTorch's RMSprop).
    """

    def __init__(self, learning_rate=0.01, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 centered: bool = False, clip_norm: float | None = None):  # fmt: skip
        super().__init__(learning_rate, clip_norm)
        where = type(self).__name__
        self.alpha = unit_interval(alpha, "alpha", where=where)
        self.eps = positive(eps, "eps", where)
        self.momentum = unit_interval(momentum, "momentum", where=where)
        self.centered = bool(centered)
        self.slots = ("square_avg", *(("grad_avg",) if self.centered else ()),
                      *(("momentum_buffer",) if self.momentum > 0 else ()))  # fmt: skip

    def _update(self, param, grad, state, lr, t):
        xp = state["_where"][0].xp
        a = self.alpha
        square = a * state["square_avg"] + (1.0 - a) * (grad * grad)
        state["square_avg"] = square
        if self.centered:
            mean = a * state["grad_avg"] + (1.0 - a) * grad
            state["grad_avg"] = mean
            denominator = xp.sqrt(square - mean * mean) + self.eps
        else:
            denominator = xp.sqrt(square) + self.eps
        if self.momentum > 0:
            buffer = self.momentum * state["momentum_buffer"] + grad / denominator
            state["momentum_buffer"] = buffer
            return param - lr * buffer
        return param - lr * grad / denominator

    def config(self) -> dict:
        return {**super().config(), "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "centered": self.centered}  # fmt: skip


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): ``s <- s + g^2``, ``w <- w - gamma g / (sqrt(s) + eps)``,
    ``s`` starting at ``initial_accumulator_value`` (PyTorch's Adagrad without lr decay)."""

    slots = ("sum",)

    def __init__(self, learning_rate=0.01, eps: float = 1e-10, initial_accumulator_value: float = 0.0,
                 clip_norm: float | None = None):  # fmt: skip
        super().__init__(learning_rate, clip_norm)
        self.eps = positive(eps, "eps", type(self).__name__)
        self.initial_accumulator_value = non_negative(
            initial_accumulator_value, "initial_accumulator_value", type(self).__name__
        )

    def _initial(self, slot: str) -> float:
        return self.initial_accumulator_value

    def _update(self, param, grad, state, lr, t):
        xp = state["_where"][0].xp
        total = state["sum"] + grad * grad
        state["sum"] = total
        return param - lr * grad / (xp.sqrt(total) + self.eps)

    def config(self) -> dict:
        return {
            **super().config(),
            "eps": self.eps,
            "initial_accumulator_value": self.initial_accumulator_value,
        }


def _adopted_plateau(mine: dict, theirs) -> Schedule | None:
    """The saved ReduceOnPlateau schedule when ``mine`` differs from ``theirs`` only by a
    constant learning rate that is the schedule's initial value (the rate that
    ReduceLROnPlateau started from), else None."""
    if not isinstance(theirs, dict):
        return None
    lr, saved = mine.get("learning_rate"), theirs.get("learning_rate")
    if isinstance(lr, dict) or not isinstance(saved, dict) or saved.get("type") != "ReduceOnPlateau":
        return None
    if saved.get("config", {}).get("initial") != lr or {**mine, "learning_rate": None} != {
        **theirs,
        "learning_rate": None,
    }:
        return None
    return schedule_from_config(saved)


def _without_schedule_state(config: dict) -> dict:
    """A described config without the schedule's learned state (compared separately)."""
    return {**config, "learning_rate": without_state(config.get("learning_rate"))}


#: The optimizers a checkpoint can name.
REGISTRY = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSProp, Adagrad)}


def from_config(kind: str, config: dict) -> Optimizer:
    """A new optimizer of class ``kind`` (a key of :data:`REGISTRY`) with the hyperparameters
    of ``config`` (``learning_rate`` a number or a schedule entry of
    :func:`xpcnn.schedules.to_config`).  ``ValueError`` or ``TypeError`` naming what is wrong."""
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise ValueError(f"unknown optimizer {kind!r:.80}; expected one of {', '.join(REGISTRY)}")
    if not isinstance(config, dict):
        raise ValueError(f"the optimizer's config must be an object, received {config!r:.80}")
    config = dict(config)
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = schedule_from_config(config["learning_rate"])
    return REGISTRY[kind](**config)


_NAMES = {
    "sgd": (SGD, {}),
    "gd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
    "rmsprop": (RMSProp, {}),
    "adagrad": (Adagrad, {}),
}


def get(optimizer, **kwargs) -> Optimizer:
    """An optimizer from a name (``"sgd"``, ``"momentum"`` = SGD with momentum 0.9,
    ``"nesterov"``, ``"adam"``, ``"adamw"``; case-insensitive) and keyword hyperparameters,
    or an :class:`Optimizer` instance returned as is."""
    if isinstance(optimizer, Optimizer):
        if kwargs:
            raise TypeError(
                f"optimizer is already an instance ({optimizer!r}); hyperparameters "
                f"{sorted(kwargs)} apply only to a name."
            )
        return optimizer
    if isinstance(optimizer, str):
        key = optimizer.strip().lower()
        if key not in _NAMES:
            raise ValueError(
                f"Unknown optimizer {optimizer!r}. Expected one of {sorted(_NAMES)} or an Optimizer."
            )
        cls, defaults = _NAMES[key]
        return cls(**{**defaults, **kwargs})
    raise TypeError(
        f"Expected an optimizer name or an xpcnn.optim.Optimizer. Received {type(optimizer).__name__}."
    )
