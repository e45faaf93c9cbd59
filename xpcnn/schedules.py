"""Learning-rate schedules (notes 1.4: "a learning rate schedule or an adaptive learning rate").

A schedule maps the optimizer's step counter ``t = 0, 1, 2, ...`` (the number of updates
already applied) to the learning rate ``gamma_t`` of the gradient-descent step of eq. 1,
``w <- w - gamma_t dE/dw``.  Every schedule is a plain Python object returning a Python
float: it costs nothing on the device and never touches an array.

=====================  ==========================================================
``Constant(v)``        ``gamma_t = v``
``StepDecay``          ``gamma_t = v * factor ** (t // step_size)``
``ExponentialDecay``   ``gamma_t = v * rate ** (t / decay_steps)`` (floored exponent
                       with ``staircase=True``)
``CosineDecay``        ``gamma_t = final + (v - final) (1 + cos(pi min(t, T) / T)) / 2``
``LinearWarmup``       ``gamma_t = start + (peak - start) t / W`` for ``t < W``, then the
                       wrapped schedule at ``t - W`` (``peak`` = its first value)
``ReduceOnPlateau``    ``gamma`` times ``factor`` whenever the monitored metric has not
                       improved for ``patience`` epochs; fed once per epoch with
                       :meth:`ReduceOnPlateau.observe` (``Sequential.fit`` does it)
=====================  ==========================================================

Any callable ``f(t) -> float`` is accepted where a schedule is expected (see
:func:`as_schedule`).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from ._validate import non_negative, non_negative_int, positive, positive_int, unit_interval

__all__ = [
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "LinearWarmup",
    "OneCycle",
    "ReduceOnPlateau",
    "Schedule",
    "StepDecay",
    "as_schedule",
    "find_plateau",
    "from_config",
    "to_config",
]


# ------------------------------------------------------------------ validation
# The argument checks (positive, non_negative, ...) are xpcnn._validate's, imported above.
def _step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, Integral) or step < 0:
        raise ValueError(f"Expected a non-negative integer step. Received step={step!r}.")
    return int(step)


# -------------------------------------------------------------------- schedules
class Schedule:
    """Base class: ``schedule(t) -> float`` for a step counter ``t >= 0``."""

    def __call__(self, step: int) -> float:
        return self.value(_step(step))

    def value(self, step: int) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        return {}

    def state(self) -> dict:
        """What the schedule learned while training (JSON numbers), beyond its config and the
        step counter: empty except for :class:`ReduceOnPlateau`."""
        return {}

    def set_state(self, state: dict) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state; received {sorted(state)}.")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``gamma_t = value``: the fixed learning rate of plain gradient descent (eq. 1)."""

    def __init__(self, value: float, where: str = ""):
        self.initial = positive(value, "learning_rate", where)

    def value(self, step):
        return self.initial

    def config(self):
        return {"value": self.initial}


