"""xpcnn checkpoints are safetensors files (issue 12): the safetensors package (a test
dependency only) reads every tensor and the metadata of an xpcnn file, and a file it writes
with xpcnn's metadata loads in xpcnn; hostile training states are refused."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import xpcnn
from xpcnn import checkpoint as ck
from xpcnn.checkpoint import format as ckformat

st = pytest.importorskip("safetensors.numpy", reason="the safetensors package (pip install safetensors)")
from safetensors import safe_open  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 1, 6, 6)).astype("float32")
Y = RNG.integers(0, 3, 24)


def net(dtype="float32"):
    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 6, 6), 3, 2, seed=1, bias="pixel"),
            xpcnn.BatchNorm(),
            xpcnn.ReLU(),
            xpcnn.Residual([xpcnn.Convolutional(3, 2, padding=1, seed=4)]),
            xpcnn.Flatten(),
            xpcnn.Dense(3, seed=2),
        ],
        dtype=dtype,
        input_shape=(1, 6, 6),
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_safetensors_reads_every_tensor_and_the_metadata(tmp_path, dtype):
    model = net(dtype)
    model.fit(X.astype(dtype), Y, loss="softmax_crossentropy", optimizer="adam", epochs=1, batch_size=8,
              seed=0, progress=False)  # fmt: skip
    path = tmp_path / "m.safetensors"
    model.save(path, metadata={"note": "hello"})
    tensors = st.load_file(path)
    expected = {f"layers.{k}.{name}": xpcnn.to_host(v) for k, leaf in enumerate(model.leaves())
                for name, v in leaf.tensors().items()}  # fmt: skip
    moments = {k for k in tensors if k.startswith("optimizer.")}
    assert set(tensors) - moments == set(expected)
    for name, value in expected.items():
        assert tensors[name].dtype == np.dtype(dtype) and np.array_equal(tensors[name], value), name
    state = model.optimizer.state_dict(model.leaves())["state"]
    assert moments == {f"optimizer.{k}.{p}.{slot}" for (k, p), slots in state.items() for slot in slots}
    for (k, p), slots in state.items():
        for slot, value in slots.items():
            assert np.array_equal(tensors[f"optimizer.{k}.{p}.{slot}"], xpcnn.to_host(value))
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        assert set(f.keys()) == set(tensors)
    assert meta["format"] == "xpcnn.checkpoint" and meta["format_version"] == ckformat.FORMAT_VERSION
    assert meta["note"] == "hello" and meta["dtype"] == dtype
    assert json.loads(meta["architecture"])[0]["type"] == "Convolutional"
    assert json.loads(meta["training"])["optimizer"]["type"] == "Adam"
    assert (
        hashlib.sha256(path.read_bytes()[8 + int.from_bytes(path.read_bytes()[:8], "little") :]).hexdigest()
        == (meta["data_sha256"])
    )


def test_a_file_written_by_safetensors_with_xpcnn_metadata_loads(tmp_path):
    model = net()
    path = tmp_path / "w.safetensors"
    st.save_file(ck.named_tensors(model), path, metadata=ck.safetensors_metadata(model, {"source": "st"}))
    loaded = xpcnn.load(path)
    assert np.array_equal(xpcnn.to_host(loaded.predict(X)), xpcnn.to_host(model.predict(X)))
    assert ck.load_metadata(path) == {"source": "st"}


def test_safetensors_files_without_xpcnn_metadata_or_digests_are_refused(tmp_path):
    model = net()
    plain = tmp_path / "plain.safetensors"
    st.save_file(ck.named_tensors(model), plain)
    with pytest.raises(ck.CheckpointError, match="a safetensors file without xpcnn's metadata"):
        xpcnn.load(plain)
    unsigned = tmp_path / "unsigned.safetensors"
    meta = {k: v for k, v in ck.safetensors_metadata(model).items() if k != "checksums"}
    st.save_file(ck.named_tensors(model), unsigned, metadata=meta)
    with pytest.raises(ck.CheckpointError, match="header_sha256 must be 64 lowercase hexadecimal digits"):
        xpcnn.load(unsigned)
    ints = tmp_path / "ints.safetensors"
    tensors = {**ck.named_tensors(model), "layers.0.kernels": np.zeros((3, 1, 2, 2), dtype=np.int64)}
    st.save_file(tensors, ints, metadata=ck.safetensors_metadata(model))
    with pytest.raises(ck.CheckpointError, match=r"dtype 'I64' is not allowed \(allowed: F32, F64\)"):
        xpcnn.load(ints)


def test_reserved_metadata_keys_are_refused(tmp_path):
    for key in ("architecture", "format", "header_sha256", "training", "__metadata__"):
        with pytest.raises(ck.CheckpointError, match=f"the metadata key '{key}' is reserved"):
            net().save(tmp_path / "r.xpcnn", metadata={key: "x"})
    assert not (tmp_path / "r.xpcnn").exists()


def _rewrite_training(path, change) -> None:
    """Edit the training JSON of ``path`` and write it back with valid digests, so that only
    the content checks can refuse it."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    training = json.loads(header["__metadata__"]["training"])
    change(training, header)
    header["__metadata__"]["training"] = json.dumps(training)
    header["__metadata__"]["header_sha256"] = ckformat._header_digest(header)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def _set(key, value):
    def change(training, header):
        target = training
        *parents, last = key.split("/")
        for p in parents:
            target = target[p]
        target[last] = value

    return change


