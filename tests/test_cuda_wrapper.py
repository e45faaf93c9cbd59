"""xpcnn.ops.cuda's CuPy-facing code (contiguity, dtype and device checks, the per-device
RawModule, name expressions, explicit scalar types) driven on the CPU: a stand-in ``cupy``
module whose RawModule runs the real kernels through the host shim (tests/cuda_host_shim.cpp).
The real CuPy path runs in tests/test_correlation.py on the cupy backend where a GPU is visible.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from xpcnn import testing as reference
from xpcnn.ops import cuda

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cuda_host  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found: the host shim needs it")


class FakeArray(np.ndarray):
    """A NumPy array that answers ``.device.id`` like a CuPy array."""

    device_id = 0

    @property
    def device(self):
        return types.SimpleNamespace(id=self.device_id)


def _wrap(a, device_id=0):
    out = np.asarray(a).view(FakeArray)
    out.device_id = device_id
    return out


class FakeCupy(types.SimpleNamespace):
    pass


@pytest.fixture
def fake(tmp_path_factory, monkeypatch):
    lib = cuda_host.build(tmp_path_factory.mktemp("cuda_shim"))
    host = cuda_host.HostRuntime(lib)
    built = []
    current = {"device": 0}

    class RawModule:
        def __init__(self, code, options, name_expressions):
            assert code == cuda.source() and tuple(options) == cuda.OPTIONS
            self.names = list(name_expressions)
            self.device = current["device"]
            built.append(self)

        def get_function(self, name):
            assert name in self.names, name
            assert current["device"] == self.device

            def kernel(grid, block, args, shared_mem=0):
                for a in args:
                    assert isinstance(a, (FakeArray, np.int32, np.int64)), type(a)
                    if isinstance(a, FakeArray):
                        assert a.device.id == current["device"]
                host.launch(name, grid, block, shared_mem, args)

            return kernel

    @contextlib.contextmanager
    def device_ctx(i):
        before = current["device"]
        current["device"] = i
        try:
            yield
        finally:
            current["device"] = before

    def creator(fn):
        return lambda *a, **kw: _wrap(fn(*a, **kw), current["device"])

    fake_cupy = FakeCupy(
        ndarray=FakeArray,
        RawModule=RawModule,
        cuda=types.SimpleNamespace(Device=device_ctx),
        zeros=creator(np.zeros),
        empty=creator(np.empty),
        transpose=np.transpose,
        ascontiguousarray=lambda a: (
            a if a.flags.c_contiguous else _wrap(np.ascontiguousarray(a), a.device.id)
        ),
    )
    monkeypatch.setattr(cuda, "_cupy", lambda: fake_cupy)
    monkeypatch.setattr(cuda, "_modules", {})
    monkeypatch.setattr(cuda, "_functions", {})
    return types.SimpleNamespace(host=host, built=built)


def test_wrapper_forward_backward_match_reference(fake, rng):
    x, k = rng.normal(size=(3, 4, 9, 10)), rng.normal(size=(5, 4, 3, 3))
    stride, padding = (2, 1), (1, 1)
    y = cuda.conv2d_forward(_wrap(x), _wrap(k), stride=stride, padding=padding)
    np.testing.assert_allclose(y, reference.conv2d_forward(x, k, stride, padding), rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=y.shape)
    dx, dk = cuda.conv2d_backward(_wrap(x), _wrap(k), _wrap(dy), stride=stride, padding=padding)
    dx_ref, dk_ref = reference.conv2d_backward(x, k, dy, stride, padding)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dk, dk_ref, rtol=1e-12, atol=1e-12)
    none, dk2 = cuda.conv2d_backward(
        _wrap(x), _wrap(k), _wrap(dy), stride=stride, padding=padding, input_gradient=False
    )
    assert none is None
    np.testing.assert_array_equal(dk2, dk)
    assert len(fake.built) == 1  # one module for the device, built once


def test_wrapper_makes_inputs_contiguous(fake, rng):
    x = rng.normal(size=(2, 7, 8, 3)).astype("float32")
    xt = _wrap(x).transpose(0, 3, 1, 2)  # NHWC data seen as NCHW: not contiguous
    assert not xt.flags.c_contiguous
    k = rng.normal(size=(2, 3, 5, 5)).astype("float32")
    y = cuda.conv2d_forward(xt, _wrap(k), stride=(1, 1), padding=(2, 2))
    ref = reference.conv2d_forward(np.transpose(x, (0, 3, 1, 2)), k, (1, 1), (2, 2))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    # a 7 x 8 output: the small tile
    assert fake.host.launches[-1][0] == "xpcnn_conv2d_forward<float, 5, 5, 1>"


def test_wrapper_one_module_per_device(fake, rng):
    x, k = rng.normal(size=(1, 1, 5, 5)), rng.normal(size=(1, 1, 3, 3))
    cuda.conv2d_forward(_wrap(x, 0), _wrap(k, 0), stride=(1, 1), padding=(0, 0))
    y = cuda.conv2d_forward(_wrap(x, 1), _wrap(k, 1), stride=(1, 1), padding=(0, 0))
    cuda.conv2d_forward(_wrap(x, 1), _wrap(k, 1), stride=(1, 1), padding=(0, 0))
    assert [m.device for m in fake.built] == [0, 1]
    assert y.device.id == 1


def test_wrapper_empty_batch_launches_nothing(fake):
    y = cuda.conv2d_forward(
        _wrap(np.ones((0, 2, 5, 5))), _wrap(np.ones((3, 2, 3, 3))), stride=(1, 1), padding=(1, 1)
    )
    assert y.shape == (0, 3, 5, 5)
    assert fake.host.launches == [] and fake.built == []