class StepDecay(Schedule):
    """``gamma_t = initial * factor ** (t // step_size)``: multiply by ``factor`` every
    ``step_size`` steps."""

    def __init__(self, initial: float, step_size: int, factor: float = 0.1):
        self.initial = positive(initial, "initial")
        self.step_size = positive_int(step_size, "step_size")
        self.factor = positive(factor, "factor")

    def value(self, step):
        return self.initial * self.factor ** (step // self.step_size)

    def config(self):
        return {"initial": self.initial, "step_size": self.step_size, "factor": self.factor}


class ExponentialDecay(Schedule):
    """``gamma_t = initial * rate ** (t / decay_steps)``; with ``staircase=True`` the exponent
    is floored (``t // decay_steps``)."""

    def __init__(self, initial: float, rate: float, decay_steps: int = 1, staircase: bool = False):
        self.initial = positive(initial, "initial")
        self.rate = positive(rate, "rate")
        self.decay_steps = positive_int(decay_steps, "decay_steps")
        self.staircase = bool(staircase)

    def value(self, step):
        exponent = step // self.decay_steps if self.staircase else step / self.decay_steps
        return self.initial * self.rate**exponent

    def config(self):
        return {
            "initial": self.initial,
            "rate": self.rate,
            "decay_steps": self.decay_steps,
            "staircase": self.staircase,
        }


class CosineDecay(Schedule):
    """Half a cosine from ``initial`` at ``t = 0`` down to ``final`` at ``t = decay_steps``
    (then constant): ``gamma_t = final + (initial - final) (1 + cos(pi min(t, T) / T)) / 2``."""

    def __init__(self, initial: float, decay_steps: int, final: float = 0.0):
        self.initial = positive(initial, "initial")
        self.decay_steps = positive_int(decay_steps, "decay_steps")
        self.final = non_negative(final, "final")
        if self.final > self.initial:
            raise ValueError(
                f"Expected final <= initial. Received initial={self.initial!r}, final={self.final!r}."
            )

    def value(self, step):
        progress = min(step, self.decay_steps) / self.decay_steps
        return self.final + (self.initial - self.final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def config(self):
        return {"initial": self.initial, "decay_steps": self.decay_steps, "final": self.final}


class OneCycle(Schedule):
    """The one-cycle policy (Smith and Topin, 2019), as PyTorch's ``OneCycleLR`` with cosine
    annealing: from ``max_lr / div_factor`` up to ``max_lr`` over the first ``pct_start`` of
    ``total_steps``, then down to ``max_lr / (div_factor * final_div_factor)`` at the last
    step (then constant).  Each phase is half a cosine, ``a + (b - a) (1 - cos(pi p)) / 2``
    for progress ``p`` in [0, 1]."""

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4):  # fmt: skip
        self.max_lr = positive(max_lr, "max_lr", "OneCycle")
        self.total_steps = positive_int(total_steps, "total_steps", "OneCycle")
        self.pct_start = unit_interval(pct_start, "pct_start", where="OneCycle")
        self.div_factor = positive(div_factor, "div_factor", "OneCycle")
        self.final_div_factor = positive(final_div_factor, "final_div_factor", "OneCycle")
        self.initial = self.max_lr / self.div_factor
        self.final = self.initial / self.final_div_factor
        self._peak = float(self.pct_start * self.total_steps) - 1  # the step at max_lr
        if not 0 < self._peak < self.total_steps - 1:
            raise ValueError(
                f"OneCycle: pct_start * total_steps must leave both phases at least one step. Received "
                f"pct_start={pct_start!r}, total_steps={total_steps!r}."
            )

    def value(self, step):
        step = min(step, self.total_steps - 1)
        if step <= self._peak:
            a, b, p = self.initial, self.max_lr, step / self._peak
        else:
            a, b = self.max_lr, self.final
            p = (step - self._peak) / (self.total_steps - 1 - self._peak)
        return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * p))

    def config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor}  # fmt: skip


class LinearWarmup(Schedule):
    """A linear ramp over the first ``warmup_steps`` steps, then the wrapped schedule.

    ``gamma_t = start + (peak - start) * t / warmup_steps`` for ``t < warmup_steps`` with
    ``peak = after(0)``, and ``gamma_t = after(t - warmup_steps)`` afterwards, so the wrapped
    schedule starts its own count when the warm-up ends.  ``after`` is a schedule, a callable
    or a float.  With the default ``start=0`` the very first step moves nothing.
    """

    def __init__(self, after, warmup_steps: int, start: float = 0.0):
        self.after = as_schedule(after)
        self.warmup_steps = positive_int(warmup_steps, "warmup_steps")
        self.start = non_negative(start, "start")

    def value(self, step):
        if step < self.warmup_steps:
            peak = self.after(0)
            return self.start + (peak - self.start) * step / self.warmup_steps
        return self.after(step - self.warmup_steps)

    def config(self):
        return {"after": self.after, "warmup_steps": self.warmup_steps, "start": self.start}


