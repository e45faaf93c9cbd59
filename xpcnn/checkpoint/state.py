"""The content of a model checkpoint: layers and parameters <-> the header of the format.

The ``__metadata__`` strings added to those of :mod:`xpcnn.checkpoint.format` (format 2.x)::

      "xpcnn_version": "0.2.0",                 # informative only (not checked)
      "architecture": "[{\"type\": \"Dense\", \"config\": {...}}, ...]"
                                                # JSON: one entry per layer, in order
      "dtype": "float32",                       # the model's dtype (Sequential.dtype)
      "training": "{\"loss\": ..., \"optimizer\": ...}"
                                                # optional, JSON: xpcnn.checkpoint.training
      "<user key>": "<user value>", ...         # save(..., metadata=...)

and the tensors are named ``"layers.<k>.<parameter>"`` (``k`` counts the layers that are not
containers, depth first), plus ``"optimizer.<k>.<parameter>.<slot>"`` for the optimizer's
state when the training state is saved.  Layer types are looked up in the fixed registry by
name, never imported from a module path; each layer's stored parameter shapes are checked
against ``cls.parameter_shapes(config)`` (the layer class states them) before the layer is
built, so a hostile configuration cannot make a constructor allocate more than the file
holds.  Files of format 1.x held the same things as JSON values at the top of the header
(``"metadata"`` an object of strings); they are read too.
"""

from __future__ import annotations

import json
import re

import numpy as np

from .. import backend
from ..layers.base import REGISTRY, Layer
from . import format as fmt
from .format import DTYPES, MAX_LAYERS, Bad

__all__ = ["header_body", "read_layers", "read_metadata"]

_TENSOR_NAME = re.compile(r"layers\.(0|[1-9][0-9]{0,5})\.([A-Za-z_][A-Za-z0-9_]{0,63})")
#: The ``__metadata__`` keys of the content; user metadata may use any other key.
CONTENT_KEYS = ("xpcnn_version", "architecture", "dtype", "training")
_RESERVED = (*CONTENT_KEYS, *fmt.FORMAT_KEYS, fmt.METADATA)
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


# ---------------------------------------------------------------------------------- saving
def _layers_of(model) -> list:
    if isinstance(model, Layer) and not hasattr(model, "layers"):
        return [model]
    layers = getattr(model, "layers", model)
    try:
        layers = list(layers)
    except TypeError:
        raise Bad(
            f"expected a model with .layers or a list of layers, received {type(model).__name__}"
        ) from None
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise Bad(f"item {i} is a {type(layer).__name__}, not an xpcnn Layer")
    if not layers:
        raise Bad("the model has no layers")
    found = sorted({layer.dtype for layer in layers if layer.param_names})
    if len(found) > 1:
        raise Bad(f"the layers have different dtypes {found}; convert them to one dtype first")
    return layers


def _model_dtype(model) -> str | None:
    """The model's dtype (``Sequential.dtype``), kept so that a model without parameters
    comes back with the same dtype; None for a plain list of layers."""
    if not hasattr(model, "layers") or not hasattr(model, "dtype"):  # one layer, or a list
        return None
    name = backend.dtype_name(model.dtype)
    if name not in DTYPES:
        raise Bad(f"the model's dtype is {name}; checkpoints hold {' or '.join(DTYPES)} models")
    return name


