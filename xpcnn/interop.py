"""Weights to and from PyTorch, arrays through DLPack.

PyTorch is optional: this module never imports it.  A ``state_dict`` here is any mapping of
PyTorch names to arrays: NumPy arrays, torch tensors (read with ``.detach().cpu().numpy()``),
or any array xpcnn reads (CuPy, ...).

**Matching is by order.**  The model's leaves that hold arrays (``model.leaves()``, depth
first, skipping layers without parameters or state) are paired, one to one, with the
modules of the ``state_dict`` in the order their names first appear; a module is
everything before a key's last dot (``features.0.weight`` and ``features.0.bias`` belong
to ``features.0``).  Per layer:

* ``Convolutional.kernels`` ``(O, I/G, kh, kw)`` <- ``Conv2d.weight``, the same layout;
  ``Convolutional.biases`` ``(O,)`` <- ``Conv2d.bias`` (``bias="channel"``; with
  ``bias="none"`` the module has no bias, ``Conv2d(..., bias=False)``).
* ``Dense.weights`` ``(out, in)`` <- ``Linear.weight``, the same layout (``Y = X W^T + b``);
  ``Dense.bias`` ``(out,)`` <- ``Linear.bias``.
* ``BatchNorm.gamma``, ``beta``, ``running_mean``, ``running_var`` ``(C,)`` <-
  ``BatchNorm1d`` / ``BatchNorm2d``'s ``weight``, ``bias``, ``running_mean``, ``running_var``.

Both libraries cross-correlate (no kernel flip) and flatten NCHW in C order, so the arrays
go across unchanged (tests/test_interop.py compares the outputs to 1e-12 in float64).
``num_batches_tracked`` is ignored: xpcnn keeps no count (its ``momentum`` plays PyTorch's
fixed ``momentum``; ``momentum=None``, the cumulative average, has no xpcnn twin).  A
per-pixel (untied) ``Convolutional`` bias has no PyTorch twin and is refused.
Hyperparameters (stride, padding, ``eps``, ...) are not in a ``state_dict``: the two models
must be built alike.

Arrays are converted to the model's dtype on load, as a copy (the one place xpcnn casts
for you: elsewhere a dtype mismatch is an error), and moved to the model's device through
:meth:`~xpcnn.layers.Layer.set_parameters` / :meth:`~xpcnn.layers.Layer.set_state`.

DLPack: :func:`from_dlpack` views a torch tensor (or any DLPack producer) as an xpcnn array
without a copy; the other way, a CPU model's arrays and :func:`xpcnn.to_host`'s results are
NumPy arrays, which ``torch.from_dlpack`` takes without a copy (CuPy arrays likewise on the
GPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import backend
from .backend import from_dlpack
from .layers import BatchNorm, Convolutional, Dense, Layer

__all__ = ["from_dlpack", "load_torch_state_dict", "to_torch_state_dict"]

IGNORED = ("num_batches_tracked",)  # PyTorch bookkeeping with no xpcnn counterpart


def _torch_names(leaf: Layer) -> dict[str, str]:
    """``{xpcnn array name: PyTorch key suffix}`` for one leaf, in PyTorch's key order."""
    if isinstance(leaf, Convolutional):
        if leaf.bias_mode == "pixel":
            raise ValueError(
                f"{leaf.label} has an untied per-pixel bias (bias='pixel', shape "
                f"{(leaf.depth, *(leaf.output_hw or ()))}); PyTorch's Conv2d bias is one per channel, so "
                "it has no PyTorch equivalent. Build the layer with bias='channel' (or 'none')."
            )
        names = {"kernels": "weight", "biases": "bias"}
        return {k: v for k, v in names.items() if k in leaf.param_names}
    if isinstance(leaf, Dense):
        return {"weights": "weight", "bias": "bias"}
    if isinstance(leaf, BatchNorm):
        return {
            "gamma": "weight",
            "beta": "bias",
            "running_mean": "running_mean",
            "running_var": "running_var",
        }
    raise TypeError(
        f"{leaf.label} has arrays {sorted(leaf.tensors())} but no PyTorch mapping; supported layers: "
        "Convolutional (Conv2d), Dense (Linear), BatchNorm (BatchNorm1d/2d)."
    )


def _leaves(model, where: str) -> list[Layer]:
    """The leaves with parameters or state, built (their shapes are needed)."""
    if not isinstance(model, Layer):
        raise TypeError(
            f"{where}: expected model to be an xpcnn model or layer, received {type(model).__name__}."
        )
    leaves = [leaf for leaf in model.leaves() if leaf.param_names or leaf.state_names]
    for leaf in leaves:
        if not leaf.built:
            raise ValueError(
                f"{where}: {leaf.label} is not built yet (its sizes come from its first input); build the "
                "model first, e.g. model.build(input_shape)."
            )
    return leaves