class ReduceOnPlateau(Schedule):
    """A learning rate that drops by ``factor`` when a monitored metric stops improving.

    Fed once per epoch with :meth:`observe` (``Sequential.fit`` does this automatically with
    ``logs[monitor]`` when the optimizer's learning rate is, or wraps, a ``ReduceOnPlateau``).
    The metric improves when it beats the best value so far by more than ``min_delta``
    (lower is better with ``mode="min"``, higher with ``"max"``); after ``patience`` epochs
    without improvement the rate is multiplied by ``factor`` (never below ``min_value``) and
    the next ``cooldown`` epochs are not counted as bad (an improvement still sets the best).
    With ``patience=0`` every epoch without improvement reduces the rate.  ``schedule(t)``
    ignores ``t`` and returns the current rate.
    """

    def __init__(
        self,
        initial: float,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        mode: str = "min",
        cooldown: int = 0,
        min_value: float = 0.0,
    ):
        self.initial = positive(initial, "initial")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"Expected the name of a logged metric. Received monitor={monitor!r}.")
        self.monitor = monitor
        self.factor = positive(factor, "factor")
        if self.factor >= 1:
            raise ValueError(f"Expected a value in (0, 1). Received factor={factor!r}.")
        self.patience = non_negative_int(patience, "patience")
        self.min_delta = non_negative(min_delta, "min_delta")
        if mode not in ("min", "max"):
            raise ValueError(f'Expected mode "min" or "max". Received mode={mode!r}.')
        self.mode = mode
        self.cooldown = non_negative_int(cooldown, "cooldown")
        self.min_value = non_negative(min_value, "min_value")
        self.reset()

    def reset(self) -> None:
        """Back to ``initial`` with no history."""
        self.current = self.initial
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_left = 0

    def state(self) -> dict:
        best = self.best if math.isfinite(self.best) else None  # None: nothing observed yet
        return {"current": self.current, "best": best, "wait": self.wait, "cooldown_left": self.cooldown_left}

    def set_state(self, state: dict) -> None:
        """Put back :meth:`state` (checked: the values are those a run can reach)."""
        if not isinstance(state, dict) or set(state) != {"current", "best", "wait", "cooldown_left"}:
            raise ValueError(f"ReduceOnPlateau: expected the keys of state(). Received {state!r:.120}.")
        current = non_negative(state["current"], "current", "ReduceOnPlateau")
        best = state["best"]
        if best is not None and (isinstance(best, bool) or not isinstance(best, Real)):
            raise ValueError(f"ReduceOnPlateau: expected best to be a number or None. Received {best!r}.")
        wait = non_negative_int(state["wait"], "wait")
        cooldown_left = non_negative_int(state["cooldown_left"], "cooldown_left")
        self.current, self.wait, self.cooldown_left = current, wait, cooldown_left
        self.best = float(best) if best is not None else (math.inf if self.mode == "min" else -math.inf)

    def value(self, step):
        return self.current

    def improved(self, metric: float) -> bool:
        if self.mode == "min":
            return metric < self.best - self.min_delta
        return metric > self.best + self.min_delta

    def observe(self, metric) -> float:
        """Feed this epoch's value of the monitored metric; return the (new) learning rate."""
        if isinstance(metric, bool) or not isinstance(metric, Real):
            raise TypeError(f"ReduceOnPlateau: expected a number for {self.monitor!r}. Received {metric!r}.")
        metric = float(metric)  # a NaN never improves: it counts as a bad epoch
        in_cooldown = self.cooldown_left > 0
        if in_cooldown:
            self.cooldown_left -= 1
        if self.improved(metric):
            self.best = metric
            self.wait = 0
        elif not in_cooldown:
            self.wait += 1
            if self.wait >= self.patience:
                self.current = max(self.current * self.factor, self.min_value)
                self.cooldown_left = self.cooldown
                self.wait = 0
        return self.current

    def config(self):
        return {
            "initial": self.initial,
            "monitor": self.monitor,
            "factor": self.factor,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "mode": self.mode,
            "cooldown": self.cooldown,
            "min_value": self.min_value,
        }


