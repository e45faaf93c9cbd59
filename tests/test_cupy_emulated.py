"""The CuPy stand-in (tests/cupy_emulated.py) keeps CuPy 14's rules: each rule the docstring
lists is checked here on the stand-in module itself (no install needed), and once through
array-api-compat and xpcnn in a fresh process where it is installed as ``cupy``.

Where the real CuPy is importable (the cupy-cuda13x wheel imports without a GPU), the pure-Python
facts are also compared with it: the unhashable Device, RawModule's tuple ``options``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from xpcnn import testing as reference
from xpcnn.ops import cuda

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cupy_emulated as ce  # noqa: E402

cp = ce.cupy
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found: the host shim needs it")


@pytest.fixture(autouse=True)
def _restore_state():
    yield
    ce.set_device_count(1)
    cp.cuda.runtime.setDevice(0)


def test_array_type_is_not_numpy_and_refuses_implicit_conversion():
    x = cp.asarray(np.arange(6.0).reshape(2, 3))
    assert type(x) is cp.ndarray and not isinstance(x, np.ndarray)
    for convert in (np.asarray, np.array, lambda a: np.testing.assert_allclose(a, 0)):
        with pytest.raises(TypeError, match=r"Implicit conversion to a NumPy array is not allowed"):
            convert(x)
    host = x.get()
    assert type(host) is np.ndarray and host.tolist() == [[0, 1, 2], [3, 4, 5]]
    host[0, 0] = 9  # a copy
    assert float(x[0, 0]) == 0.0
    assert type(cp.asnumpy(x.T)) is np.ndarray and cp.asnumpy(x.T).flags.c_contiguous


@pytest.mark.parametrize("host", [np.ones(3), np.array(2.0)], ids=["1-d", "0-d"])
def test_numpy_operands_raise_like_cupy(host):
    x = cp.ones(3)
    for op in (lambda: x + host, lambda: host + x, lambda: x * host, lambda: cp.maximum(x, host)):
        with pytest.raises(TypeError, match=r"Unsupported type <class 'numpy.ndarray'>"):
            op()
    with pytest.raises(TypeError, match="Unsupported type"):
        x += host
    assert type(x + 1) is cp.ndarray and type(np.float32(2) * x) is cp.ndarray and type(2.5 - x) is cp.ndarray


def test_numpy_functions_dispatch_to_the_stand_in():
    x = cp.asarray([1.0, 2.0])
    assert type(np.exp(x)) is cp.ndarray and type(np.sum(x)) is cp.ndarray
    assert (x == np.array(1.0)).tolist() == [True, False]  # 0-d NumPy arrays compare as scalars


def test_reductions_are_0d_arrays_and_host_reads_are_counted():
    x = cp.asarray([[1.0, 2.0], [3.0, 4.0]])
    ce.reset_counts()
    s = x.sum()
    assert type(s) is cp.ndarray and s.shape == () and type(x[0, 1]) is cp.ndarray
    assert type(cp.count_nonzero(x)) is cp.ndarray and type(cp.allclose(x, x)) is cp.ndarray
    assert ce.syncs() == 0
    assert float(s) == 10.0 and int(s) == 10 and bool(s) and s.item() == 10.0
    assert ce.counts() == {"float": 1, "int": 1, "bool": 1, "item": 1} and ce.syncs() == 4
    with pytest.raises(ValueError, match="truth value of an array with more than one element"):
        bool(x)
    with pytest.raises(TypeError):
        range(s.astype("int64"))  # no __index__, as in CuPy
    with pytest.warns(DeprecationWarning):
        assert not bool(cp.zeros(0))


def test_device_is_unhashable_and_a_context():
    d0, d1 = cp.cuda.Device(0), cp.cuda.Device(1)
    with pytest.raises(TypeError, match="unhashable"):
        hash(d0)
    with pytest.raises(TypeError):
        {d0: 1}  # noqa: B018
    assert d0 == cp.cuda.Device(0) and d0 != d1 and d0 != 0 and d0 < d1 and repr(d1) == "<CUDA Device 1>"
    assert cp.cuda.runtime.getDeviceCount() == 1
    with pytest.raises(ce.CUDARuntimeError, match="invalid device"):
        with d1:
            pass
    ce.set_device_count(2)
    with d1:
        assert cp.cuda.Device().id == 1 and cp.cuda.runtime.getDevice() == 1
        y = cp.zeros(3)
    assert y.device == d1 and cp.zeros(3).device == d0
    with pytest.raises(ValueError, match=r"resides \(1\) is different from the current device \(0\)"):
        y + 1
    moved = cp.asarray(y)  # copied to the current device
    assert moved.device == d0 and moved is not y
    x = cp.zeros(2)
    assert cp.asarray(x) is x and cp.ascontiguousarray(x) is x


def test_creation_functions_have_no_device_argument():
    for make in (lambda: cp.zeros(3, device=cp.cuda.Device(0)), lambda: cp.arange(3, device="cuda")):
        with pytest.raises(TypeError, match="unexpected keyword argument 'device'"):
            make()


def test_assignment_from_host_arrays_is_refused_and_empty_is_not_zero():
    x = cp.zeros((2, 3))
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        x[0] = np.ones(3)
    x[0] = 1.5
    x[1] = cp.arange(3.0)
    assert x.get().tolist() == [[1.5, 1.5, 1.5], [0, 1, 2]]
    assert np.isnan(cp.empty(4).get()).all() and np.isnan(cp.empty_like(x).get()).all()


def test_real_cupy_agrees_where_it_imports():
    """The pure-Python facts, against the real wheel in a fresh process (skipped where it is
    not installed)."""
    check = textwrap.dedent(
        """
        try:
            import cupy
        except ImportError:
            raise SystemExit(3)
        try:
            hash(cupy.cuda.Device(0))
            raise SystemExit("Device is hashable")
        except TypeError:
            pass
        try:
            cupy.RawModule(code="", options=["--std=c++17"])
            raise SystemExit("a list of options was accepted")
        except TypeError:
            pass
        assert cupy.cuda.Device(0) == cupy.cuda.Device(0) and cupy.cuda.Device(0) != 0
        assert not issubclass(cupy.ndarray, __import__("numpy").ndarray)
        """
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    if proc.returncode == 3:
        pytest.skip("the real cupy is not installed")
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_the_stand_in_checks_rawmodule_arguments():
    with pytest.raises(TypeError, match=r"'options' has incorrect type \(expected tuple, got list\)"):
        cp.RawModule(code=cuda.source(), options=list(cuda.OPTIONS), name_expressions=cuda.NAME_EXPRESSIONS)
    with pytest.raises(TypeError, match="Exactly one of `code` and `path`"):
        cp.RawModule(options=cuda.OPTIONS)
    with pytest.raises(NotImplementedError, match="-lineinfo"):
        cp.RawModule(code=cuda.source(), options=("-lineinfo",))


@pytest.fixture(scope="module")
def module():
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: the host shim needs it")
    return cp.RawModule(
        code=cuda.source(), options=cuda.OPTIONS, name_expressions=list(cuda.NAME_EXPRESSIONS)
    )


def _forward_args(rng, dtype="float64"):
    x = cp.asarray(rng.normal(size=(2, 3, 7, 9)), dtype=dtype)
    k = cp.asarray(rng.normal(size=(4, 3, 3, 3)), dtype=dtype)
    plan = cuda.forward_plan(x.shape, k.shape, x.dtype.itemsize, (1, 1), (1, 1))
    y = cp.empty(plan["out_shape"], dtype=dtype)
    return x, k, y, plan


@needs_gxx
def test_kernel_launch_runs_the_real_kernel(module, rng):
    x, k, y, plan = _forward_args(rng)
    fn = module.get_function(cuda.forward_name("double", 3, plan["tile"]))
    before = len(ce.launches)
    fn(plan["grid"], plan["block"], (x, k, y, *plan["scalars"]), shared_mem=plan["shared"])
    assert len(ce.launches) == before + 1 and ce.launches[-1][-1] == 0
    ref = reference.conv2d_forward(x.get(), k.get(), (1, 1), (1, 1))
    np.testing.assert_allclose(y.get(), ref, rtol=1e-12, atol=1e-12)


@needs_gxx
def test_kernel_names_must_be_exact_name_expressions(module):
    with pytest.raises(ce.CUDADriverError, match="CUDA_ERROR_NOT_FOUND"):
        module.get_function("xpcnn_conv2d_forward<double,3,3>")  # spaces differ
    with pytest.raises(ce.CUDADriverError, match="CUDA_ERROR_NOT_FOUND"):
        module.get_function("xpcnn_conv2d_forward")


@needs_gxx
def test_every_launch_checks_its_arguments(module, rng):
    x, k, y, plan = _forward_args(rng)
    fn = module.get_function(cuda.forward_name("double", 3, plan["tile"]))
    g, b, s, scalars = plan["grid"], plan["block"], plan["shared"], plan["scalars"]
    x32 = x.astype("float32")
    as_int64 = tuple(np.int64(v) for v in scalars)
    as_python = tuple(int(v) for v in scalars)
    bad = {
        "dtype float32": ((x32, k, y, *scalars), {}),
        "non-C-contiguous": ((x[:, :, :, ::-1], k, y, *scalars), {}),
        "must be numpy.int32, received int64": ((x, k, y, *as_int64), {}),
        "must be numpy.int32, received int ": ((x, k, y, *as_python), {}),
        "must be a cupy.ndarray, received ndarray": ((x.get(), k, y, *scalars), {}),
        "arguments given, the kernel declares": ((x, k, y), {}),
    }
    for message, (args, _) in bad.items():
        with pytest.raises(ce.EmulatedLaunchError, match=message):
            fn(g, b, args, shared_mem=s)
    with pytest.raises(TypeError, match=r"'grid' has incorrect type \(expected tuple, got list\)"):
        fn(list(g), b, (x, k, y, *scalars), shared_mem=s)
    with pytest.raises(ce.EmulatedLaunchError, match="would launch max"):
        fn((0, 1, 1), b, (x, k, y, *scalars), shared_mem=s)
    ce.set_device_count(2)
    with cp.cuda.Device(1):
        with pytest.raises(ce.EmulatedLaunchError, match="is on device 0 but the launch is on device 1"):
            fn(g, b, (x, k, y, *scalars), shared_mem=s)


_IN_A_FRESH_PROCESS = """
import sys
sys.path.insert(0, {here!r})
import cupy_emulated
cupy_emulated.install()
import array_api_compat, array_api_compat.cupy as xp, cupy, numpy as np
import xpcnn
from xpcnn import backend

assert xpcnn.cuda_available()
place = backend.placement("cuda")
x = place.asarray(np.ones((2, 3)), "float32")
assert type(x) is cupy.ndarray and array_api_compat.array_namespace(x) is xp
assert backend.placement_of(x) == place and place.name == "cuda:0"
assert type(backend.to_host(x)) is np.ndarray
cupy_emulated.set_device_count(2)
one = backend.placement("cuda:1")
assert xp.zeros(3, device=one.device).device.id == 0  # device= is dropped for CuPy
assert one.zeros((3,), "float32").device.id == 1 and one.asarray(np.ones(2)).device.id == 1
try:
    backend.placement("cuda:2")
    raise SystemExit("cuda:2 accepted")
except ValueError:
    pass
print("ok")
"""


def test_installed_as_cupy_array_api_compat_and_xpcnn_take_it_for_cupy():
    code = _IN_A_FRESH_PROCESS.format(here=str(HERE))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE.parent)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr + proc.stdout
