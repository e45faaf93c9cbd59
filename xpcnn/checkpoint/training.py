"""The training state in a checkpoint: what ``fit`` needs to go on exactly where it stopped.

The ``"training"`` string of the metadata holds, as JSON::

    {"loss": {"type": "SoftmaxCrossEntropy", "config": {}},
     "metrics": {"accuracy": {"type": "Accuracy", "config": {...}}},
     "optimizer": {"type": "Adam", "config": {...}, "iterations": 5,
                   "last_learning_rate": 0.001, "state": [[k, "weights", ["m", "v"]], ...]},
     "progress": {"epoch": 1, "batch": 3, "rng": {...}, "history": {...}, "partial": {...}}}

and the optimizer's arrays are the tensors ``optimizer.<k>.<parameter>.<slot>``, ``k`` the
layer's index among the model's leaves (the layers that are not containers, depth first), as
PyTorch's ``optimizer.state_dict()`` keys its state by parameter index.  ``progress`` is what
``fit`` reached: the epoch and the batches done in it, the state of the shuffle generator
when that epoch began (its permutation is drawn again on resume), the history so far, and the
sums of the epoch's loss and metrics over the batches done.  Each part is optional: a model
that was never compiled has no loss, a checkpoint written outside ``fit`` has no progress.

A loss, metric, optimizer or schedule of one's own cannot be described by name: with
``save(..., include_optimizer=True)`` that raises; with the default (``None``) it is left
out (``"left_out"`` and ``"metrics_left_out"`` name what), and is passed again after loading.
"""

from __future__ import annotations

import math
import re

from .. import backend, init, losses, optim
from .format import Bad

__all__ = ["describe", "restore"]

_LOSSES = {cls.__name__: cls for cls, _ in losses.NAMES.values()}
_STATE_NAME = re.compile(
    r"optimizer\.(0|[1-9][0-9]{0,5})\.([A-Za-z_][A-Za-z0-9_]{0,63})\.([A-Za-z_][A-Za-z0-9_]{0,63})"
)


def _loss_entry(loss, what: str) -> dict:
    kind = type(loss).__name__
    if _LOSSES.get(kind) is not type(loss):
        raise Bad(
            f"the {what} {loss!r:.80} is not one of xpcnn's ({', '.join(sorted(_LOSSES))}), so the training "
            "state cannot name it; save with include_optimizer=False and pass it again after loading"
        )
    return {"type": kind, "config": loss.config()}


def _floats(values: list) -> list:
    """History values for JSON: non-finite floats as the strings "nan", "inf", "-inf"."""
    return [v if math.isfinite(v) else repr(v) for v in (float(x) for x in values)]


def _unfloats(values, where: str) -> list:
    if not isinstance(values, list):
        raise Bad(f"{where} must be a list")
    out = []
    for v in values:
        if isinstance(v, str) and v in ("nan", "inf", "-inf"):
            out.append(float(v))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
        else:
            raise Bad(f"{where} holds {v!r:.40}, not a number")
    return out


def describe(model, leaves: list, progress: dict | None = None, strict: bool = True) -> tuple[dict, list]:
    """The training state of ``model`` (its ``loss``, ``metrics``, ``optimizer``; ``leaves``
    its leaves) and ``progress`` (from ``fit``), as JSON values and named host tensors.
    ``strict=False``: a loss or optimizer of one's own is left out (``"left_out"`` names it)
    instead of raising."""
    info: dict = {}
    tensors: list = []
    left: list = []
    if model.loss is not None:
        try:
            info["loss"] = _loss_entry(model.loss, "loss")
        except Bad:
            if strict:
                raise
            left.append("loss")
    metrics, left_out = {}, []
    for name, metric in (model.metrics or {}).items():
        if isinstance(metric, losses.Loss) and _LOSSES.get(type(metric).__name__) is type(metric):
            metrics[name] = {"type": type(metric).__name__, "config": metric.config()}
        else:
            left_out.append(name)
    if metrics:
        info["metrics"] = metrics
    if left_out:
        info["metrics_left_out"] = left_out
    if left:
        info["left_out"] = left
    if model.optimizer is not None:
        try:
            state = model.optimizer.state_dict(leaves)
        except (ValueError, RuntimeError) as exc:
            if strict:
                raise Bad(f"{exc}; save with include_optimizer=False") from None
            info["left_out"] = [*left, "optimizer"]
            state = None
        if state is not None:
            slots = []
            for (k, name), arrays in sorted(state.pop("state").items()):
                slots.append([k, name, sorted(arrays)])
                for slot in sorted(arrays):
                    tensors.append((f"optimizer.{k}.{name}.{slot}", backend.to_host(arrays[slot])))
            info["optimizer"] = {**state, "state": slots}
    if progress is not None:
        history = progress.get("history") or {"epoch": [], "history": {}, "stop_reason": None}
        info["progress"] = {
            **progress,
            "history": {**history, "history": {k: _floats(v) for k, v in history["history"].items()}},
        }
    return info, tensors


def _entry(entry, registry: dict, what: str):
    if (
        not isinstance(entry, dict)
        or entry.get("type") not in registry
        or not isinstance(entry.get("config"), dict)
    ):
        raise Bad(f"the training state's {what} must name one of {', '.join(sorted(registry))}")
    try:
        return registry[entry["type"]](**entry["config"])
    except (TypeError, ValueError) as exc:
        raise Bad(f"the training state's {what} does not build: {exc}") from None