def _modules(state_dict, argument: str, where: str) -> list[tuple[str, dict[str, str]]]:
    """``[(module prefix, {suffix: key})]`` in the order the modules first appear."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{where}: expected {argument} to be a mapping of PyTorch names to arrays (e.g. "
            f"torch_model.state_dict()), received {type(state_dict).__name__}."
        )
    modules: dict[str, dict[str, str]] = {}
    for key in state_dict:
        if not isinstance(key, str):
            raise TypeError(f"{where}: {argument} keys must be strings, received {key!r}.")
        prefix, _, suffix = key.rpartition(".")
        if suffix not in IGNORED:
            modules.setdefault(prefix, {})[suffix] = key
    return list(modules.items())


def _shown(prefix: str, keys: dict[str, str]) -> str:
    return f"module {prefix!r} ({', '.join(sorted(keys))})" if prefix else f"top-level keys {sorted(keys)}"


def _pair(leaves, modules, argument: str, strict: bool, problems: list[str], leftovers: list[str]):
    """Pair leaves with modules by order: ``[(leaf, {xpcnn name: key})]``.  A pair whose keys do
    not fit goes to ``problems``, leftovers on either side to ``leftovers`` (both only under
    ``strict``; a layer without a PyTorch mapping always)."""
    pairs = []
    for leaf, (prefix, keys) in zip(leaves, modules, strict=False):
        try:
            names = _torch_names(leaf)
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
            continue
        missing = [s for s in names.values() if s not in keys]
        extra = sorted(s for s in keys if s not in names.values())
        if strict and (missing or extra):
            problems.append(
                f"{leaf.label} takes {list(names.values())} but {argument}'s {_shown(prefix, keys)} is matched "
                f"with it; missing {missing}, unexpected {extra} (a PyTorch layer of another kind, or the "
                "modules are in another order?)"
            )
            continue
        pairs.append((leaf, {name: keys[s] for name, s in names.items() if s in keys}))
    if strict and len(leaves) != len(modules):
        if len(leaves) > len(modules):
            rest = ", ".join(leaf.label for leaf in leaves[len(modules) :])
            leftovers.append(f"the model has {len(leaves)} layers with arrays, {argument} {len(modules)} "
                            f"modules; left over in the model: {rest}")  # fmt: skip
        else:
            rest = ", ".join(_shown(p, k) for p, k in modules[len(leaves) :])
            leftovers.append(f"{argument} has {len(modules)} modules, the model {len(leaves)} layers with "
                            f"arrays; left over in {argument}: {rest}")  # fmt: skip
    return pairs


def _raise(where: str, problems: list[str], changed: str) -> None:
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ValueError(f"{where}: {len(problems)} problem(s), {changed}:\n{lines}")


def _host(value: Any, key: str, argument: str, where: str) -> np.ndarray:
    """A state_dict value as a NumPy array (torch tensors without importing torch)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        try:
            return value.detach().cpu().numpy()
        except (TypeError, RuntimeError) as exc:  # e.g. bfloat16, which NumPy has no dtype for
            raise TypeError(
                f"{where}: {argument}[{key!r}] cannot be read as a NumPy array ({exc}); convert it first, "
                "e.g. tensor.float()."
            ) from None
    if backend.is_array(value) or backend.is_host_scalar(value):
        return backend.to_host(value)
    raise TypeError(
        f"{where}: {argument}[{key!r}] must be an array or tensor, received {type(value).__name__}."
    )


def _prefix(leaf: Layer, position: int, count: int) -> str:
    """The default PyTorch module name: the layer's index in the model (``"3"``, ``"2.block.0"``),
    as an ``nn.Sequential`` of the same layers names it."""
    if leaf.index is not None:
        return str(leaf.index)
    return "" if count == 1 else str(position)


