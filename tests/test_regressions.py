"""Defects a review of this session's work found, each a test that failed before its fix."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import xpcnn
from xpcnn.checkpoint import format as ckformat


def test_save_refuses_metadata_the_reader_would_refuse(tmp_path):
    model = xpcnn.Sequential([xpcnn.Dense(2, 2)])
    for metadata in ({"note": "[" * 70}, {"history": ",".join(["0.5"] * (ckformat.MAX_ENTRIES + 5))}):
        with pytest.raises(xpcnn.CheckpointError, match=r"Cannot save checkpoint .*shorten the metadata"):
            model.save(tmp_path / "m.xpcnn", metadata=metadata)
        assert not (tmp_path / "m.xpcnn").exists()
    model.save(tmp_path / "m.xpcnn", metadata={"note": "[" * 20})  # what is accepted loads
    assert xpcnn.checkpoint.load_metadata(tmp_path / "m.xpcnn") == {"note": "[" * 20}


def test_a_model_without_parameters_keeps_its_dtype(tmp_path):
    xpcnn.Sequential([xpcnn.Flatten()], dtype="float64").save(tmp_path / "f.xpcnn")
    assert xpcnn.load(tmp_path / "f.xpcnn").dtype == "float64"


def test_frozen_layers_inside_blocks_stay_frozen(rng):
    inner = xpcnn.Sequential([xpcnn.Dense(3, 4, seed=0), xpcnn.BatchNorm(), xpcnn.Dropout(0.1, seed=0)])
    block = xpcnn.Residual([xpcnn.Dense(4, 4, seed=1), xpcnn.BatchNorm()])
    model = xpcnn.Sequential([inner, block, xpcnn.Dense(2, seed=2)])
    inner.layers[1].eval()
    block.block.layers[1].eval()
    before = [leaf.training for leaf in model.leaves()]
    x, y = rng.normal(size=(16, 3)).astype(np.float32), rng.integers(0, 2, 16)
    model.fit(x, y, loss="softmax_crossentropy", batch_size=8, progress=False, seed=0)
    model.predict(x)
    assert [leaf.training for leaf in model.leaves()] == before == [True, False, True, True, False, True]


def test_batchnorm_refuses_one_sample_batches_before_any_step(rng):
    model = xpcnn.Sequential([xpcnn.Dense(3, 4, seed=0), xpcnn.BatchNorm(), xpcnn.Dense(2, seed=1)])
    w = model.layers[0].weights.copy()
    x, y = rng.normal(size=(33, 3)).astype(np.float32), rng.integers(0, 2, 33)
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\) would see a batch of one sample"):
        model.fit(x, y, loss="softmax_crossentropy", batch_size=32, progress=False)
    np.testing.assert_array_equal(model.layers[0].weights, w)
    model.fit(x, y, loss="softmax_crossentropy", batch_size=11, progress=False)  # 3 batches of 11
    with pytest.raises(ValueError, match=r"more than one value per channel"):
        model.layers[1].train().forward(np.zeros((1, 4), np.float32))


def test_a_skipped_non_finite_batch_leaves_the_running_statistics_finite(rng):
    model = xpcnn.Sequential([xpcnn.Dense(3, 4, seed=0), xpcnn.BatchNorm(), xpcnn.Dense(2, seed=1)])
    x, y = rng.normal(size=(16, 3)).astype(np.float32), rng.integers(0, 2, 16)
    x[12] = np.inf  # in the second batch
    with np.errstate(all="ignore"):  # inf through a Dense layer: NumPy warns of inf - inf
        history = model.fit(
            x, y, loss="softmax_crossentropy", batch_size=8, progress=False, on_nonfinite="stop"
        )
    assert history.stop_reason
    bn = model.layers[1]
    assert np.isfinite(bn.running_mean).all() and np.isfinite(bn.running_var).all()
    assert np.isfinite(model.predict(x[:8])).all()


def test_a_container_with_a_configuration_is_refused(tmp_path):
    model = xpcnn.Sequential([xpcnn.Sequential([xpcnn.Dense(2, 2, seed=0)])])
    path = tmp_path / "n.xpcnn"
    model.save(path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header["__metadata__"]
    architecture = json.loads(meta["architecture"])
    architecture[0]["config"] = {"device": "cuda"}
    meta["architecture"] = json.dumps(architecture)
    meta["header_sha256"] = ckformat._header_digest(header)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    with pytest.raises(xpcnn.CheckpointError, match=r"a nested Sequential has no configuration"):
        xpcnn.load(path)


def test_an_old_temporary_named_with_this_process_id_is_removed(tmp_path):
    path = tmp_path / "m.xpcnn"
    stale = tmp_path / f".m.xpcnn.{os.getpid()}-{'ab' * 6}.tmp"  # a restarted job may reuse a pid
    stale.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    xpcnn.Sequential([xpcnn.Dense(2, 2)]).save(path)
    assert not stale.exists()