def _host_tensor(value, where: str) -> np.ndarray:
    host = np.asarray(backend.to_host(value))
    name = backend.dtype_name(host.dtype)
    if name not in DTYPES:
        raise Bad(f"{where} has dtype {name}; checkpoints hold {' or '.join(DTYPES)} tensors")
    return host


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise Bad(f"metadata must be a dict of strings, received {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise Bad(f"metadata must map strings to strings, received {key!r}: {value!r}")
        if key in _RESERVED:
            raise Bad(f"the metadata key {key!r} is reserved (reserved: {', '.join(_RESERVED)})")
    return dict(metadata)


def _expected_shapes(cls, config: dict, where: str) -> dict:
    """``cls.parameter_shapes(config)``: what the layer class says its configuration implies."""
    try:
        return {k: tuple(v) for k, v in cls.parameter_shapes(config).items()}
    except NotImplementedError as exc:
        raise Bad(f"{where}: {exc} Checkpoints need it to check a file before building the layer") from None
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise Bad(f"{where}: invalid config: {exc}") from None


def _leaf_entry(layer, where: str) -> tuple[dict, dict]:
    """The architecture entry and the tensors of a layer that is not a container."""
    kind = type(layer).__name__
    try:
        config = json.loads(json.dumps(layer.config(), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise Bad(f"{where}: config() is not JSON-serialisable ({exc})") from None
    if not isinstance(config, dict):
        raise Bad(f"{where}: config() must return a dict, returned {type(config).__name__}")
    tensors = layer.tensors()  # the parameters and the state (running statistics)
    _compare_shapes(where, _expected_shapes(type(layer), config, where),
                    {k: tuple(v.shape) for k, v in tensors.items()})  # fmt: skip
    return {"type": kind, "config": config}, tensors


def _describe(layers: list, prefix: str, leaves: list) -> list:
    """The architecture entries of ``layers`` (containers nest their children); every leaf's
    ``(where, tensors)`` is appended to ``leaves``: its tensors are then named
    ``layers.<k>.<name>``, ``k`` counting the leaves depth first."""
    entries = []
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        where = f"layer {prefix}{i} ({kind})"
        if not layer.built:
            raise Bad(
                f"{where} is not built yet (its sizes come from its first input); build the model "
                "first, e.g. model.build(input_shape), or fit it"
            )
        if REGISTRY.get(kind) is not type(layer):
            raise Bad(
                f"{where} is not in the layer registry (xpcnn.layers.REGISTRY); register the class "
                "with @xpcnn.layers.register so that checkpoints can rebuild it by name"
            )
        children = layer.children()
        if children:
            entries.append({"type": kind, "config": layer.config(),
                            "children": {slot: _describe(inner, f"{prefix}{i}.{slot}.", leaves)
                                         for slot, inner in children.items()}})  # fmt: skip
            continue
        entry, params = _leaf_entry(layer, where)
        entries.append(entry)
        for name in params:
            if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
                raise Bad(f"{where}: parameter name {name!r} is not an identifier")
        leaves.append((where, params))  # leaf number len(leaves) - 1
    return entries


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def header_body(model, metadata=None, training=None) -> tuple[dict, list[tuple[str, np.ndarray]]]:
    """The content's ``__metadata__`` strings and the named host tensors of ``model`` (a
    ``Sequential``, a list of layers or one layer).  ``training``: ``None`` or the pair
    ``(info, tensors)`` of :func:`xpcnn.checkpoint.training.describe`."""
    layers, metadata, dtype = _layers_of(model), _check_metadata(metadata), _model_dtype(model)
    leaves: list = []
    architecture = _describe(layers, "", leaves)
    tensors = []
    for k, (where, params) in enumerate(leaves):
        for name, value in params.items():
            tensors.append((f"layers.{k}.{name}", _host_tensor(value, f"{where} parameter {name!r}")))
    from .. import __version__

    body = {"xpcnn_version": __version__, "architecture": _json(architecture), **metadata}
    if dtype is not None:
        body["dtype"] = dtype
    if training is not None:
        info, extra = training
        body["training"] = _json(info)
        tensors.extend(extra)
    return body, tensors


def _check_entries(entries, path: str, counter: list) -> None:
    """Check architecture ``entries`` (recursively into containers); ``counter[0]`` counts the
    leaves, bounded by :data:`MAX_LAYERS`."""
    if not isinstance(entries, list):
        raise Bad(f"{path or 'architecture'} must be a list, found {type(entries).__name__}")
    known = ", ".join(sorted(REGISTRY))
    for i, entry in enumerate(entries):
        where = f"{path}{i}"
        if not isinstance(entry, dict):
            raise Bad(f"architecture entry {where} must be an object")
        kind = entry.get("type")
        if not isinstance(kind, str) or kind not in REGISTRY:
            hint = " (module paths are never imported)" if isinstance(kind, str) and "." in kind else ""
            raise Bad(
                f"layer {where}: unknown layer type {kind!r:.80}{hint}; a checkpoint can only name "
                f"registered layer types: {known}"
            )
        if not isinstance(entry.get("config"), dict):
            raise Bad(f"layer {where} ({kind}): 'config' must be an object")
        slots = REGISTRY[kind].child_slots
        children = entry.get("children")
        if slots:
            if not isinstance(children, dict) or not set(children) <= set(slots) or slots[0] not in children:
                raise Bad(f"layer {where} ({kind}): 'children' must be an object with {list(slots)}")
            for slot, inner in children.items():
                _check_entries(inner, f"{where}.{slot}.", counter)
        else:
            if children is not None:
                raise Bad(f"layer {where} ({kind}) is not a container but has 'children'")
            counter[0] += 1
            if counter[0] > MAX_LAYERS:
                raise Bad(f"the architecture has more than {MAX_LAYERS} layers, the limit")


class Content:
    """What a validated header says about the model: ``architecture`` (list), ``dtype`` (or
    None), ``metadata`` (the user's strings), ``training`` (a dict, or None)."""

    def __init__(self, header: fmt.Header):
        keys = header.keys
        if header.major == 1:
            self.architecture = keys.get("architecture")
            self.metadata = keys.get("metadata", {})
            self.training = None
        else:
            self.architecture = _parsed(keys, "architecture")
            self.metadata = {k: v for k, v in keys.items() if k not in _RESERVED}
            self.training = _parsed(keys, "training") if "training" in keys else None
            if self.training is not None and not isinstance(self.training, dict):
                raise Bad("'training' must hold a JSON object")
        self.dtype = keys.get("dtype")


def _parsed(keys: dict, key: str):
    text = keys.get(key)
    if not isinstance(text, str):
        raise Bad(f"the metadata has no {key!r} string (not a model checkpoint)")
    try:  # the bounds again on the decoded text: escapes such as \u005b hid its brackets
        fmt._check_structure(text.encode("utf-8"))
    except Bad as exc:
        raise Bad(f"{key!r}: {exc}") from None
    try:
        return json.loads(text, object_pairs_hook=fmt._no_duplicates, parse_constant=fmt._no_constants,
                          parse_float=fmt._finite_float)  # fmt: skip
    except Bad:
        raise
    except (ValueError, RecursionError) as exc:
        raise Bad(f"{key!r} is not valid JSON ({type(exc).__name__}: {exc})") from None


def _check_architecture(content: Content) -> tuple[list, int]:
    """The architecture and its number of leaves (layers that hold tensors)."""
    architecture = content.architecture
    if not isinstance(architecture, list):
        raise Bad(f"'architecture' must be a list, found {type(architecture).__name__}")
    if not architecture:
        raise Bad("the architecture has no layers")
    if len(architecture) > MAX_LAYERS:
        raise Bad(f"the architecture has {len(architecture)} layers, more than the limit {MAX_LAYERS}")
    counter = [0]
    _check_entries(architecture, "", counter)
    return architecture, counter[0]


def _check_dtype_entry(content: Content) -> None:
    dtype = content.dtype
    if dtype is not None and (not isinstance(dtype, str) or dtype not in DTYPES):
        raise Bad(f"the model dtype {dtype!r:.80} is not allowed (allowed: {', '.join(DTYPES)})")


def _check_metadata_entry(content: Content) -> dict:
    metadata = content.metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise Bad("'metadata' must be an object of strings")
    return metadata


def _by_layer(tensors: dict, n_layers: int, training: bool = False) -> dict:
    """``{layer index: {parameter: entry}}`` from the format's tensor table (``optimizer.``
    tensors, allowed with a training state, are left to :mod:`xpcnn.checkpoint.training`)."""
    by_layer: dict[int, dict] = {}
    for name, entry in tensors.items():
        if training and name.startswith("optimizer."):
            continue
        match = _TENSOR_NAME.fullmatch(name)
        if match is None:
            raise Bad(f"tensor name {name!r:.80} is not of the form 'layers.<index>.<parameter>'")
        index, param = int(match.group(1)), match.group(2)
        if index >= n_layers:
            raise Bad(f"tensor {name!r} belongs to layer {index}, but the architecture has {n_layers} layers")
        by_layer.setdefault(index, {})[param] = entry
    return by_layer


def _build_layer(i: int | str, entry: dict, stored: dict, data: bytearray) -> Layer:
    kind, config = entry["type"], entry["config"]
    where = f"layer {i} ({kind})"
    cls = REGISTRY[kind]
    shapes = {k: v[1] for k, v in stored.items()}
    _compare_shapes(where, _expected_shapes(cls, config, where), shapes)  # before any allocation
    try:
        layer = cls(**config)
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError) as exc:
        raise Bad(f"{where}: the configuration does not build the layer ({exc})") from None
    _compare_shapes(where, {k: tuple(v.shape) for k, v in layer.tensors().items()}, shapes)
    for name, (dtype, *_rest) in stored.items():
        if dtype != layer.dtype:
            raise Bad(
                f"{where}: parameter {name!r} is stored as {dtype} but the layer's dtype is {layer.dtype}"
            )
    layer.set_tensors({name: fmt.tensor(data, e) for name, e in stored.items()})
    return layer


def _compare_shapes(where: str, expected: dict, stored: dict) -> None:
    for name in expected:
        if name not in stored:
            raise Bad(f"{where}: parameter {name!r} is missing from the file")
    for name, shape in stored.items():
        if name not in expected:
            raise Bad(f"{where}: the file holds a parameter {name!r} that the layer does not have")
        if tuple(shape) != tuple(expected[name]):
            raise Bad(
                f"{where}: parameter {name!r} has shape {list(shape)} in the file but the layer's "
                f"configuration gives {list(expected[name])}"
            )


def _check_content(header: fmt.Header) -> None:
    """The model's header keys, checked before the format reads the tensor table."""
    content = Content(header)
    _, leaves = _check_architecture(content)
    if isinstance(header.tensors, dict):
        _by_layer(header.tensors, leaves, content.training is not None)  # names and layer indices
    _check_metadata_entry(content)
    _check_dtype_entry(content)


def _build(entries: list, prefix: str, by_layer: dict, data: bytearray, counter: list) -> list[Layer]:
    """The layers of ``entries``: leaves built from their tensors (leaf ``counter[0]``, depth
    first), containers from their children."""
    layers = []
    for i, entry in enumerate(entries):
        cls = REGISTRY[entry["type"]]
        if cls.child_slots:
            stored = entry["children"]  # read in the class's slot order, as _describe wrote them
            children = {slot: _build(stored[slot], f"{prefix}{i}.{slot}.", by_layer, data, counter)
                        for slot in cls.child_slots if slot in stored}  # fmt: skip
            try:
                layers.append(cls.from_children(entry["config"], children))
            except (TypeError, ValueError, KeyError) as exc:
                raise Bad(
                    f"layer {prefix}{i} ({entry['type']}): the configuration does not build it ({exc})"
                ) from None
            continue
        k = counter[0]
        counter[0] += 1
        layers.append(_build_layer(f"{prefix}{i}", entry, by_layer.get(k, {}), data))
    return layers


def read_layers(path) -> tuple[Content, list[Layer], dict]:
    """Validate and read ``path``: its content, its layers (on the host) and the host arrays
    of its ``optimizer.`` tensors by name (raises ``Bad``)."""
    header, tensors, data = fmt.read(path, _check_content)
    assert data is not None
    content = Content(header)
    architecture, count = _check_architecture(content)
    by_layer = _by_layer(tensors, count, content.training is not None)
    layers = _build(architecture, "", by_layer, data, [0])
    extra = {name: fmt.tensor(data, e) for name, e in tensors.items() if name.startswith("optimizer.")}
    leaves = [leaf for layer in layers for leaf in layer.leaves()]
    dtype = content.dtype
    found = sorted({leaf.dtype for leaf in leaves if leaf.param_names})
    if dtype is None and len(found) > 1:
        raise Bad(f"the layers have different dtypes {found}; a model has one dtype")
    for leaf in leaves:
        if dtype is not None and leaf.param_names and leaf.dtype != dtype:
            raise Bad(f"{leaf.label} has dtype {leaf.dtype} but the model's dtype is {dtype}")
    return content, layers, extra


def read_metadata(path) -> dict:
    """The validated header's user metadata (the tensors are not read; raises ``Bad``)."""
    header, _, _ = fmt.read(path, _check_content, data=False)
    return dict(Content(header).metadata)
