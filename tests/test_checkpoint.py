"""Checkpoints (reliability.md, "Checkpoints"): bit-identical round trips on every placement,
atomic writes that survive a killed writer, and truncated / corrupted / hostile files rejected
with one error type and no large allocation."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpcnn
from xpcnn import checkpoint as ck
from xpcnn.backend import dtype_name
from xpcnn.checkpoint import format as ckformat

# One builder per registered layer type: a chain (2, 1, 6, 6) -> (n, 4) through all of them.
CHAIN = [
    (
        "Convolutional",
        lambda dt: xpcnn.Convolutional((1, 6, 6), 3, 2, padding=1, bias="pixel", seed=1, dtype=dt),
    ),
    ("BatchNorm", lambda dt: xpcnn.BatchNorm(2, momentum=0.2, dtype=dt)),
    ("Dropout", lambda dt: xpcnn.Dropout(0.25, seed=3, steps=7)),
    ("Tanh", lambda dt: xpcnn.Tanh()),
    ("LeakyReLU", lambda dt: xpcnn.LeakyReLU(0.1)),
    ("ELU", lambda dt: xpcnn.ELU(alpha=0.5)),
    ("Softplus", lambda dt: xpcnn.Softplus()),
    ("SiLU", lambda dt: xpcnn.SiLU()),
    ("GELU", lambda dt: xpcnn.GELU(approximate="tanh")),
    ("Linear", lambda dt: xpcnn.Linear(a=0.25, b=-1.5)),
    ("Gaussian", lambda dt: xpcnn.Gaussian(c=0.1, sigma=0.7)),
    ("Multiquadratic", lambda dt: xpcnn.Multiquadratic(c=-0.2, a=0.5)),
    ("InverseMultiquadratic", lambda dt: xpcnn.InverseMultiquadratic(c=0.3, a=1.25)),
    ("ReLU", lambda dt: xpcnn.ReLU()),
    ("MaxPool2D", lambda dt: xpcnn.MaxPool2D(2)),
    ("AvgPool2D", lambda dt: xpcnn.AvgPool2D(3, stride=1, padding=1)),
    ("Convolutional", lambda dt: xpcnn.Convolutional((2, 3, 3), 2, 3, bias="none", seed=2, dtype=dt)),
    ("Sigmoid", lambda dt: xpcnn.Sigmoid()),
    ("GlobalMaxPool2D", lambda dt: xpcnn.GlobalMaxPool2D()),
    ("Reshape", lambda dt: xpcnn.Reshape((3,), (3, 1, 1))),
    ("GlobalAvgPool2D", lambda dt: xpcnn.GlobalAvgPool2D()),
    ("Flatten", lambda dt: xpcnn.Flatten()),
    ("Dense", lambda dt: xpcnn.Dense(3, 6, seed=3, dtype=dt)),
    ("Heaviside", lambda dt: xpcnn.Heaviside()),
    ("Sequential", lambda dt: xpcnn.Sequential([xpcnn.Dense(6, 6, seed=7, dtype=dt), xpcnn.Tanh()])),
    (
        "Residual",
        lambda dt: xpcnn.Residual(
            [
                xpcnn.Dense(6, 4, seed=8, dtype=dt),
                xpcnn.BatchNorm(dtype=dt),
                xpcnn.Dense(4, 6, seed=9, dtype=dt),
            ],
            xpcnn.Dense(6, 6, seed=10, dtype=dt),
        ),
    ),
    (
        "Residual",
        lambda dt: xpcnn.Residual(xpcnn.Sequential([xpcnn.Dense(6, 6, seed=11, dtype=dt), xpcnn.ReLU()])),
    ),
    ("Reshape", lambda dt: xpcnn.Reshape((6,), (2, 3))),
    ("Softmax", lambda dt: xpcnn.Softmax()),
    ("Flatten", lambda dt: xpcnn.Flatten()),
    ("Dense", lambda dt: xpcnn.Dense(6, 4, seed=4, dtype=dt)),
]
INPUT = (5, 1, 6, 6)


def _randomize(model, seed=0):
    """Non-trivial values in every parameter (biases start at zero)."""
    rng = np.random.default_rng(seed)
    for layer in model.leaves():
        values = {k: rng.normal(size=tuple(v.shape)).astype(layer.dtype) for k, v in layer.tensors().items()}
        if "running_var" in values:
            values["running_var"] = np.abs(values["running_var"]) + np.asarray(0.5, dtype=layer.dtype)
        layer.set_tensors(values)
    return model


def _model(dtype="float32", device="cpu"):
    return _randomize(xpcnn.Sequential([build(dtype) for _, build in CHAIN], device=device, dtype=dtype))


def _bits(x) -> bytes:
    return np.ascontiguousarray(xpcnn.to_host(x)).tobytes()


def _assert_same_parameters(a, b):
    assert len(a.layers) == len(b.layers)
    assert [type(la) for la in a.layers] == [type(lb) for lb in b.layers]
    for la, lb in zip(a.leaves(), b.leaves(), strict=True):
        assert type(la) is type(lb) and la.config() == lb.config()
        pa, pb = la.tensors(), lb.tensors()  # parameters and running statistics
        assert pa.keys() == pb.keys()
        for name in pa:
            assert dtype_name(pa[name].dtype) == dtype_name(pb[name].dtype)
            assert tuple(pa[name].shape) == tuple(pb[name].shape)
            assert _bits(pa[name]) == _bits(pb[name]), f"{la.label} {name} differs"


def _x(dtype="float32", seed=5):
    return np.random.default_rng(seed).normal(size=INPUT).astype(dtype)


def _no_temporaries(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


# ------------------------------------------------------------------------------ round trips
def test_the_chain_covers_every_registered_layer_type():
    missing = set(xpcnn.REGISTRY) - {name for name, _ in CHAIN}
    assert not missing, f"add a builder for {sorted(missing)} to CHAIN"
    for name, build in CHAIN:
        assert type(build("float32")) is xpcnn.REGISTRY[name]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_identical(tmp_path, dtype):
    model = _model(dtype)
    path = tmp_path / "model.xpcnn"
    model.save(path)
    loaded = xpcnn.load(path)
    assert isinstance(loaded, xpcnn.Sequential) and loaded.dtype == dtype and loaded.placement.name == "cpu"
    _assert_same_parameters(model, loaded)
    x = _x(dtype)
    assert _bits(loaded.predict(x)) == _bits(model.predict(x))
    # the loaded parameters are ordinary writable arrays: training continues from them
    for layer in loaded.layers:
        for value in layer.parameters().values():
            assert value.flags.writeable
    # saving the loaded model gives the same file, byte for byte
    again = tmp_path / "again.xpcnn"
    xpcnn.save(loaded, again)
    assert again.read_bytes() == path.read_bytes()


def test_file_layout_is_the_documented_one(tmp_path):
    model = _model("float64")
    path = tmp_path / "m.xpcnn"
    xpcnn.save(model, path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__")  # format 2.x: a safetensors file
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["format"] == "xpcnn.checkpoint" and meta["format_version"] == ckformat.FORMAT_VERSION
    assert [entry["type"] for entry in json.loads(meta["architecture"])] == [name for name, _ in CHAIN]
    assert raw[8:].startswith(b'{"__metadata__":{"header_sha256":"')  # checked before parsing
    assert meta["header_sha256"] == ckformat._header_digest({**header, "__metadata__": meta})
    data = raw[8 + n :]
    assert hashlib.sha256(data).hexdigest() == meta["data_sha256"]
    i = next(k for k, (name, _) in enumerate(CHAIN) if name == "Dense")
    weights = model.layers[i].weights
    k = next(k for k, leaf in enumerate(model.leaves()) if leaf is model.layers[i])
    entry = header[f"layers.{k}.weights"]
    begin, end = entry["data_offsets"]
    assert entry["dtype"] == "F64" and entry["shape"] == [6, 3]
    assert data[begin:end] == np.asarray(weights, dtype="<f8").tobytes()


def test_metadata_round_trip_and_validation(tmp_path):
    path = tmp_path / "m.xpcnn"
    xpcnn.save(_model(), path, metadata={"epochs": "3", "note": "digits 0 vs 1 \u00e9"})
    assert ck.load_metadata(path) == {"epochs": "3", "note": "digits 0 vs 1 \u00e9"}
    with pytest.raises(ck.CheckpointError, match="metadata must map strings to strings"):
        xpcnn.save(_model(), tmp_path / "bad.xpcnn", metadata={"epochs": 3})
    assert not (tmp_path / "bad.xpcnn").exists()


def test_a_list_of_layers_saves_and_loads(tmp_path):
    layers = [xpcnn.Dense(3, 2, seed=0, dtype="float64"), xpcnn.Tanh()]
    xpcnn.save(layers, tmp_path / "l.xpcnn")
    loaded = xpcnn.load(tmp_path / "l.xpcnn")
    assert loaded.dtype == "float64"
    assert _bits(loaded.layers[0].weights) == _bits(layers[0].weights)


def test_unsavable_models_are_refused_and_the_old_file_kept(tmp_path):
    path = tmp_path / "m.xpcnn"
    xpcnn.save(_model(), path)
    before = path.read_bytes()
    generic = xpcnn.Activation(xpcnn.activations.tanh, xpcnn.activations.tanh_prime)
    with pytest.raises(ck.CheckpointError, match=r"layer 1 \(Activation\) is not in the layer registry"):
        xpcnn.save([xpcnn.Dense(2, 2), generic], path)
    with pytest.raises(ck.CheckpointError, match="not an xpcnn Layer"):
        xpcnn.save([xpcnn.Dense(2, 2), "relu"], path)
    with pytest.raises(ck.CheckpointError, match="no layers"):
        xpcnn.save([], path)
    with pytest.raises(ck.CheckpointError, match="different dtypes"):
        xpcnn.save([xpcnn.Dense(2, 2), xpcnn.Dense(2, 2, dtype="float64")], path)
    assert path.read_bytes() == before and _no_temporaries(tmp_path) == []


# -------------------------------------------------------------------------------- placements
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saved_on_one_placement_loads_on_another(be, tmp_path, dtype):
    # built on the backend, saved, loaded on the CPU: the same bits
    model = _model(dtype, device=be.place)
    x = _x(dtype)
    path = tmp_path / "device.xpcnn"
    model.save(path)
    on_cpu = xpcnn.load(path, device="cpu")
    assert on_cpu.placement.name == "cpu"
    _assert_same_parameters(model, on_cpu)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(
        xpcnn.to_host(on_cpu.predict(x)), xpcnn.to_host(model.predict(x)), rtol=tol, atol=tol
    )
    # and back: loaded on the CPU, moved to the backend, or loaded straight onto it
    back = xpcnn.load(path).to(be.place)
    direct = xpcnn.load(path, device=be.place)
    for other in (back, direct):
        assert other.placement == be.place
        _assert_same_parameters(model, other)
        assert _bits(other.predict(x)) == _bits(model.predict(x))


# ---------------------------------------------------------------------------- atomic writes
def test_failed_replace_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.xpcnn"
    old = _model("float64")
    xpcnn.save(old, path)
    before = path.read_bytes()

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckformat.os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        xpcnn.save(_model("float32"), path)
    assert path.read_bytes() == before and _no_temporaries(tmp_path) == []
    monkeypatch.undo()
    _assert_same_parameters(old, xpcnn.load(path))


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_a_write_failing_midway_leaves_the_previous_file(tmp_path, monkeypatch, error):
    path = tmp_path / "m.xpcnn"
    old = _model()
    xpcnn.save(old, path)
    before = path.read_bytes()
    calls = []
    real = ckformat._write_bytes

    def write(f, buffer):
        calls.append(len(buffer))
        if len(calls) == 3:
            raise error
        real(f, buffer)

    monkeypatch.setattr(ckformat, "_write_bytes", write)
    with pytest.raises(type(error)):
        xpcnn.save(_model("float64"), path)
    assert len(calls) == 3
    assert path.read_bytes() == before and _no_temporaries(tmp_path) == []
    _assert_same_parameters(old, xpcnn.load(path))


def test_save_creates_a_new_file_and_refuses_a_folder(tmp_path):
    model = _model()
    xpcnn.save(model, tmp_path / "new.xpcnn")
    assert sorted(os.listdir(tmp_path)) == ["new.xpcnn"]
    with pytest.raises(ck.CheckpointError, match="the path is a folder"):
        xpcnn.save(model, tmp_path)


_CHILD = textwrap.dedent(
    """
    import sys, time
    import xpcnn
    from xpcnn.checkpoint import format as ckformat

    path, mode = sys.argv[1], sys.argv[2]
    model = xpcnn.Sequential([xpcnn.Dense(1200, 1000, seed=1, dtype="float64"), xpcnn.Tanh()])
    if mode == "pause":
        real, calls = ckformat._write_bytes, []
        def write(f, buffer):
            calls.append(1)
            real(f, buffer)
            if len(calls) == 3:  # the header and two chunks of the weights are written
                f.flush()
                print("mid-write", flush=True)
                time.sleep(120)
        ckformat._write_bytes = write
        xpcnn.save(model, path)
    else:
        print("saving", flush=True)
        for _ in range(50):
            xpcnn.save(model, path)
    """
)


def _spawn(tmp_path, mode):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "m.xpcnn"), mode], stdout=subprocess.PIPE, text=True
    )


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX only")
def test_writer_killed_mid_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "m.xpcnn"
    old = xpcnn.Sequential([xpcnn.Dense(4, 3, seed=0), xpcnn.Sigmoid()])
    xpcnn.save(old, path)
    before = path.read_bytes()
    child = _spawn(tmp_path, "pause")
    try:
        assert child.stdout.readline().strip() == "mid-write"
        stale = _no_temporaries(tmp_path)
        assert len(stale) == 1 and os.path.getsize(tmp_path / stale[0]) > 2 * ckformat._CHUNK
    finally:
        child.kill()  # SIGKILL: no cleanup handler runs
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    _assert_same_parameters(old, xpcnn.load(path))
    # the stale temporary file is ignored, and the next save works beside it
    assert _no_temporaries(tmp_path) == stale
    new = xpcnn.Sequential([xpcnn.Dense(2, 5, seed=3)])
    xpcnn.save(new, path)
    _assert_same_parameters(new, xpcnn.load(path))
    assert _no_temporaries(tmp_path) == []  # the killed writer's temporary is gone, silently


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX only")
def test_writer_killed_at_a_random_moment_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "m.xpcnn"
    old = xpcnn.Sequential([xpcnn.Dense(4, 3, seed=0), xpcnn.Sigmoid()])
    xpcnn.save(old, path)
    child = _spawn(tmp_path, "loop")
    try:
        assert child.stdout.readline().strip() == "saving"
        deadline = time.monotonic() + 60
        while not _no_temporaries(tmp_path) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.001)
        time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    loaded = xpcnn.load(path)  # the old model or a complete new one, never a torn file
    assert [type(layer).__name__ for layer in loaded.layers] in (["Dense", "Sigmoid"], ["Dense", "Tanh"])
    if isinstance(loaded.layers[1], xpcnn.Sigmoid):
        _assert_same_parameters(old, loaded)
    else:
        fresh = xpcnn.Dense(1200, 1000, seed=1, dtype="float64")
        assert _bits(loaded.layers[0].weights) == _bits(fresh.weights)


# ------------------------------------------------------------------ corrupted and hostile files
@pytest.fixture
def small_file(tmp_path):
    model = xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 4, 4), 2, 2, seed=0),
            xpcnn.ReLU(),
            xpcnn.Flatten(),
            xpcnn.Dense(18, 2, seed=1),
        ]
    )
    _randomize(model)
    path = tmp_path / "small.xpcnn"
    model.save(path)
    return model, path, path.read_bytes()


def _load_fails(path, match=None):
    with pytest.raises(ck.CheckpointError, match=match) as info:
        xpcnn.load(path)
    assert type(info.value) is ck.CheckpointError and isinstance(info.value, ValueError)
    assert info.value.path == os.fspath(path) and os.fspath(path) in str(info.value)
    return info.value


def test_truncated_at_every_length_is_rejected(small_file, tmp_path):
    _, _, raw = small_file
    n = int.from_bytes(raw[:8], "little")
    cut = tmp_path / "cut.xpcnn"
    for length in range(len(raw)):
        cut.write_bytes(raw[:length])
        reason = _load_fails(cut).reason
        if length < 8:
            assert "fewer than the 8-byte header length" in reason
        elif length < 8 + n:
            assert "runs past the end" in reason
        else:
            assert "outside the data section" in reason and "truncated" in reason


def test_every_flipped_byte_is_detected(small_file, tmp_path):
    model, _, raw = small_file
    n = int.from_bytes(raw[:8], "little")
    bad = tmp_path / "flip.xpcnn"
    accepted = []
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 1 << (i % 8)
        bad.write_bytes(bytes(flipped))
        try:
            loaded = xpcnn.load(bad)
        except ck.CheckpointError as exc:
            if i >= 8 + n:
                assert "data checksum mismatch" in exc.reason
            continue
        accepted.append(i)
        _assert_same_parameters(model, loaded)  # only a flip that changes nothing may pass
    assert all(8 <= i < 8 + n for i in accepted)  # e.g. "1e-05" -> "1E-05" in a config
    assert len(accepted) <= 2


def test_each_bit_of_the_header_length_is_checked(small_file, tmp_path):
    _, _, raw = small_file
    bad = tmp_path / "len.xpcnn"
    for bit in range(64):
        n = int.from_bytes(raw[:8], "little") ^ (1 << bit)
        bad.write_bytes(n.to_bytes(8, "little") + raw[8:])
        _load_fails(bad)


def _forge(path, header, data=b"", *, checksums=True, length=None):
    """Write a file with ``header`` (dict or raw bytes); by default with valid checksums, so that
    the check under test is the one that fires."""
    if isinstance(header, dict):
        header = dict(header)
        if checksums:
            header.setdefault("data_sha256", hashlib.sha256(data).hexdigest())
            header["header_sha256"] = ckformat._header_digest(header)
        header = json.dumps(header).encode()
    path.write_bytes((len(header) if length is None else length).to_bytes(8, "little") + header + data)
    return path


def _base_header(architecture, tensors):
    return {
        "format": ckformat.FORMAT,
        "format_version": "1.0",
        "architecture": architecture,
        "tensors": tensors,
    }


DENSE = [{"type": "Dense", "config": {"input_size": 2, "output_size": 1, "dtype": "float32"}}]
DENSE_TENSORS = {
    "layers.0.weights": {"dtype": "float32", "shape": [1, 2], "data_offsets": [0, 8]},
    "layers.0.bias": {"dtype": "float32", "shape": [1], "data_offsets": [8, 12]},
}
DATA = np.arange(3, dtype="<f4").tobytes()


def _tensors(**changes):
    tensors = json.loads(json.dumps(DENSE_TENSORS))
    for name, entry in changes.items():
        key = "layers.0." + name
        if entry is None:
            del tensors[key]
        else:
            tensors[key] = {**tensors.get(key, {}), **entry}
    return tensors


def test_a_forged_valid_file_loads(tmp_path):
    model = xpcnn.load(_forge(tmp_path / "ok.xpcnn", _base_header(DENSE, DENSE_TENSORS), DATA))
    np.testing.assert_array_equal(model.layers[0].weights, [[0.0, 1.0]])
    np.testing.assert_array_equal(model.layers[0].bias, [2.0])


HOSTILE = {
    # header and its JSON
    "not-an-object": ([1, 2], "must be a JSON object"),
    "string": ("os.system('rm -rf /')", "must be a JSON object"),
    "null": (None, "must be a JSON object"),
    "wrong-format": ({**_base_header(DENSE, DENSE_TENSORS), "format": "pickle"}, "not an xpcnn checkpoint"),
    "newer-major": ({**_base_header(DENSE, DENSE_TENSORS), "format_version": "3.0"}, "newer format"),
    "layout-mismatch": (
        {**_base_header(DENSE, DENSE_TENSORS), "format_version": "2.0"},
        "does not match its layout",
    ),
    "far-newer": ({**_base_header(DENSE, DENSE_TENSORS), "format_version": "17.3"}, "upgrade xpcnn"),
    "older-major": (
        {**_base_header(DENSE, DENSE_TENSORS), "format_version": "0.9"},
        "unsupported old format",
    ),
    "bad-version": (
        {**_base_header(DENSE, DENSE_TENSORS), "format_version": "1"},
        "malformed format_version",
    ),
    "version-number": (
        {**_base_header(DENSE, DENSE_TENSORS), "format_version": 1.0},
        "malformed format_version",
    ),
    "bad-digest": ({**_base_header(DENSE, DENSE_TENSORS), "data_sha256": "z" * 64}, "data_sha256 must be"),
    # layer types: only the registry, never a module path
    "os.system": (_base_header([{"type": "os.system", "config": {}}], {}), "unknown layer type 'os.system'"),
    "module-path": (
        _base_header([{"type": "xpcnn.layers.dense.Dense", "config": {}}], {}),
        "module paths are never imported",
    ),
    "builtins": (_base_header([{"type": "__import__", "config": {}}], {}), "unknown layer type"),
    "base-class": (_base_header([{"type": "Layer", "config": {}}], {}), "unknown layer type 'Layer'"),
    "type-not-string": (_base_header([{"type": ["Dense"], "config": {}}], {}), "unknown layer type"),
    "config-not-object": (
        _base_header([{"type": "ReLU", "config": "evil"}], {}),
        "'config' must be an object",
    ),
    "bad-kwarg": (
        _base_header([{"type": "ReLU", "config": {"command": "ls"}}], {}),
        "does not build the layer",
        b"",
    ),
    "architecture-not-list": (_base_header({"0": "Dense"}, {}), "'architecture' must be a list"),
    # tensors
    "unknown-dtype": (_base_header(DENSE, _tensors(bias={"dtype": "int32"})), "dtype 'int32' is not allowed"),
    "object-dtype": (_base_header(DENSE, _tensors(bias={"dtype": "object"})), "is not allowed"),
    "numpy-dtype-code": (_base_header(DENSE, _tensors(bias={"dtype": "<f4"})), "is not allowed"),
    "negative-shape": (
        _base_header(DENSE, _tensors(weights={"shape": [-1, -2]})),
        r"must be an integer >= 0",
    ),
    "float-shape": (_base_header(DENSE, _tensors(weights={"shape": [1.0, 2]})), r"must be an integer >= 0"),
    "bool-shape": (_base_header(DENSE, _tensors(weights={"shape": [True, 2]})), r"must be an integer >= 0"),
    "huge-shape": (_base_header(DENSE, _tensors(weights={"shape": [2**62, 2**62]})), "needs .* bytes but"),
    "huge-rank": (_base_header(DENSE, _tensors(weights={"shape": [1] * 100})), "at most 8 sizes"),
    "huge-offsets": (
        _base_header(DENSE, _tensors(weights={"shape": [2**40], "data_offsets": [0, 2**42]})),
        "outside the data section",
    ),
    "negative-offset": (
        _base_header(DENSE, _tensors(weights={"data_offsets": [-8, 0]})),
        "must be an integer >= 0",
    ),
    "reversed-offsets": (_base_header(DENSE, _tensors(weights={"data_offsets": [8, 0]})), "outside the data"),
    "overlap": (_base_header(DENSE, _tensors(bias={"data_offsets": [4, 8]})), "overlap"),
    "gap": (
        _base_header(DENSE, _tensors(weights={"shape": [1, 1], "data_offsets": [0, 4]})),
        "belong to no tensor",
    ),
    "bad-tensor-name": (_base_header(DENSE, {"../../etc/passwd": {}}), "is not of the form"),
    "tensor-beyond-layers": (
        _base_header(DENSE, {**DENSE_TENSORS, "layers.3.weights": DENSE_TENSORS["layers.0.bias"]}),
        "belongs to layer 3",
    ),
    "missing-parameter": (_base_header(DENSE, _tensors(bias=None)), "parameter 'bias' is missing", DATA[:8]),
    "trailing-bytes": (
        _base_header(DENSE, DENSE_TENSORS),
        "data section has 16 bytes but the tensors cover 12",
        DATA + b"1234",
    ),
    "tensors-not-object": (_base_header(DENSE, [1, 2]), "'tensors' must be an object"),
    # configurations that would allocate far more than the file holds
    "huge-dense": (
        _base_header(
            [{"type": "Dense", "config": {"input_size": 10**6, "output_size": 10**6}}], DENSE_TENSORS
        ),
        r"has shape \[1, 2\] in the file but the layer's configuration gives \[1000000, 1000000\]",
    ),
    "huge-pixel-bias": (
        _base_header(
            [
                {
                    "type": "Convolutional",
                    "config": {
                        "input_shape": [1, 10**5, 10**5],
                        "kernel_size": [1, 1],
                        "depth": 1,
                        "bias": "pixel",
                    },
                }
            ],
            {
                "layers.0.kernels": {"dtype": "float32", "shape": [1, 1, 1, 1], "data_offsets": [0, 4]},
                "layers.0.biases": {"dtype": "float32", "shape": [2], "data_offsets": [4, 12]},
            },
        ),
        r"configuration gives \[1, 100000, 100000\]",
    ),
    "config-type": (
        _base_header([{"type": "Dense", "config": {"input_size": "2", "output_size": 1}}], DENSE_TENSORS),
        r"layer 0 \(Dense\): invalid config: Dense: Expected a strictly positive integer\. Received input_size='2'",
    ),
    "dtype-mismatch": (
        _base_header(
            [{"type": "Dense", "config": {"input_size": 2, "output_size": 1, "dtype": "float64"}}],
            DENSE_TENSORS,
        ),
        "stored as float32 but the layer's dtype is float64",
    ),
    "extra-parameter": (
        _base_header(
            [{"type": "ReLU", "config": {}}],
            {"layers.0.weights": {"dtype": "float32", "shape": [3], "data_offsets": [0, 12]}},
        ),
        "does not have",
    ),
    "no-layers": (_base_header([], {}), "the architecture has no layers", b""),
    "mixed-dtypes": (
        _base_header(
            [*DENSE, {"type": "Dense", "config": {"input_size": 1, "output_size": 1, "dtype": "float64"}}],
            {
                **DENSE_TENSORS,
                "layers.1.weights": {"dtype": "float64", "shape": [1, 1], "data_offsets": [12, 20]},
                "layers.1.bias": {"dtype": "float64", "shape": [1], "data_offsets": [20, 28]},
            },
        ),
        r"different dtypes \['float32', 'float64'\]",
        DATA + np.ones(2, dtype="<f8").tobytes(),
    ),
    "metadata": (
        {**_base_header(DENSE, DENSE_TENSORS), "metadata": {"a": 1}},
        "'metadata' must be an object of strings",
    ),
    "model-dtype": (
        {**_base_header(DENSE, DENSE_TENSORS), "dtype": "int8"},
        "model dtype 'int8' is not allowed",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_headers_are_rejected_without_large_allocations(tmp_path, case):
    header, match, data = (*HOSTILE[case], DATA)[:3]
    if not isinstance(header, dict):
        header = json.dumps(header).encode()
    path = _forge(tmp_path / "h.xpcnn", header, data)
    tracemalloc.start()
    try:
        _load_fails(path, match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


RAW_HEADERS = {
    "invalid-json": (b'{"format": ', "not valid JSON"),
    "not-utf8": (b'{"format": "\xff\xfe"}', "not valid JSON"),
    "nan": (b'{"format": NaN}', "contains NaN"),
    "infinite-number": (b'{"format": 1e999}', "too large for a float"),
    "duplicate-keys": (b'{"format": "xpcnn.checkpoint", "format": "x"}', "repeats the key 'format'"),
    "many-containers": (b"[" * 200_000 + b"]" * 200_000, "200000 objects and arrays, more than the limit"),
    "deep-nesting": (b"[" * 100 + b"]" * 100, "nests 100 levels deep, more than the limit 64"),
    "huge-integer": (b'{"format": ' + b"9" * 5000 + b"}", "not valid JSON"),
    "empty": (b"", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(RAW_HEADERS))
def test_malformed_json_is_rejected(tmp_path, case):
    raw, match = RAW_HEADERS[case]
    _load_fails(_forge(tmp_path / "j.xpcnn", raw), match)


@pytest.mark.parametrize("length", [2**63, 2**64 - 1, 2**40, ckformat.MAX_HEADER_BYTES + 1])
def test_huge_header_length_is_rejected_before_reading(tmp_path, length):
    path = _forge(tmp_path / "l.xpcnn", b"{}", length=length)
    tracemalloc.start()
    try:
        _load_fails(path, "more than the limit")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_a_modified_header_fails_its_checksum(small_file, tmp_path):
    _, _, raw = small_file
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    architecture = json.loads(header["__metadata__"]["architecture"])
    architecture[0]["config"]["stride"] = [1, 2]  # a plausible edit, same parameter shapes
    header["__metadata__"]["architecture"] = json.dumps(architecture)
    _load_fails(
        _forge(tmp_path / "edit.xpcnn", header, raw[8 + n :], checksums=False), "header checksum mismatch"
    )


def test_missing_files_and_folders_are_checkpoint_errors(tmp_path):
    _load_fails(tmp_path / "nothing.xpcnn", "no such file")
    _load_fails(tmp_path, "is a folder")
    with pytest.raises(ck.CheckpointError, match="no such file"):
        ck.load_metadata(tmp_path / "nothing.xpcnn")


def test_other_files_are_not_checkpoints(tmp_path):
    np.save(tmp_path / "array.npy", np.zeros(3))
    _load_fails(tmp_path / "array.npy", "more than the limit")
    (tmp_path / "text.json").write_text('{"format": "xpcnn.checkpoint"}')
    _load_fails(tmp_path / "text.json", "more than the limit")


def test_checkpoint_error_is_one_picklable_value_error():
    import pickle

    error = ck.CheckpointError("/tmp/x.xpcnn", "data checksum mismatch")
    assert isinstance(error, ValueError) and error.path == "/tmp/x.xpcnn"
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.reason == error.reason


class Toy(xpcnn.Layer):
    """A registered layer type of one's own: its constructor draws ``size`` values from the
    seed; ``parameter_shapes`` (below, when the test adds it) says so without drawing."""

    param_names = ("w",)

    def __init__(self, size, *, seed=None, dtype="float32"):
        super().__init__(dtype=dtype)
        self.size = size
        self.w = self.placement.asarray(xpcnn.init.rng_from(seed).uniform(-1, 1, size=(size,)), dtype=dtype)

    def config(self):
        return {"size": self.size, "dtype": self.dtype}


def test_a_layer_with_parameters_must_state_their_shapes(tmp_path, monkeypatch):
    monkeypatch.setitem(xpcnn.REGISTRY, "Toy", Toy)
    with pytest.raises(ck.CheckpointError, match=r"Toy has parameters \['w'\] but does not define the "
                       r"classmethod parameter_shapes\(config\)"):  # fmt: skip
        xpcnn.Sequential([Toy(3, seed=0)]).save(tmp_path / "toy.xpcnn")
    assert not (tmp_path / "toy.xpcnn").exists()


def test_a_hostile_config_is_refused_before_the_layer_is_built(tmp_path, monkeypatch):
    class Stated(Toy):
        @classmethod
        def parameter_shapes(cls, config):
            return {"w": (xpcnn._validate.positive_int(config["size"], "size", "Toy"),)}

    Stated.__name__ = "Toy"
    monkeypatch.setitem(xpcnn.REGISTRY, "Toy", Stated)
    model = xpcnn.Sequential([Stated(3, seed=0)])
    model.save(tmp_path / "toy.xpcnn")
    _assert_same_parameters(model, xpcnn.load(tmp_path / "toy.xpcnn"))
    header = _base_header(
        [{"type": "Toy", "config": {"size": 10**9}}],
        {"layers.0.w": {"dtype": "float32", "shape": [3], "data_offsets": [0, 12]}},
    )
    path = _forge(tmp_path / "h.xpcnn", header, DATA)
    tracemalloc.start()
    try:
        _load_fails(path, r"layer 0 \(Toy\): parameter 'w' has shape \[3\] in the file but the layer's "
                    r"configuration gives \[1000000000\]")  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


# ------------------------------------------------------------------------------- property
@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    dtype=st.sampled_from(["float32", "float64"]),
    channels=st.integers(1, 3),
    size=st.integers(3, 7),
    kernel=st.integers(1, 3),
    depth=st.integers(1, 3),
    bias=st.sampled_from(["channel", "pixel", "none"]),
    activation=st.sampled_from(["ReLU", "Sigmoid", "Tanh", "Softmax"]),
    outputs=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_property_save_load_predict_is_identical(
    tmp_path_factory, dtype, channels, size, kernel, depth, bias, activation, outputs, seed
):
    conv = xpcnn.Convolutional((channels, size, size), kernel, depth, bias=bias, seed=seed, dtype=dtype)
    flat = depth * (size - kernel + 1) ** 2
    model = xpcnn.Sequential(
        [
            conv,
            xpcnn.REGISTRY[activation](),
            xpcnn.Flatten(),
            xpcnn.Dense(flat, outputs, seed=seed + 1, dtype=dtype),
        ]
    )
    _randomize(model, seed)
    x = np.random.default_rng(seed).normal(size=(3, channels, size, size)).astype(dtype)
    path = tmp_path_factory.mktemp("prop") / "m.xpcnn"
    model.save(path)
    loaded = xpcnn.load(path)
    _assert_same_parameters(model, loaded)
    assert _bits(loaded.predict(x)) == _bits(model.predict(x))