HOSTILE_TRAINING = {
    "optimizer-type": (_set("optimizer/type", "os.system"), "unknown optimizer 'os.system'"),
    "optimizer-kwarg": (_set("optimizer/config/command", "ls"), "does not build"),
    "loss-type": (_set("loss/type", "Eval"), "must name one of"),
    "iterations": (_set("optimizer/iterations", -3), r"iterations must be an integer in \[0, 2\*\*53\]"),
    "iterations-huge": (_set("optimizer/iterations", 10**400), r"iterations must be an integer in"),
    "partial-size": (_set("progress/partial", {"size": "nan"}), "partial size must be an integer"),
    "partial-key": (_set("progress/partial", {"evil": 1.0}), "expected 'loss', 'size' or 'metric.<name>'"),
    "slot-missing": (_set("optimizer/state", [[0, "kernels", ["m", "zz"]]]), "does not hold"),
    "slot-layer": (_set("optimizer/state", [[99, "kernels", ["m", "v"]]]), "does not hold"),
    "progress-epoch": (_set("progress/epoch", "one"), "epoch must be an integer"),
    "progress-rng": (_set("progress/rng", {"bit_generator": "os.system"}), "shuffle generator state"),
    "history": (_set("progress/history/history/loss", ["x"]), "not a number"),
    "schedule": (
        _set("optimizer/config/learning_rate", {"type": "Lambda", "config": {}}),
        "naming one of",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_TRAINING))
def test_a_hostile_training_state_is_refused(tmp_path, case):
    change, match = HOSTILE_TRAINING[case]
    model = net()
    model.fit(X, Y, loss="softmax_crossentropy", optimizer="adam", epochs=1, batch_size=8, seed=0,
              progress=False)  # fmt: skip
    path = tmp_path / "t.xpcnn"
    model.save(path)
    xpcnn.load(path)  # the untouched file loads
    _rewrite_training(path, change)
    with pytest.raises(ck.CheckpointError, match=match):
        xpcnn.load(path)


def test_escaped_brackets_in_the_architecture_string_are_bounded_too(tmp_path):
    """``\\u005b`` in a JSON string is a ``[`` once decoded: the nesting bound applies to the
    decoded architecture as well (150 nested blocks would make the first build very slow)."""
    model = net()
    path = tmp_path / "m.xpcnn"
    model.save(path, include_optimizer=False)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    deep = {"type": "ReLU", "config": {}}
    for _ in range(150):
        deep = {"type": "Residual", "config": {}, "children": {"block": [deep]}}
    architecture = json.dumps(json.loads(header["__metadata__"]["architecture"]) + [deep])
    header["__metadata__"]["architecture"] = architecture
    header["__metadata__"]["header_sha256"] = ckformat._header_digest(header)
    literal = json.dumps(architecture)  # how the string appears in the header
    hidden = literal.replace("[", "\\u005b").replace("{", "\\u007b")  # the same string, escaped
    body = json.dumps(header).replace(literal, hidden).encode()
    assert json.loads(body) == header  # the same header once parsed
    path.write_bytes(len(body).to_bytes(8, "little") + body + raw[8 + n :])
    assert body.count(b"[") < 100  # the raw header looks shallow
    with pytest.raises(ck.CheckpointError, match=r"'architecture': the header nests \d+ levels deep"):
        xpcnn.load(path)
