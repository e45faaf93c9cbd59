"""The checkpoint file format: bytes, header, digests, atomic writes.  Nothing about models.

Since format 2.0 an xpcnn checkpoint is a valid `safetensors <https://github.com/huggingface/
safetensors>`_ file (little-endian throughout)::

    bytes 0..8        n, the header length (unsigned 64-bit little-endian integer)
    bytes 8..8+n      the header: UTF-8 JSON object, padded with spaces to a multiple of 8
    bytes 8+n..end    the data section: raw tensor bytes, back to back, no gaps

The header maps each tensor name to ``{"dtype": "F32" | "F64", "shape": [...],
"data_offsets": [begin, end]}`` (``[begin, end)`` counting from the start of the data
section) and holds one more key, ``"__metadata__"``, an object of strings: ``format``
(``"xpcnn.checkpoint"``), ``format_version`` (``"major.minor"``), ``data_sha256`` (SHA-256 of
the whole data section), ``header_sha256`` (SHA-256 of the canonical header without this
key), and whatever the content layer (:mod:`xpcnn.checkpoint.state`) puts there.  The
canonical header text is ``json.dumps(header, sort_keys=True, separators=(",", ":"),
ensure_ascii=True, allow_nan=False)``; xpcnn writes ``header_sha256`` first and then the
canonical text, so a reader checks the digest on the raw bytes before parsing anything.
``safetensors.numpy.load_file`` and ``safe_open`` read every tensor of such a file.

A file written by another safetensors writer (``safetensors.numpy.save_file(tensors, path,
metadata=...)``) has no digests; it loads when its ``__metadata__`` says so with
``"checksums": "none"`` (see :func:`xpcnn.checkpoint.safetensors_metadata`); otherwise both
digests are required, so that a corrupted key cannot switch the checks off.

Format 1.x (xpcnn 0.1 before 2.0) is still read: the same three parts, but the header held
``format``, ``format_version``, ``tensors`` (name -> ``{"dtype": "float32" | "float64", ...}``),
the digests and the content keys at its top level.

Version policy: a reader of format ``2.x`` reads every ``2.y`` and ``1.y`` file (a minor
version only adds optional keys, which older readers ignore); a file of a newer major
version is refused with a "newer format" error.

Safety (reliability.md, "Checkpoints"): the file is validated before anything is allocated
(header length against the file size and a cap, the size of the JSON structure, JSON, format
and version, the header checksum, dtypes, non-negative shapes whose byte sizes match their
ranges, ranges inside the data section without overlaps or gaps, the data checksum), so
allocations are bounded by the size of the file itself.  Every failure raises
:class:`CheckpointError`.  Writes are atomic: a temporary file in the same folder, flushed
and fsync-ed, then ``os.replace`` and an fsync of the folder; on any error the previous file
is untouched and the temporary file is removed.  A temporary is named
``.<name>.<pid>-<random>.tmp``; each save first removes, silently, the temporaries of the
same target that a killed save left (writer process gone, or untouched for a minute before
this save started).  A file-system error is raised as the same ``OSError`` subclass, naming
the checkpoint's path (not the temporary's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import time

import numpy as np

__all__ = ["DTYPES", "FORMAT", "FORMAT_VERSION", "CheckpointError", "Header", "read", "tensor", "write"]

FORMAT = "xpcnn.checkpoint"
FORMAT_VERSION = "2.0"
_MAJOR = int(FORMAT_VERSION.split(".")[0])
#: The key of the header that holds the metadata strings (safetensors' name for it).
METADATA = "__metadata__"
#: The ``__metadata__`` keys this module owns (the content layer may not use them).
FORMAT_KEYS = ("format", "format_version", "header_sha256", "data_sha256", "checksums")

#: Largest header accepted (bytes); a real header is a few kilobytes (about 250 bytes a layer).
MAX_HEADER_BYTES = 2 * 2**20
#: Most JSON objects and arrays a header may hold (counted on the raw bytes, before parsing);
#: a real header has about 13 a layer.
MAX_CONTAINERS = 65_536
#: Most entries (object members and array items, counted as commas on the raw bytes) a
#: header may hold; a real one has about 25 a layer.
MAX_ENTRIES = 131_072
#: Deepest nesting of objects and arrays a header may have (a real one has about 6 levels).
MAX_DEPTH = 64
#: Tensor dtypes a checkpoint may hold, with their little-endian NumPy codes.
DTYPES = {"float32": "<f4", "float64": "<f8"}
#: The same dtypes under their safetensors names (format 2.x).
SAFETENSORS_DTYPES = {"F32": "float32", "F64": "float64"}
_CODES = {v: k for k, v in SAFETENSORS_DTYPES.items()}
#: Tensor names a 2.x file may hold: they start with a lowercase letter, so that the header's
#: canonical text starts with ``__metadata__`` (``_`` sorts before ``a``-``z``).
_TENSOR = re.compile(r"[a-z][A-Za-z0-9_.]{0,199}")
MAX_NDIM = 8
MAX_LAYERS = 2048
_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"([0-9]{1,6})\.([0-9]{1,6})")


class CheckpointError(ValueError):
    """A checkpoint could not be saved or loaded: ``.path`` names the file, ``.reason`` says why."""

    def __init__(self, path, reason: str, action: str = "load"):
        self.path = None if path is None else os.fspath(path)
        self.reason, self.action = reason, action
        verb = "Cannot save checkpoint" if action == "save" else "Invalid checkpoint"
        super().__init__(f"{verb} {self.path!r}: {reason}")

    def __reduce__(self):  # keep the error picklable (multiprocessing, pytest-xdist)
        return (type(self), (self.path, self.reason, self.action))


class Bad(Exception):
    """A validation failure inside the package, turned into CheckpointError with the path."""


def _canonical(header: dict) -> bytes:
    return json.dumps(
        header, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _header_digest(header: dict) -> str:
    return hashlib.sha256(_canonical(_without_digest(header))).hexdigest()


#: Every header this xpcnn writes starts with one of these openings (2.x, then 1.x), then the
#: 64 hex digits of ``header_sha256`` and ``",``: a reader finds the digest at a fixed place
#: and checks it against the raw bytes before parsing anything.
_OPENINGS = (b'{"__metadata__":{', b"{")
_DIGEST_KEY = b'"header_sha256":"'


def _without_digest(header: dict) -> dict:
    """The header without ``header_sha256`` (in ``__metadata__`` for 2.x, at the top for 1.x)."""
    if isinstance(header.get(METADATA), dict):
        meta = {k: v for k, v in header[METADATA].items() if k != "header_sha256"}
        return {**header, METADATA: meta}
    return {k: v for k, v in header.items() if k != "header_sha256"}


def _encode_header(header: dict) -> bytes:
    """The header bytes of a 2.x ``header``: ``{"__metadata__":{"header_sha256":"<64 hex>",``
    and then the rest of the canonical text of the header without that key, padded.

    ``header_sha256`` is SHA-256 of that canonical text, which is the opening followed by what
    comes after the digest, so the digest can be checked on the raw bytes too."""
    body = _canonical(_without_digest(header))
    opening = _OPENINGS[0]
    if not body.startswith(opening) or body.startswith(opening + b"}"):  # pragma: no cover
        raise Bad("internal error: the canonical header does not start with its metadata")
    digest = hashlib.sha256(body).hexdigest().encode("ascii")
    text = opening + _DIGEST_KEY + digest + b'",' + body[len(opening) :]
    text += b" " * (-len(text) % 8)
    if len(text) > MAX_HEADER_BYTES:
        raise Bad(f"the header would be {len(text)} bytes, more than the limit {MAX_HEADER_BYTES}")
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


def _temporary_name(folder: str, base: str) -> str:
    """``.<name>.<pid>-<random>.tmp``: the writer's process id lets a later save tell a stale
    temporary (its writer is gone) from one that a live save is still writing."""
    return os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(6)}.tmp")


_TEMPORARY = re.compile(r"\.(?P<base>.+)\.(?:(?P<pid>[0-9]{1,10})-)?[0-9a-f]{12}\.tmp")


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: decide by age only
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale_temporaries(path: str, started: float) -> None:
    """Remove the temporaries of ``path`` that a killed save left behind: those whose writer
    process is gone, and those (of any writer) last modified before ``started``, the start of
    this save, by more than a minute.  Silent: a file that cannot be removed stays."""
    folder, base = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    for name in names:
        match = _TEMPORARY.fullmatch(name)
        if match is None or match.group("base") != base:
            continue
        full = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            pid = match.group("pid")
            gone = pid is not None and int(pid) != os.getpid() and not _alive(int(pid))
            if gone or os.stat(full).st_mtime < started - 60:  # (a restarted job may reuse a pid)
                os.unlink(full)


def _open_temporary(path: str):
    """A new file next to ``path`` (same folder, so os.replace is atomic), mode from the umask."""
    folder, base = os.path.split(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = _temporary_name(folder, base)
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        return tmp, os.fdopen(fd, "wb")
    raise FileExistsError(f"could not create a temporary file next to {path!r}")  # pragma: no cover


def _with_target(exc: OSError, path: str) -> OSError:
    """The same kind of OSError, naming the checkpoint's path instead of the temporary file."""
    reason = exc.strerror or str(exc)
    folder = os.path.dirname(path)
    if isinstance(exc, FileNotFoundError) and not os.path.isdir(folder):
        reason = f"the folder {folder!r} does not exist"
    new = type(exc)(exc.errno, f"Cannot save checkpoint: {reason}", path)
    return new


def write(path: str, metadata: dict[str, str], tensors: list[tuple[str, np.ndarray]]) -> None:
    """Write the content's ``metadata`` strings and the named host ``tensors`` to ``path``
    (format 2.x, a safetensors file), atomically: the format keys, the tensor entries and both
    digests are added here."""
    for key, value in metadata.items():
        if key in FORMAT_KEYS or key == METADATA:
            raise Bad(f"the metadata key {key!r} is reserved by the checkpoint format")
        if not isinstance(key, str) or not isinstance(value, str):
            raise Bad(f"metadata must map strings to strings, received {key!r}: {value!r:.80}")
    table, blobs, offset = {}, [], 0
    digest = hashlib.sha256()
    for name, host in tensors:
        if not isinstance(name, str) or not _TENSOR.fullmatch(name) or name in table:
            raise Bad(f"tensor name {name!r:.80} is not allowed (or repeated)")
        dtype = str(host.dtype)
        if dtype not in DTYPES:
            raise Bad(f"tensor {name!r} has dtype {dtype}; checkpoints hold {' or '.join(DTYPES)} tensors")
        blob = np.ascontiguousarray(host.astype(DTYPES[dtype], copy=False)).reshape(-1).view(np.uint8)
        table[name] = {"dtype": _CODES[dtype], "shape": [int(d) for d in host.shape],
                       "data_offsets": [offset, offset + blob.size]}  # fmt: skip
        offset += blob.size
        digest.update(blob.data)
        blobs.append(blob)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata, "data_sha256": digest.hexdigest()}
    head = _encode_header({METADATA: meta, **table})
    try:
        _check_structure(head[8:])  # never write a file that the reader would refuse
    except Bad as exc:
        raise Bad(f"{exc}; shorten the metadata (brackets and commas in strings count too)") from None
    if os.path.isdir(path):
        raise Bad("the path is a folder")
    path = os.path.abspath(path)
    remove_stale_temporaries(path, time.time())  # first: a full disk may need the space
    try:
        tmp, f = _open_temporary(path)
    except OSError as exc:
        raise _with_target(exc, path) from None
    try:
        with f:
            _write_bytes(f, head)
            for blob in blobs:
                for start in range(0, blob.size, _CHUNK):
                    _write_bytes(f, blob[start : start + _CHUNK])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # ENOSPC, EFBIG, EIO...: name the target, not the temporary
            raise _with_target(exc, path) from exc
        raise
    _fsync_folder(os.path.dirname(path))


# --------------------------------------------------------------------------------- reading
def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise Bad(f"the header repeats the key {key!r}")
        result[key] = value
    return result


def _no_constants(name):
    raise Bad(f"the header contains {name}, which JSON does not allow")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Bad(f"the header contains the number {text:.40}, too large for a float")
    return value


def _raw_digest_ok(raw: bytes) -> bool | None:
    """Check ``header_sha256`` on the raw bytes of a header written with the digest first:
    True or False; None for a header laid out otherwise (an older 1.x writer, another
    safetensors writer), whose digest is checked after parsing."""
    for opening in _OPENINGS:
        prefix = opening + _DIGEST_KEY
        end = len(prefix) + 64
        if raw.startswith(prefix) and raw[end : end + 2] == b'",':
            body = opening + raw[end + 2 :].rstrip(b" ")
            return hashlib.sha256(body).hexdigest().encode("ascii") == raw[len(prefix) : end]
    return None


def _check_structure(raw: bytes) -> None:
    """Bound the work a header can ask of the parser before it runs: the number of objects,
    arrays and entries and their nesting, counted on the raw bytes (brackets and commas inside
    strings count too: the counts err on the safe side; the depth can be skewed by brackets in
    strings, and json's own recursion limit, about 1,000, bounds what gets past).  Costs a few
    milliseconds for the largest header.  ``write`` applies it too, so a saved file always
    loads."""
    containers = raw.count(b"{") + raw.count(b"[")
    closers = raw.count(b"}") + raw.count(b"]")
    if max(containers, closers) > MAX_CONTAINERS:
        containers = max(containers, closers)
        raise Bad(
            f"the header holds {containers} objects and arrays, more than the limit {MAX_CONTAINERS} "
            "(not a header xpcnn writes)"
        )
    entries = raw.count(b",")
    if entries > MAX_ENTRIES:
        raise Bad(
            f"the header holds {entries} entries, more than the limit {MAX_ENTRIES} (not a header xpcnn writes)"
        )
    codes = np.frombuffer(raw, dtype=np.uint8)
    brackets = codes[np.isin(codes, _BRACKETS)]  # at most 2 * MAX_CONTAINERS
    depth = np.cumsum(np.where((brackets == ord("{")) | (brackets == ord("[")), 1, -1), dtype=np.int64)
    deepest = int(depth.max()) if depth.size else 0
    if deepest > MAX_DEPTH:
        raise Bad(f"the header nests {deepest} levels deep, more than the limit {MAX_DEPTH}")


_BRACKETS = np.frombuffer(b"{}[]", dtype=np.uint8)


def _parse_header(raw: bytes) -> dict:
    _check_structure(raw)
    try:
        text = raw.decode("utf-8")
        header = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite_float
        )
    except Bad:
        raise
    except (ValueError, RecursionError) as exc:
        raise Bad(f"the header is not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict):
        raise Bad(f"the header must be a JSON object, found a {type(header).__name__}")
    return header


def _check_version(keys: dict, layout: int) -> int:
    """Check ``format`` and ``format_version`` (top-level keys in 1.x, ``__metadata__`` in 2.x);
    return the major version."""
    fmt = keys.get("format")
    if fmt != FORMAT:
        hint = ""
        if layout == 2 and fmt is None:
            hint = "; a safetensors file without xpcnn's metadata (see xpcnn.checkpoint.safetensors_metadata)"
        raise Bad(f"not an xpcnn checkpoint (format {fmt!r}, expected {FORMAT!r}){hint}")
    version = keys.get("format_version")
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise Bad(f"malformed format_version {version!r} (expected 'major.minor')")
    major = int(match.group(1))
    if major > _MAJOR:
        raise Bad(
            f"the file uses format version {version}, a newer format than this xpcnn reads "
            f"({_MAJOR}.x); upgrade xpcnn to load it"
        )
    if major < 1:
        raise Bad(f"unsupported old format version {version} (this xpcnn reads 1.x and {_MAJOR}.x)")
    if major != layout:
        where = "in '__metadata__'" if layout == 2 else "at the top of the header"
        raise Bad(f"format version {version} does not match its layout (its keys are {where})")
    return major


def _check_digest(header: dict, key: str) -> str:
    value = header.get(key)
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise Bad(f"{key} must be 64 lowercase hexadecimal digits, found {value!r:.80}")
    return value


def _int(value, what: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise Bad(f"{what} must be an integer >= {minimum}, found {value!r:.80}")
    return value


def _check_tensors(tensors, data_len: int, dtypes: dict) -> dict:
    """Validate every tensor entry (``dtypes`` maps the file's dtype names to xpcnn's); return
    {name: (dtype, shape, begin, end)}."""
    if not isinstance(tensors, dict):
        raise Bad(f"'tensors' must be an object, found {type(tensors).__name__}")
    table: dict[str, tuple] = {}
    spans = []
    for name, entry in tensors.items():
        if not isinstance(entry, dict):
            raise Bad(f"tensor {name!r}: entry must be an object")
        dtype = entry.get("dtype")
        if not isinstance(dtype, str) or dtype not in dtypes:
            raise Bad(f"tensor {name!r}: dtype {dtype!r:.80} is not allowed (allowed: {', '.join(dtypes)})")
        dtype = dtypes[dtype]
        shape = entry.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM:
            raise Bad(
                f"tensor {name!r}: shape must be a list of at most {MAX_NDIM} sizes, found {shape!r:.80}"
            )
        shape = tuple(_int(d, f"tensor {name!r}: every size in the shape") for d in shape)
        offsets = entry.get("data_offsets")
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise Bad(f"tensor {name!r}: data_offsets must be [begin, end], found {offsets!r:.80}")
        begin, end = (_int(v, f"tensor {name!r}: data_offsets") for v in offsets)
        if not begin <= end <= data_len:
            raise Bad(
                f"tensor {name!r}: data_offsets [{begin}, {end}] lie outside the data section of "
                f"{data_len} bytes (truncated or corrupted file)"
            )
        nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize  # Python ints: no overflow
        if nbytes != end - begin:
            raise Bad(
                f"tensor {name!r}: shape {list(shape)} of {dtype} needs {nbytes} bytes but data_offsets "
                f"[{begin}, {end}] hold {end - begin}"
            )
        table[name] = (dtype, shape, begin, end)
        spans.append((begin, end, name))
    position, previous = 0, None
    for begin, end, name in sorted(spans):
        if begin < position:
            raise Bad(f"tensors {previous!r} and {name!r} overlap in the data section")
        if begin > position:
            raise Bad(f"bytes {position}..{begin} of the data section belong to no tensor")
        position, previous = end, name
    if position != data_len:
        raise Bad(
            f"the data section has {data_len} bytes but the tensors cover {position} "
            "(truncated file, trailing bytes or a corrupted header length)"
        )
    return table


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise Bad(f"the file ended after {len(data)} of {n} expected bytes (truncated)")
    return data


class Header:
    """A validated header: ``keys`` (the 1.x header itself, or the 2.x ``__metadata__``
    strings), ``major`` (1 or 2), ``tensors`` (the raw tensor entries), ``data_sha256`` (or
    None for a file that declares ``"checksums": "none"``)."""

    def __init__(self, keys: dict, major: int, tensors, data_sha256: str | None):
        self.keys, self.major, self.tensors, self.data_sha256 = keys, major, tensors, data_sha256


def _metadata_strings(header: dict) -> dict:
    meta = header[METADATA]
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise Bad("'__metadata__' must be an object of strings")
    return meta


def _digests(keys: dict, header: dict, raw_ok: bool | None) -> str | None:
    """Check ``header_sha256`` (when the raw check could not) and return ``data_sha256``; both
    may be absent only where a 2.x file says ``"checksums": "none"``."""
    checksums = keys.get("checksums")
    if checksums is not None and checksums != "none":
        raise Bad(f"'checksums' must be 'none' where it is given, found {checksums!r:.80}")
    if checksums == "none" and "header_sha256" not in keys and "data_sha256" not in keys:
        return None
    stored = _check_digest(keys, "header_sha256")
    if raw_ok is None and stored != _header_digest(header):
        raise Bad("header checksum mismatch: the header was modified or corrupted")
    return _check_digest(keys, "data_sha256")


def _read_header(f, size: int) -> tuple[Header, int]:
    """Read and validate the header; return it and the length of the data section."""
    if size < 8:
        raise Bad(
            f"the file has {size} bytes, fewer than the 8-byte header length (truncated or not a checkpoint)"
        )
    n = int.from_bytes(_read_exact(f, 8), "little")
    if n > MAX_HEADER_BYTES:
        raise Bad(
            f"the header length is {n} bytes, more than the limit of {MAX_HEADER_BYTES} "
            "(not an xpcnn checkpoint, or a corrupted one)"
        )
    if n > size - 8:
        raise Bad(f"the header length {n} runs past the end of the {size}-byte file (truncated)")
    raw = _read_exact(f, n)
    raw_ok = _raw_digest_ok(raw)
    if raw_ok is False:
        raise Bad("header checksum mismatch: the header was modified or corrupted")
    header = _parse_header(raw)
    tensors: object
    if METADATA in header or "format" not in header:  # 2.x: a safetensors file
        keys = _metadata_strings(header) if METADATA in header else {}
        major = _check_version(keys, 2)
        tensors = {k: v for k, v in header.items() if k != METADATA}
    else:
        keys, tensors = header, header.get("tensors")
        major = _check_version(keys, 1)
    return Header(keys, major, tensors, _digests(keys, header, raw_ok)), size - 8 - n


def _open(path):
    try:
        return open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise Bad("no such file") from None
    except IsADirectoryError:
        raise Bad("the path is a folder, not a checkpoint file") from None
    except OSError as exc:
        raise Bad(f"cannot open the file ({exc.strerror or exc})") from None


def _read_data(f, data_len: int, expected: str | None) -> bytearray:
    data = bytearray(data_len)  # bounded by the actual file size
    view = memoryview(data)
    digest = hashlib.sha256()
    position = 0
    while position < data_len:
        got = f.readinto(view[position : position + _CHUNK])
        if not got:
            raise Bad(f"the data section ended after {position} of {data_len} bytes (truncated)")
        digest.update(view[position : position + got])
        position += got
    view.release()
    if expected is not None and digest.hexdigest() != expected:
        raise Bad("data checksum mismatch (SHA-256): the tensor bytes are corrupted")
    return data


def read(path, check_content=None, data: bool = True) -> tuple[Header, dict, bytearray | None]:
    """The validated :class:`Header`, tensor table ``{name: (dtype, shape, begin, end)}`` and
    data section (checksum verified; ``None`` unless ``data``) of ``path``.
    ``check_content(header)`` runs right after the header's own checks (format, version,
    checksum), before the tensor table."""
    with _open(path) as f:
        header, data_len = _read_header(f, os.fstat(f.fileno()).st_size)
        if check_content is not None:
            check_content(header)
        dtypes = SAFETENSORS_DTYPES if header.major >= 2 else {k: k for k in DTYPES}
        tensors = _check_tensors(header.tensors, data_len, dtypes)
        section = _read_data(f, data_len, header.data_sha256) if data else None
    return header, tensors, section


def tensor(data: bytearray, entry: tuple) -> np.ndarray:
    """A native-order, writable host copy of one tensor of the table."""
    dtype, shape, begin, _end = entry
    flat = np.frombuffer(data, dtype=DTYPES[dtype], count=math.prod(shape), offset=begin)
    return flat.astype(dtype).reshape(shape)


def guarded(path, action, verb: str = "load"):
    try:
        return action()
    except Bad as exc:
        raise CheckpointError(path, str(exc), action=verb) from None
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
