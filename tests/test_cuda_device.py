"""device="cuda" without CuPy or without a GPU: a clear error that says what to do."""

from __future__ import annotations

import sys
import types

import pytest

from xpcnn import backend


@pytest.fixture
def fresh_cupy_cache():
    backend._cupy.cache_clear()
    yield
    backend._cupy.cache_clear()


def test_cuda_without_cupy_says_what_to_install(monkeypatch, fresh_cupy_cache):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(RuntimeError, match=r"xpcnn\[cuda13\].*xpcnn\[cuda12\].*device=\"cpu\""):
        backend.placement("cuda")
    assert backend.cuda_available() is False


class _NoDriver(Exception):
    pass


def _fake_cupy(count):
    def get_device_count():
        if count is None:
            raise _NoDriver("cudaErrorInsufficientDriver")
        return count

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


@pytest.mark.parametrize("count", [None, 0], ids=["no driver", "no device"])
def test_cuda_without_gpu_says_use_cpu(monkeypatch, fresh_cupy_cache, count):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    with pytest.raises(RuntimeError, match=r'sees no CUDA GPU.*Use device="cpu"'):
        backend.placement("cuda")
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        backend.placement("cuda:0")
    assert backend.cuda_available() is False


def test_cuda_index_out_of_range(monkeypatch, fresh_cupy_cache):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(1))
    with pytest.raises(ValueError, match=r"only 1 CUDA device\(s\) are visible"):
        backend.placement("cuda:3")


def test_cuda_on_this_machine_is_clear_either_way(fresh_cupy_cache):
    """The real install: either a GPU is there, or the error names the fix."""
    if backend.cuda_available():
        assert backend.placement("cuda").name == "cuda:0"
        return
    with pytest.raises(RuntimeError, match=r'device="cpu"'):
        backend.placement("cuda")