class _Callable(Schedule):
    """Wraps a user function ``f(t) -> float``."""

    def __init__(self, function):
        self.function = function

    def value(self, step):
        result = self.function(step)
        if not isinstance(result, Real) or isinstance(result, bool):
            raise TypeError(
                f"The learning-rate function {self.function!r} returned {result!r} "
                f"({type(result).__name__}) at step {step}; expected a float."
            )
        return float(result)

    def __repr__(self):
        return f"Schedule({self.function!r})"


def as_schedule(value, where: str = "") -> Schedule:
    """A :class:`Schedule` from a schedule, a callable ``f(t) -> float`` or a number
    (:class:`Constant`; it must be > 0 and finite).  ``where`` (e.g. ``"Adam"``) prefixes errors."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, Real) and not isinstance(value, bool):
        return Constant(float(value), where)
    if callable(value):
        return _Callable(value)
    raise TypeError(
        f"{where + ': ' if where else ''}Expected a learning rate: a positive float, a schedule from xpcnn.schedules or a "
        f"function step -> float. Received learning_rate={value!r}."
    )


def find_plateau(schedule) -> ReduceOnPlateau | None:
    """The :class:`ReduceOnPlateau` that ``schedule`` is or wraps (through ``after``), if any."""
    while schedule is not None:
        if isinstance(schedule, ReduceOnPlateau):
            return schedule
        schedule = getattr(schedule, "after", None)
    return None


#: The schedules a checkpoint can name (user functions cannot be saved: pass them again).
REGISTRY = {cls.__name__: cls for cls in (Constant, StepDecay, ExponentialDecay, CosineDecay, OneCycle,
                                          LinearWarmup, ReduceOnPlateau)}  # fmt: skip


def to_config(schedule: Schedule) -> dict:
    """``{"type", "config", "state"}``: JSON values that :func:`from_config` turns back into an
    equal schedule in the same state.  Raises ``ValueError`` for a schedule outside
    :data:`REGISTRY` (a function ``t -> float``, a subclass of one's own)."""
    kind = type(schedule).__name__
    if REGISTRY.get(kind) is not type(schedule):
        raise ValueError(
            f"the learning-rate schedule {schedule!r:.80} cannot be saved (a checkpoint names one of "
            f"{', '.join(REGISTRY)}); pass the optimizer again after loading"
        )
    config = {k: to_config(v) if isinstance(v, Schedule) else v for k, v in schedule.config().items()}
    return {"type": kind, "config": config, "state": schedule.state()}


def from_config(entry) -> Schedule:
    """The schedule described by :func:`to_config`'s ``entry``; ``ValueError`` (or
    ``TypeError``) naming what does not fit."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or entry["type"] not in REGISTRY:
        raise ValueError(
            f"expected a schedule entry naming one of {', '.join(REGISTRY)}. Received {entry!r:.120}."
        )
    config = entry.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"expected the schedule's config to be an object. Received {config!r:.120}.")
    config = {k: from_config(v) if isinstance(v, dict) else v for k, v in config.items()}
    schedule = REGISTRY[entry["type"]](**config)
    restore_state(schedule, entry)
    return schedule


def restore_state(schedule: Schedule, entry: dict) -> None:
    """Put the learned state of :func:`to_config`'s ``entry`` (and of the schedules it wraps)
    back into ``schedule``, an equal schedule."""
    schedule.set_state(entry.get("state") or {})
    for key, inner in entry.get("config", {}).items():
        if isinstance(inner, dict):
            restore_state(getattr(schedule, key), inner)


def without_state(entry):
    """:func:`to_config`'s ``entry`` without the learned states: what two equal schedules
    share whatever they observed."""
    if not isinstance(entry, dict):
        return entry
    config = {k: without_state(v) for k, v in entry.get("config", {}).items()}
    return {**entry, "config": config, "state": {}}
