"""The NCCL glue in ``xpcnn.backend`` (the GPU all-reduce of ``fit(..., distributed=)``), with a
recording stand-in for ``cupy.cuda.nccl``: NCCL itself needs two GPUs and has never run here."""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np
import pytest

from xpcnn import backend


class _Communicator:
    """Records ``allReduce`` and the device that was current when it was called."""

    def __init__(self, cupy):
        self.cupy, self.calls = cupy, []

    def allReduce(self, send, recv, count, kind, op, stream):  # noqa: N802 (NCCL's name)
        self.calls.append((send, recv, count, kind, op, stream, self.cupy.cuda.Device().id))


def _fake_nccl(available=True):
    return types.SimpleNamespace(NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0, available=available)


def _cupy_only(be):
    if not be.is_cupy:
        pytest.skip("the NCCL glue takes CuPy arrays")
    return backend._cupy()


def test_allreduce_runs_on_the_arrays_device(be, monkeypatch):
    """The receive buffer, the stream and the call are on ``flat``'s GPU, not the current one."""
    cupy = _cupy_only(be)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", _fake_nccl())
    monkeypatch.setattr(cupy.cuda, "nccl", sys.modules["cupy.cuda.nccl"], raising=False)
    emulated = be.name == "cupy-emulated"
    if emulated:
        import cupy_emulated

        monkeypatch.setattr(cupy_emulated, "_device_count", 2)  # undone after the test
    device = 1 if emulated or cupy.cuda.runtime.getDeviceCount() > 1 else 0
    with cupy.cuda.Device(device):
        flat = cupy.asarray(np.arange(6.0, dtype="float32"))
        stream = cupy.cuda.get_current_stream().ptr
    comm = _Communicator(cupy)
    with cupy.cuda.Device(0):
        out = backend.nccl_allreduce(comm, flat)
    ((send, recv, count, kind, op, used_stream, current),) = comm.calls
    assert out.device.id == device and current == device and used_stream == stream
    assert (send, recv, count, kind, op) == (flat.data.ptr, out.data.ptr, 6, 7, 0)
    assert out.shape == flat.shape and out.dtype == flat.dtype


def test_a_missing_nccl_falls_back_to_the_host_even_when_warnings_are_errors(be, monkeypatch, capsys):
    """CuPy 14's ``cupy.cuda.nccl`` imports without libnccl, with a UserWarning and
    ``available = False``; under ``-W error`` (this project's pytest setting) that warning must
    not escape: the communicator is False and rank 0 says what to install."""
    cupy = _cupy_only(be)
    monkeypatch.delitem(sys.modules, "cupy.cuda.nccl", raising=False)
    monkeypatch.delattr(cupy.cuda, "nccl", raising=False)

    others = vars(cupy.cuda).get("__getattr__")  # real CuPy loads some libraries lazily

    def nccl_without_library(name):
        if name != "nccl":
            if others is None:
                raise AttributeError(name)
            return others(name)
        warnings.warn("NCCL library could not be loaded", UserWarning, stacklevel=2)
        return _fake_nccl(available=False)

    monkeypatch.setattr(cupy.cuda, "__getattr__", nccl_without_library, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rank0 = types.SimpleNamespace(rank=0, size=2)
        assert backend.nccl_communicator(rank0, be.place) is False
    message = capsys.readouterr().err
    assert "all-reduced through the host" in message and "nvidia-nccl-cu13" in message