def load_torch_state_dict(
    model: Layer, state_dict: Mapping[str, Any], *, strict: bool = True
) -> dict[str, str]:
    """Copy a PyTorch ``state_dict`` into ``model``'s parameters and running statistics.

    Args:
        model: an xpcnn ``Sequential`` (or a single layer), built.
        state_dict: PyTorch names -> arrays or tensors, e.g. ``torch_model.state_dict()``;
            its modules are matched to the model's layers with arrays by order (see the
            module docstring for the per-layer mapping and shapes).
        strict: ``True``: every module and key of ``state_dict`` must match a layer's array
            and every layer with arrays a module, else ``ValueError`` listing what is left
            over.  ``False``: trailing leftovers on either side and missing or extra keys
            within a matched module are skipped (the arrays not named keep their values).
            Shapes are checked either way.

    Arrays are converted to the model's dtype on load, as a copy, and moved to its device.
    Everything is checked before anything is replaced: on an error the model is unchanged.

    Returns:
        ``{state_dict key: xpcnn name}`` for every key loaded, the xpcnn name as
        ``model.parameters()`` names it (``"features.0.weight" -> "0.kernels"``).

    Raises:
        ValueError: a shape mismatch (naming both sides), a leftover under ``strict``, an
            untied bias, an unbuilt layer.  TypeError: a value that is not an array, a layer
            without a PyTorch mapping.
    """
    where = "load_torch_state_dict"
    if not isinstance(strict, bool):
        raise TypeError(f"{where}: expected strict to be True or False, received {strict!r}.")
    leaves = _leaves(model, where)
    problems: list[str] = []
    leftovers: list[str] = []
    modules = _modules(state_dict, "state_dict", where)
    pairs = _pair(leaves, modules, "state_dict", strict, problems, leftovers)
    plan = []  # (leaf, parameters, state), everything converted and checked
    loaded: dict[str, str] = {}
    for leaf, names in pairs:
        current = leaf.tensors()
        params: dict[str, np.ndarray] = {}
        state: dict[str, np.ndarray] = {}
        for name, key in names.items():
            host = _host(state_dict[key], key, "state_dict", where)
            want, got = tuple(current[name].shape), tuple(host.shape)
            if got != want:
                problems.append(f"{leaf.label} {name} has shape {want} but state_dict[{key!r}] has {got}")
                continue
            if host.dtype.kind not in "fiu":
                problems.append(f"state_dict[{key!r}] has dtype {host.dtype}; expected a real number dtype")
                continue
            (params if name in leaf.param_names else state)[name] = np.asarray(host, dtype=leaf.dtype)
            loaded[key] = name if leaf.index is None else f"{leaf.index}.{name}"
        plan.append((leaf, params, state))
    _raise(where, problems + leftovers, "nothing was changed")
    before = [(leaf, leaf.tensors()) for leaf, _, _ in plan]
    try:
        for leaf, params, state in plan:  # set_parameters copies onto the layer's placement
            if params:
                leaf.set_parameters(params)
            if state:
                leaf.set_state(state)
    except BaseException:  # not expected after the checks; the model stays as it was anyway
        for leaf, arrays in before:
            for name, value in arrays.items():
                setattr(leaf, name, value)
        raise
    return loaded


def to_torch_state_dict(model: Layer, template: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """``model``'s parameters and running statistics as a PyTorch ``state_dict`` of NumPy arrays.

    Args:
        model: an xpcnn ``Sequential`` (or a single layer), built.
        template: optional, a PyTorch ``state_dict`` (e.g. ``torch_model.state_dict()``) to take
            the names from: its modules are matched to the model's layers with arrays by order
            (as :func:`load_torch_state_dict` does, strictly) and every shape is checked.  The
            result has the template's keys in its order; a ``num_batches_tracked`` entry is
            copied from the template (xpcnn keeps no count).  Without it, a layer's module is
            its index in the model (``"0.weight"``, ``"3.bias"``, ``"2.block.0.weight"``): the
            names of a ``torch.nn.Sequential`` of the same layers.

    Returns:
        ``{name: NumPy array}``, copies in the model's dtype, shapes as in the module
        docstring (PyTorch's).  Load it with
        ``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``
        (``load_state_dict`` casts to the torch model's dtype).

    Raises:
        ValueError: the template does not match the model (naming both sides), an untied
            bias, an unbuilt layer.
    """
    where = "to_torch_state_dict"
    leaves = _leaves(model, where)
    problems: list[str] = []
    if template is None:
        pairs = []
        for i, leaf in enumerate(leaves):
            try:
                names = _torch_names(leaf)
            except (TypeError, ValueError) as exc:
                problems.append(str(exc))
                continue
            prefix = _prefix(leaf, i, len(leaves))
            pairs.append((leaf, {n: f"{prefix}.{s}" if prefix else s for n, s in names.items()}))
        _raise(where, problems, "nothing was written")
        return {
            key: np.array(backend.to_host(leaf.tensors()[n]))
            for leaf, names in pairs
            for n, key in names.items()
        }
    leftovers: list[str] = []
    pairs = _pair(leaves, _modules(template, "template", where), "template", True, problems, leftovers)
    out: dict[str, np.ndarray] = {}
    for leaf, names in pairs:
        arrays = leaf.tensors()
        for name, key in names.items():
            want, got = tuple(arrays[name].shape), tuple(template[key].shape)
            if got != want:
                problems.append(f"{leaf.label} {name} has shape {want} but template[{key!r}] has {got}")
            out[key] = np.array(backend.to_host(arrays[name]))
    _raise(where, problems + leftovers, "nothing was written")
    result = {}
    for key, value in template.items():  # the template's order, its bookkeeping entries kept
        if key in out:
            result[key] = out[key]
        elif key.rpartition(".")[2] in IGNORED:
            result[key] = np.array(_host(value, key, "template", where))
    return result
