"""Checkpoints: ``save(model, path)`` and ``load(path, device=...)``, never pickle.

File layout (little-endian throughout, in the spirit of safetensors)::

    bytes 0..8        n, the header length (unsigned 64-bit little-endian integer)
    bytes 8..8+n      the header: UTF-8 JSON object, padded with spaces to a multiple of 8
    bytes 8+n..end    the data section: raw tensor bytes, back to back, no gaps

The header (every key required unless marked optional)::

    {
      "format": "xpcnn.checkpoint",
      "format_version": "1.0",                 # "major.minor"
      "xpcnn_version": "0.1.0",                # optional, informative only (not checked)
      "architecture": [                        # one entry per layer, in order
        {"type": "Dense", "config": {...}},    # type: a key of xpcnn.layers.REGISTRY
        ...
      ],
      "tensors": {                             # "layers.<i>.<parameter>" -> where it lies
        "layers.0.weights": {"dtype": "float32", "shape": [3, 4], "data_offsets": [0, 48]},
        ...
      },
      "dtype": "float32",                      # optional: the model's dtype (Sequential.dtype)
      "metadata": {"epochs": "10", ...},       # optional: user strings (no optimizer state)
      "data_sha256": "<64 hex digits>",        # SHA-256 of the whole data section
      "header_sha256": "<64 hex digits>"       # SHA-256 of the canonical header without this key
    }

``data_offsets`` ``[begin, end)`` count from the start of the data section.  Tensor bytes are
host bytes (little-endian float32 / float64, C order), so a model saved from a GPU loads on the
CPU and the reverse.  The canonical header text is ``json.dumps(header, sort_keys=True,
separators=(",", ":"), ensure_ascii=True, allow_nan=False)``.

Version policy: a reader of format ``1.x`` reads every ``1.y`` file (a minor version only adds
optional keys, which older readers ignore); a file of a newer major version is refused with a
"newer format" error.

Safety (reliability.md, "Checkpoints"): layer types are looked up in the fixed registry by name,
never imported from a module path; the file is validated before anything is allocated (header
length against the file size and a cap, JSON, format and version, the header checksum, dtypes,
non-negative shapes whose byte sizes match their ranges, ranges inside the data section without
overlaps or gaps, the data checksum, each layer's parameter shapes against its configuration),
so allocations are bounded by the size of the file itself.  Every failure raises
:class:`CheckpointError`.  Writes are atomic: a temporary file in the same folder, flushed and
fsync-ed, then ``os.replace`` and an fsync of the folder; on any error the previous file is
untouched and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import secrets

import numpy as np

from . import backend
from .layers.base import REGISTRY, Layer

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "load", "load_metadata", "save"]

FORMAT = "xpcnn.checkpoint"
FORMAT_VERSION = "1.0"
_MAJOR = int(FORMAT_VERSION.split(".")[0])

#: Largest header accepted (bytes); a real header is a few kilobytes.
MAX_HEADER_BYTES = 16 * 2**20
#: Tensor dtypes a checkpoint may hold, with their little-endian NumPy codes.
DTYPES = {"float32": "<f4", "float64": "<f8"}
MAX_NDIM = 8
MAX_LAYERS = 100_000
_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"([0-9]{1,6})\.([0-9]{1,6})")
_TENSOR_NAME = re.compile(r"layers\.(0|[1-9][0-9]{0,5})\.([A-Za-z_][A-Za-z0-9_]{0,63})")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class CheckpointError(ValueError):
    """A checkpoint could not be saved or loaded: ``.path`` names the file, ``.reason`` says why."""

    def __init__(self, path, reason: str, action: str = "load"):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        verb = "Cannot save checkpoint" if action == "save" else "Invalid checkpoint"
        super().__init__(f"{verb} {self.path!r}: {reason}")

    def __reduce__(self):  # keep the error picklable (multiprocessing, pytest-xdist)
        return (type(self), (self.path, self.reason))


class _Bad(Exception):
    """Internal: a validation failure, turned into CheckpointError with the path."""


# ---------------------------------------------------------------------------------- saving
def _layers_of(model) -> list:
    if isinstance(model, Layer):
        return [model]
    layers = getattr(model, "layers", model)
    try:
        layers = list(layers)
    except TypeError:
        raise _Bad(
            f"expected a model with .layers or a list of layers, received {type(model).__name__}"
        ) from None
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise _Bad(f"item {i} is a {type(layer).__name__}, not an xpcnn Layer")
    if not layers:
        raise _Bad("the model has no layers")
    found = sorted({layer.dtype for layer in layers if layer.param_names})
    if len(found) > 1:
        raise _Bad(f"the layers have different dtypes {found}; convert them to one dtype first")
    return layers


def _model_dtype(model) -> str | None:
    """The model's dtype (``Sequential.dtype``), kept so that a model without parameters
    comes back with the same dtype; None for a plain list of layers."""
    if isinstance(model, Layer) or not hasattr(model, "dtype"):
        return None
    name = backend.dtype_name(model.dtype)
    if name not in DTYPES:
        raise _Bad(f"the model's dtype is {name}; checkpoints hold {' or '.join(DTYPES)} models")
    return name


def _canonical(header: dict) -> bytes:
    return json.dumps(
        header, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _header_digest(header: dict) -> str:
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(_canonical(body)).hexdigest()


def _host_tensor(value, where: str) -> np.ndarray:
    host = np.asarray(backend.to_host(value))
    name = backend.dtype_name(host.dtype)
    if name not in DTYPES:
        raise _Bad(f"{where} has dtype {name}; checkpoints hold {' or '.join(DTYPES)} tensors")
    return np.ascontiguousarray(host.astype(DTYPES[name], copy=False)).reshape(-1).view(np.uint8)


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _Bad(f"metadata must be a dict of strings, received {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise _Bad(f"metadata must map strings to strings, received {key!r}: {value!r}")
    return dict(metadata)


def _build_header(layers, metadata, dtype) -> tuple[dict, list[np.ndarray]]:
    architecture, tensors, blobs = [], {}, []
    offset = 0
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        where = f"layer {i} ({kind})"
        if REGISTRY.get(kind) is not type(layer):
            raise _Bad(
                f"{where} is not in the layer registry (xpcnn.layers.REGISTRY); register the class "
                "with @xpcnn.layers.register so that checkpoints can rebuild it by name"
            )
        try:
            config = json.loads(json.dumps(layer.config(), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise _Bad(f"{where}: config() is not JSON-serialisable ({exc})") from None
        if not isinstance(config, dict):
            raise _Bad(f"{where}: config() must return a dict, returned {type(config).__name__}")
        architecture.append({"type": kind, "config": config})
        for name, value in layer.parameters().items():
            if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
                raise _Bad(f"{where}: parameter name {name!r} is not an identifier")
            blob = _host_tensor(value, f"{where} parameter {name!r}")
            tensors[f"layers.{i}.{name}"] = {
                "dtype": backend.dtype_name(value.dtype),
                "shape": [int(d) for d in value.shape],
                "data_offsets": [offset, offset + blob.size],
            }
            offset += blob.size
            blobs.append(blob)
    digest = hashlib.sha256()
    for blob in blobs:
        digest.update(blob)
    from . import __version__

    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xpcnn_version": __version__,
        "architecture": architecture,
        "tensors": tensors,
        "metadata": metadata,
        "data_sha256": digest.hexdigest(),
    }
    if dtype is not None:
        header["dtype"] = dtype
    header["header_sha256"] = _header_digest(header)
    return header, blobs


def _encode_header(header: dict) -> bytes:
    text = _canonical(header)
    text += b" " * (-len(text) % 8)
    if len(text) > MAX_HEADER_BYTES:
        raise _Bad(f"the header would be {len(text)} bytes, more than the limit {MAX_HEADER_BYTES}")
    return len(text).to_bytes(8, "little") + text


def _write_bytes(f, buffer) -> None:
    """Write one buffer (a separate function so that tests can interrupt a write)."""
    f.write(buffer)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder: nothing to sync there
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _open_temporary(path: str):
    """A new file next to ``path`` (same folder, so os.replace is atomic), mode from the umask."""
    folder, base = os.path.split(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        return tmp, os.fdopen(fd, "wb")
    raise FileExistsError(f"could not create a temporary file next to {path!r}")  # pragma: no cover


def save(model, path, *, metadata: dict | None = None) -> None:
    """Save ``model`` (a ``Sequential``, or a list of layers) to ``path``, atomically.

    ``metadata``: an optional dict of strings stored in the header (e.g. epochs, a note); read
    it back with :func:`load_metadata`.  Parameters are written as host little-endian bytes,
    whatever device they live on.  ``path`` is used as given (no suffix is added).

    Raises :class:`CheckpointError` when the model cannot be described by the format (a layer
    outside the registry, a config that is not JSON, a non-float parameter); ``OSError`` from the
    file system passes through.  On any error the previous file at ``path`` is untouched.
    """
    path = os.fspath(path)
    try:
        header, blobs = _build_header(_layers_of(model), _check_metadata(metadata), _model_dtype(model))
        head = _encode_header(header)
    except _Bad as exc:
        raise CheckpointError(path, str(exc), action="save") from None
    if os.path.isdir(path):
        raise CheckpointError(path, "the path is a folder", action="save")
    path = os.path.abspath(path)
    tmp, f = _open_temporary(path)
    try:
        with f:
            _write_bytes(f, head)
            for blob in blobs:
                for start in range(0, blob.size, _CHUNK):
                    _write_bytes(f, blob[start : start + _CHUNK])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(os.path.dirname(path))


# --------------------------------------------------------------------------------- loading
def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise _Bad(f"the header repeats the key {key!r}")
        result[key] = value
    return result


def _no_constants(name):
    raise _Bad(f"the header contains {name}, which JSON does not allow")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Bad(f"the header contains the number {text:.40}, too large for a float")
    return value


def _parse_header(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
        header = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite_float
        )
    except _Bad:
        raise
    except (ValueError, RecursionError) as exc:
        raise _Bad(f"the header is not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict):
        raise _Bad(f"the header must be a JSON object, found a {type(header).__name__}")
    return header


def _check_version(header: dict) -> None:
    fmt = header.get("format")
    if fmt != FORMAT:
        raise _Bad(f"not an xpcnn checkpoint (format {fmt!r}, expected {FORMAT!r})")
    version = header.get("format_version")
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise _Bad(f"malformed format_version {version!r} (expected 'major.minor')")
    major = int(match.group(1))
    if major > _MAJOR:
        raise _Bad(
            f"the file uses format version {version}, a newer format than this xpcnn reads "
            f"({_MAJOR}.x); upgrade xpcnn to load it"
        )
    if major < _MAJOR:
        raise _Bad(f"unsupported old format version {version} (this xpcnn reads {_MAJOR}.x)")


def _check_digest(header: dict, key: str) -> str:
    value = header.get(key)
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _Bad(f"{key} must be 64 lowercase hexadecimal digits, found {value!r:.80}")
    return value


def _int(value, what: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _Bad(f"{what} must be an integer >= {minimum}, found {value!r:.80}")
    return value


def _check_tensors(header: dict, data_len: int, n_layers: int) -> dict:
    """Validate every tensor entry; return {layer index: {parameter: (dtype, shape, begin, end)}}."""
    tensors = header.get("tensors")
    if not isinstance(tensors, dict):
        raise _Bad(f"'tensors' must be an object, found {type(tensors).__name__}")
    by_layer: dict[int, dict] = {}
    spans = []
    for name, entry in tensors.items():
        match = _TENSOR_NAME.fullmatch(name)
        if match is None:
            raise _Bad(f"tensor name {name!r:.80} is not of the form 'layers.<index>.<parameter>'")
        index, param = int(match.group(1)), match.group(2)
        if index >= n_layers:
            raise _Bad(
                f"tensor {name!r} belongs to layer {index}, but the architecture has {n_layers} layers"
            )
        if not isinstance(entry, dict):
            raise _Bad(f"tensor {name!r}: entry must be an object")
        dtype = entry.get("dtype")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _Bad(f"tensor {name!r}: dtype {dtype!r:.80} is not allowed (allowed: {', '.join(DTYPES)})")
        shape = entry.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM:
            raise _Bad(
                f"tensor {name!r}: shape must be a list of at most {MAX_NDIM} sizes, found {shape!r:.80}"
            )
        shape = tuple(_int(d, f"tensor {name!r}: every size in the shape") for d in shape)
        offsets = entry.get("data_offsets")
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise _Bad(f"tensor {name!r}: data_offsets must be [begin, end], found {offsets!r:.80}")
        begin, end = (_int(v, f"tensor {name!r}: data_offsets") for v in offsets)
        if not begin <= end <= data_len:
            raise _Bad(
                f"tensor {name!r}: data_offsets [{begin}, {end}] lie outside the data section of "
                f"{data_len} bytes (truncated or corrupted file)"
            )
        nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize  # Python ints: no overflow
        if nbytes != end - begin:
            raise _Bad(
                f"tensor {name!r}: shape {list(shape)} of {dtype} needs {nbytes} bytes but data_offsets "
                f"[{begin}, {end}] hold {end - begin}"
            )
        by_layer.setdefault(index, {})[param] = (dtype, shape, begin, end)
        spans.append((begin, end, name))
    position, previous = 0, None
    for begin, end, name in sorted(spans):
        if begin < position:
            raise _Bad(f"tensors {previous!r} and {name!r} overlap in the data section")
        if begin > position:
            raise _Bad(f"bytes {position}..{begin} of the data section belong to no tensor")
        position, previous = end, name
    if position != data_len:
        raise _Bad(
            f"the data section has {data_len} bytes but the tensors cover {position} "
            "(truncated file, trailing bytes or a corrupted header length)"
        )
    return by_layer


def _check_architecture(header: dict) -> list:
    architecture = header.get("architecture")
    if not isinstance(architecture, list):
        raise _Bad(f"'architecture' must be a list, found {type(architecture).__name__}")
    if not architecture:
        raise _Bad("the architecture has no layers")
    if len(architecture) > MAX_LAYERS:
        raise _Bad(f"the architecture has {len(architecture)} layers, more than the limit {MAX_LAYERS}")
    known = ", ".join(sorted(REGISTRY))
    for i, entry in enumerate(architecture):
        if not isinstance(entry, dict):
            raise _Bad(f"architecture entry {i} must be an object")
        kind = entry.get("type")
        if not isinstance(kind, str) or kind not in REGISTRY:
            hint = " (module paths are never imported)" if isinstance(kind, str) and "." in kind else ""
            raise _Bad(
                f"layer {i}: unknown layer type {kind!r:.80}{hint}; a checkpoint can only name "
                f"registered layer types: {known}"
            )
        if not isinstance(entry.get("config"), dict):
            raise _Bad(f"layer {i} ({kind}): 'config' must be an object")
    return architecture


def _check_dtype_entry(header: dict) -> None:
    dtype = header.get("dtype")
    if dtype is not None and (not isinstance(dtype, str) or dtype not in DTYPES):
        raise _Bad(f"the model dtype {dtype!r:.80} is not allowed (allowed: {', '.join(DTYPES)})")


def _check_metadata_entry(header: dict) -> dict:
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _Bad("'metadata' must be an object of strings")
    return metadata


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Bad(f"the file ended after {len(data)} of {n} expected bytes (truncated)")
    return data


def _read_header(f, size: int) -> tuple[dict, int]:
    """Read and validate the header; return it and the length of the data section."""
    if size < 8:
        raise _Bad(
            f"the file has {size} bytes, fewer than the 8-byte header length (truncated or not a checkpoint)"
        )
    n = int.from_bytes(_read_exact(f, 8), "little")
    if n > MAX_HEADER_BYTES:
        raise _Bad(
            f"the header length is {n} bytes, more than the limit of {MAX_HEADER_BYTES} "
            "(not an xpcnn checkpoint, or a corrupted one)"
        )
    if n > size - 8:
        raise _Bad(f"the header length {n} runs past the end of the {size}-byte file (truncated)")
    header = _parse_header(_read_exact(f, n))
    _check_version(header)
    if _check_digest(header, "header_sha256") != _header_digest(header):
        raise _Bad("header checksum mismatch: the header was modified or corrupted")
    _check_digest(header, "data_sha256")
    return header, size - 8 - n


def _open(path):
    try:
        return open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise _Bad("no such file") from None
    except IsADirectoryError:
        raise _Bad("the path is a folder, not a checkpoint file") from None
    except OSError as exc:
        raise _Bad(f"cannot open the file ({exc.strerror or exc})") from None


def _read_data(f, data_len: int, expected: str) -> bytearray:
    data = bytearray(data_len)  # bounded by the actual file size
    view = memoryview(data)
    digest = hashlib.sha256()
    position = 0
    while position < data_len:
        got = f.readinto(view[position : position + _CHUNK])
        if not got:
            raise _Bad(f"the data section ended after {position} of {data_len} bytes (truncated)")
        digest.update(view[position : position + got])
        position += got
    view.release()
    if digest.hexdigest() != expected:
        raise _Bad("data checksum mismatch (SHA-256): the tensor bytes are corrupted")
    return data


# Parameter shapes implied by a configuration, checked against the file BEFORE the layer is
# built (constructors allocate their parameters: a hostile config must not make them huge).
def _pair_of(value, what: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, list) or len(value) != 2:
        raise _Bad(f"{what} must be an int or a pair of ints, found {value!r:.80}")
    return tuple(_int(v, what, minimum) for v in value)


def _dense_shapes(config: dict) -> dict:
    n_in = _int(config.get("input_size"), "input_size", 1)
    n_out = _int(config.get("output_size"), "output_size", 1)
    return {"weights": (n_out, n_in), "bias": (n_out,)}


def _convolutional_shapes(config: dict) -> dict:
    shape = config.get("input_shape")
    if not isinstance(shape, list) or len(shape) != 3:
        raise _Bad(f"input_shape must be [channels, height, width], found {shape!r:.80}")
    c, h, w = (_int(v, "input_shape", 1) for v in shape)
    kh, kw = _pair_of(config.get("kernel_size"), "kernel_size", 1)
    depth = _int(config.get("depth"), "depth", 1)
    ph, pw = _pair_of(config.get("padding", 0), "padding", 0)
    sh, sw = _pair_of(config.get("stride", 1), "stride", 1)
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise _Bad("the kernel is larger than the padded input")
    shapes = {"kernels": (depth, c, kh, kw)}
    bias = config.get("bias", "channel")
    if bias == "channel":
        shapes["biases"] = (depth,)
    elif bias == "pixel":
        shapes["biases"] = (depth, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    elif bias != "none":
        raise _Bad(f"bias must be 'channel', 'pixel' or 'none', found {bias!r:.80}")
    return shapes


_SHAPES = {"Dense": _dense_shapes, "Convolutional": _convolutional_shapes}


class _BudgetGenerator(np.random.Generator):
    """A Generator that refuses draws larger than the parameters the file holds: the fallback
    guard for registered layers without a shape rule in ``_SHAPES``."""

    def __init__(self, budget: int):
        super().__init__(np.random.PCG64(0))
        self._budget = budget

    def _spend(self, size):
        count = 1 if size is None else math.prod((size,) if isinstance(size, int) else size)
        if count > self._budget:
            raise _Bad(f"the configuration asks for {count} initial values; the file holds {self._budget}")
        self._budget -= count

    def uniform(self, low=0.0, high=1.0, size=None):
        self._spend(size)
        return super().uniform(low, high, size)

    def normal(self, loc=0.0, scale=1.0, size=None):
        self._spend(size)
        return super().normal(loc, scale, size)

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        self._spend(size)
        return super().standard_normal(size, dtype, out)

    def random(self, size=None, dtype=np.float64, out=None):
        self._spend(size)
        return super().random(size, dtype, out)


def _build_layer(i: int, entry: dict, stored: dict, data: bytearray) -> Layer:
    kind, config = entry["type"], entry["config"]
    where = f"layer {i} ({kind})"
    rule = _SHAPES.get(kind)
    if rule is not None:
        try:
            expected = rule(config)
        except _Bad as exc:
            raise _Bad(f"{where}: invalid config: {exc}") from None
        _compare_shapes(where, expected, {k: v[1] for k, v in stored.items()})
    cls = REGISTRY[kind]
    kwargs = dict(config)
    if rule is None and "seed" in inspect.signature(cls).parameters:
        kwargs["seed"] = _BudgetGenerator(sum(math.prod(v[1]) for v in stored.values()))
    try:
        layer = cls(**kwargs)
    except _Bad as exc:
        raise _Bad(f"{where}: {exc}") from None
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError) as exc:
        raise _Bad(f"{where}: the configuration does not build the layer ({exc})") from None
    _compare_shapes(
        where,
        {k: tuple(v.shape) for k, v in layer.parameters().items()},
        {k: v[1] for k, v in stored.items()},
    )
    values = {}
    for name, (dtype, shape, begin, _end) in stored.items():
        if dtype != layer.dtype:
            raise _Bad(
                f"{where}: parameter {name!r} is stored as {dtype} but the layer's dtype is {layer.dtype}"
            )
        flat = np.frombuffer(data, dtype=DTYPES[dtype], count=math.prod(shape), offset=begin)
        values[name] = flat.astype(dtype).reshape(shape)  # a native-order, writable copy
    layer.set_parameters(values)
    return layer


def _compare_shapes(where: str, expected: dict, stored: dict) -> None:
    for name in expected:
        if name not in stored:
            raise _Bad(f"{where}: parameter {name!r} is missing from the file")
    for name, shape in stored.items():
        if name not in expected:
            raise _Bad(f"{where}: the file holds a parameter {name!r} that the layer does not have")
        if tuple(shape) != tuple(expected[name]):
            raise _Bad(
                f"{where}: parameter {name!r} has shape {list(shape)} in the file but the layer's "
                f"configuration gives {list(expected[name])}"
            )


def _read(path):
    """Validate and read ``path``: (header, layers on the host)."""
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        header, data_len = _read_header(f, size)
        architecture = _check_architecture(header)
        by_layer = _check_tensors(header, data_len, len(architecture))
        _check_metadata_entry(header)
        _check_dtype_entry(header)
        data = _read_data(f, data_len, header["data_sha256"])
    layers = [_build_layer(i, entry, by_layer.get(i, {}), data) for i, entry in enumerate(architecture)]
    dtype = header.get("dtype")
    found = sorted({layer.dtype for layer in layers if layer.param_names})
    if dtype is None and len(found) > 1:
        raise _Bad(f"the layers have different dtypes {found}; a model has one dtype")
    for i, layer in enumerate(layers):
        if dtype is not None and layer.param_names and layer.dtype != dtype:
            raise _Bad(
                f"layer {i} ({type(layer).__name__}) has dtype {layer.dtype} but the model's dtype is {dtype}"
            )
    return header, layers


def _guarded(path, action):
    try:
        return action()
    except _Bad as exc:
        raise CheckpointError(path, str(exc)) from None
    except CheckpointError:
        raise
    except (
        OSError,
        EOFError,
        MemoryError,
        OverflowError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        RecursionError,
    ) as exc:  # a last line of defence: one error type, whatever went wrong
        raise CheckpointError(path, f"unreadable ({type(exc).__name__}: {exc})") from exc


def load(path, device="cpu"):
    """Load a checkpoint written by :func:`save` onto ``device`` (``"cpu"``, ``"cuda"``, a
    :class:`~xpcnn.backend.Placement`).

    Returns a ``Sequential`` whose parameters are bit-identical to the saved ones.  The file is
    fully validated first (see the module docstring); any problem raises :class:`CheckpointError`
    naming the path and the reason.  An unavailable ``device`` raises as ``placement`` does.
    """
    place = backend.placement(device)
    header, layers = _guarded(path, lambda: _read(path))
    return _model(layers, place, header.get("dtype"))


def _model(layers, place, dtype):
    from .model import Sequential

    return Sequential(layers, device=place, dtype=dtype)


def load_metadata(path) -> dict:
    """The ``metadata`` strings stored by ``save(..., metadata=...)`` (the header is validated,
    including its checksum; the tensors are not read)."""

    def read():
        with _open(path) as f:
            header, data_len = _read_header(f, os.fstat(f.fileno()).st_size)
            _check_tensors(header, data_len, len(_check_architecture(header)))
            return dict(_check_metadata_entry(header))

    return _guarded(path, read)
