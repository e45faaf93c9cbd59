"""Data-parallel training (issue 13): ``fit(..., distributed=comm)`` under ``mpiexec -n 2`` and
``-n 3`` ends with the weights of one-process ``fit`` on the same global batches (eq. 34),
including a last batch from which a rank gets no sample; validation equals one-process
``evaluate``; only rank 0 writes files; a failing rank ends the job within seconds; models
that differ across the ranks are refused.  The MPI tests need mpi4py and mpiexec (``pip
install "xpcnn[mpi]"``; ``nox -s distributed`` installs them) and skip, naming the reason,
without them.  The single-process communicator is tested everywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import xpcnn
from xpcnn import distributed

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    return shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason='needs mpi4py and mpiexec: pip install "xpcnn[mpi]"')


def launch(n: int, case: str, folder, timeout: float = 120):
    command = [MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", WORKER, case, str(folder)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    return done, time.monotonic() - started


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("case", ["sgd-float64", "adam-float64", "sgd-float32", "adam-float32"])
def test_distributed_fit_equals_one_process_fit(tmp_path, ranks, case):
    done, _ = launch(ranks, case, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    result = np.load(tmp_path / "result.npz")
    arrays = [result[f"arr_{i}"] for i in range(len([k for k in result.files if k.startswith("arr_")]))]
    ours, reference = arrays[: len(arrays) // 2], arrays[len(arrays) // 2 :]
    tolerance = 1e-12 if case.endswith("float64") else 1e-5
    for a, b in zip(ours, reference, strict=True):
        assert np.max(np.abs(a - b)) <= tolerance * np.max(np.abs(b)), case
    np.testing.assert_allclose(result["history"], result["expected"], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(result["history"][2:, -1], result["evaluated"], rtol=tolerance, atol=tolerance)
    written = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".xpcnn")
    assert written == ["written-by-0.xpcnn"]  # side effects on rank 0 only
    assert xpcnn.load(tmp_path / "written-by-0.xpcnn").optimizer is not None


@needs_mpi
def test_a_custom_loop_with_allreduce_gradients_equals_one_process(tmp_path):
    done, _ = launch(3, "custom-loop", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    result = np.load(tmp_path / "result.npz")
    arrays = [result[f"arr_{i}"] for i in range(len([k for k in result.files if k.startswith("arr_")]))]
    for a, b in zip(arrays[: len(arrays) // 2], arrays[len(arrays) // 2 :], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(result["loss"][0], result["loss"][1], rtol=1e-13)


@needs_mpi
def test_one_failing_rank_ends_the_job_within_seconds(tmp_path):
    done, elapsed = launch(2, "fail", tmp_path, timeout=60)
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr
    assert elapsed < 10, f"the job took {elapsed:.1f} s to end"


@needs_mpi
def test_models_that_differ_across_the_ranks_are_refused(tmp_path):
    done, elapsed = launch(2, "mismatch", tmp_path, timeout=60)
    assert done.returncode != 0 and elapsed < 10
    assert "the model differs across the ranks: rank 0 has layer 0 (Convolutional)" in done.stderr


# ------------------------------------------------------------------ the same code, one process
def net():
    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 6, 6), 3, 2, seed=1),
            xpcnn.ReLU(),
            xpcnn.Flatten(),
            xpcnn.Dense(32, 3, seed=2),
        ],
        dtype="float64",
    )


def test_the_single_process_communicator_trains_exactly_as_without_one():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(21, 1, 6, 6)), rng.integers(0, 3, 21)
    kwargs = {"loss": "softmax_crossentropy", "epochs": 2, "batch_size": 8, "seed": 3, "progress": False,
              "metrics": ["accuracy"], "validation_split": 0.2}  # fmt: skip
    a, b = net(), net()
    ha = a.fit(x, y, optimizer=xpcnn.Adam(0.01), distributed=distributed.single(), **kwargs)
    hb = b.fit(x, y, optimizer=xpcnn.Adam(0.01), **kwargs)
    for la, lb in zip(a.leaves(), b.leaves(), strict=True):
        for name, value in la.tensors().items():
            assert np.array_equal(value, lb.tensors()[name])
    assert ha.history == hb.history
    assert repr(distributed.single()) == "Communicator(rank=0, size=1, all-reduce='none')"


def test_bad_communicators_and_sources_are_refused():
    x, y = np.zeros((4, 1, 6, 6)), np.zeros(4, dtype=np.int64)
    with pytest.raises(TypeError, match="expected distributed to be an xpcnn.distributed communicator"):
        net().fit(x, y, loss="softmax_crossentropy", distributed="mpi", progress=False)
    batches = ((x, y) for _ in range(2))
    with pytest.raises(ValueError, match="distributed training splits each global batch by samples"):
        net().fit(batches, loss="softmax_crossentropy", distributed=distributed.single(), progress=False)
    with pytest.raises(ValueError, match="expected 0 <= local_size <= global_size"):
        distributed.single().allreduce_gradients(net(), 5, 4)


def test_shards_cover_each_global_batch_once():
    class Fake(distributed.Communicator):
        def __init__(self, rank, size):
            self.rank, self.size = rank, size

    for n in range(0, 12):
        for size in (1, 2, 3, 5):
            parts = [Fake(r, size).shard(slice(3, 3 + n), 100) for r in range(size)]
            assert [i for p in parts for i in range(100)[p]] == list(range(3, 3 + n))
            index = np.arange(n) * 7
            pieces = [Fake(r, size).shard(index) for r in range(size)]
            assert np.concatenate(pieces).tolist() == index.tolist()