def restore(info: dict, extra: dict, leaves: list, optimizer=None) -> dict:
    """The parts of the training state ``info`` (``extra``: the file's ``optimizer.`` host
    arrays by name), rebuilt for the model whose leaves are ``leaves``: ``{"loss", "metrics",
    "optimizer", "progress", "commit"}`` (each may be None).  ``optimizer``: an existing
    optimizer to load the state into (it must have the saved class and hyperparameters)
    instead of a new one; that happens when ``commit()`` is called.  Everything is checked
    here, nothing is changed; raises ``Bad``."""
    progress = _progress(info["progress"]) if "progress" in info else None
    loss = _entry(info["loss"], _LOSSES, "loss") if "loss" in info else None
    metrics = None
    if "metrics" in info:
        if not isinstance(info["metrics"], dict):
            raise Bad("the training state's metrics must be an object")
        metrics = {str(name): _entry(e, _LOSSES, f"metric {name!r}") for name, e in info["metrics"].items()}
    result = {"loss": loss, "metrics": metrics, "optimizer": None, "progress": progress, "commit": None}
    if "optimizer" in info:
        result["optimizer"], result["commit"] = _optimizer(info["optimizer"], extra, leaves, optimizer)
    elif extra:
        raise Bad(f"the file holds optimizer tensors ({next(iter(extra))!r}, ...) but no optimizer")
    return result


def _optimizer(entry, extra: dict, leaves: list, existing):
    if not isinstance(entry, dict):
        raise Bad("the training state's optimizer must be an object")
    kind, config = entry.get("type"), entry.get("config")
    if not isinstance(kind, str) or not isinstance(config, dict):
        raise Bad("the training state's optimizer must have a 'type' string and a 'config' object")
    try:
        target = existing if existing is not None else optim.from_config(kind, config)
    except (TypeError, ValueError) as exc:
        raise Bad(f"the training state's optimizer does not build: {exc}") from None
    for key in extra:
        if not _STATE_NAME.fullmatch(key):
            raise Bad(f"tensor name {key!r:.80} is not of the form 'optimizer.<layer>.<parameter>.<slot>'")
    state, seen = {}, set()
    slots = entry.get("state", [])
    if not isinstance(slots, list):
        raise Bad("the optimizer's state list must be a list")
    for item in slots:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], list)):
            raise Bad(f"the optimizer's state entry {item!r:.80} is not [layer, parameter, [slots]]")
        k, name, names = item
        arrays = {}
        for slot in names:
            key = f"optimizer.{k}.{name}.{slot}"
            if not isinstance(slot, str) or key not in extra:
                raise Bad(f"the optimizer's state names the tensor {key!r:.80}, which the file does not hold")
            arrays[slot] = extra[key]
            seen.add(key)
        state[(k, name)] = arrays
    unused = sorted(set(extra) - seen)
    if unused:
        raise Bad(f"the file holds the tensor {unused[0]!r}, which the optimizer's state does not name")
    try:
        commit = target.checked_state({**entry, "state": state}, leaves)
    except (TypeError, ValueError, OverflowError) as exc:
        raise Bad(str(exc)) from None
    if existing is None:  # a new object: nothing else sees it yet
        commit()
        commit = None
    return target, commit


def _progress(entry) -> dict:
    if not isinstance(entry, dict):
        raise Bad("the training state's progress must be an object")
    for key in ("epoch", "batch"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise Bad(f"the progress's {key} must be an integer >= 0, found {value!r:.40}")
    history = entry.get("history")
    if not isinstance(history, dict) or not isinstance(history.get("history"), dict):
        raise Bad("the progress's history must be an object with 'epoch' and 'history'")
    epochs = history.get("epoch")
    if not isinstance(epochs, list) or not all(
        isinstance(e, int) and not isinstance(e, bool) for e in epochs
    ):
        raise Bad("the progress's history epochs must be a list of integers")
    values = {str(k): _unfloats(v, f"history {k!r}") for k, v in history["history"].items()}
    stop = history.get("stop_reason")
    if stop is not None and not isinstance(stop, str):
        raise Bad("the progress's stop_reason must be a string")
    rng = entry.get("rng")
    if rng is not None:
        try:
            init.rng_from_state(rng)  # checked here; fit draws from a new one
        except (TypeError, ValueError, KeyError) as exc:
            raise Bad(f"the progress's shuffle generator state is not valid: {exc}") from None
    partial = entry.get("partial") or {}
    if not isinstance(partial, dict):
        raise Bad("the progress's partial sums must be an object")
    sums: dict = {}
    for key, value in partial.items():
        if key == "size":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise Bad(f"the progress's partial size must be an integer >= 0, found {value!r:.40}")
            sums[key] = value
        elif key == "loss" or (isinstance(key, str) and key.startswith("metric.")):
            sums[key] = _unfloats([value], f"partial sum {key!r}")[0]
        else:
            raise Bad(
                f"the progress's partial sums hold {key!r:.40}; expected 'loss', 'size' or 'metric.<name>'"
            )
    sizes = {}
    for key in ("samples", "batch_size"):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise Bad(f"the progress's {key} must be an integer >= 0, found {value!r:.40}")
        sizes[key] = value
    return {"epoch": entry["epoch"], "batch": entry["batch"], "rng": rng,
            "history": {"epoch": list(epochs), "history": values, "stop_reason": stop}, "partial": sums,
            **sizes}  # fmt: skip
