"""``cupy-emulated``: a CPU stand-in for CuPy 14 that xpcnn cannot tell from the real one.

:func:`install` puts a module named ``cupy`` (with ``cupy.cuda``, ``cupy.cuda.device``,
``cupy.cuda.runtime``, ``cupy.cuda.driver``, ``cupy.cuda.compiler``, ``cupy.linalg`` and
``cupy.fft``) into ``sys.modules`` before anything imports CuPy.  Its arrays hold NumPy arrays
but are not NumPy arrays, so array-api-compat (which picks a namespace by class, NumPy first)
takes them for CuPy arrays: xpcnn, unchanged, runs ``array_api_compat.cupy`` and
``xpcnn.ops.cuda`` exactly as on a GPU, and its RawModule kernels are the real
``xpcnn/ops/kernels/conv2d.cu`` compiled for the host by g++ (``tests/cuda_host_shim.cpp``:
the grid, the threads of a block as fibers, ``__syncthreads``, dynamic shared memory).

CuPy behaviours it reproduces (CuPy 14.2; checked against the cupy-cuda13x 14.2.0 wheel where it
imports without a GPU, else against CuPy's v14.2.0 source, ``cupy/_core/core.pyx``, ``raw.pyx``,
``cuda/device.pyx``, ``cuda/function.pyx``, ``_routines_indexing.pyx``, ``_creation``):

* ``cupy.ndarray`` is its own class, not a ``numpy.ndarray`` subclass; ``numpy.asarray(x)`` /
  ``numpy.array(x)`` (and so ``numpy.testing``) raise CuPy's ``TypeError`` "Implicit conversion
  to a NumPy array is not allowed. Please use `.get()` ..."; ``x.get()`` and
  ``cupy.asnumpy(x)`` return a NumPy copy (C order by default, as CuPy's ``get``).
* A ``numpy.ndarray`` operand of any shape (0-d too) in arithmetic, in a ufunc or in any CuPy
  function raises ``TypeError: Unsupported type <class 'numpy.ndarray'>``, from either side
  (``numpy_array + cupy_array`` reaches CuPy's ``__array_ufunc__``); comparisons take 0-d NumPy
  arrays as scalars.  Python and NumPy scalars are fine.  Only ``cupy.array`` /
  ``asarray`` / ``asanyarray`` take host data (always a copy onto the current device), and
  integer or boolean index arrays.  ``x[...] = numpy_array`` of more than one element raises
  ``ValueError`` (CuPy refuses assignment from CPU arrays); a scalar is fine.
* ``numpy.sum(x)``, ``numpy.exp(x)`` ... dispatch to the stand-in (``__array_function__``,
  ``__array_ufunc__``) and return stand-in arrays, as with CuPy.
* Reductions, ``x[i]`` of a 1-d array and ``count_nonzero`` / ``allclose`` / ``array_equal``
  return 0-d arrays, never scalars; ``float()``, ``int()``, ``complex()``, ``bool()``,
  ``.item()``, ``.tolist()``, ``repr()``/``str()``/``format()`` and ``.get()`` copy to the host
  (a synchronisation on a GPU); ``bool()`` of a larger array raises ``ValueError``, of an empty
  one warns (``DeprecationWarning``) and is False.  There is no ``__index__`` (CuPy has none).
  Every such host read is counted: :func:`counts` / :func:`reset_counts` (issue 8 item 6).
* ``cupy.cuda.Device(i)``: ``.id``, ``int()``, ``==`` (with Devices only) and ordering,
  ``repr`` ``<CUDA Device i>``, ``Device()`` is the current device, a context manager that
  makes it current (a per-thread stack), ``use()``, ``synchronize()``; **unhashable**
  (``hash()`` raises ``TypeError``).  ``x.device`` is a Device.  Entering a device that does
  not exist raises ``CUDARuntimeError`` (cudaErrorInvalidDevice).  ``cupy.cuda.runtime``:
  ``getDeviceCount`` (1; :func:`set_device_count` for more), ``getDevice``, ``setDevice``,
  ``deviceSynchronize``.
* Creation functions (``zeros``, ``empty``, ``asarray``, ``*_like`` ...) place their result on
  the *current* device and have no ``device=`` argument (``TypeError``, as in CuPy 14;
  array-api-compat's wrappers drop ``device=`` for CuPy, so ``xp.zeros(..., device=d)`` lands
  on the current device whatever ``d`` is).  ``asarray`` of an array on another device copies
  it to the current one; of an array already there, returns it.
* Every operation takes arrays of the current device only (a ``ValueError`` naming both
  devices, as CuPy raises where peer access is unavailable; see below).
* ``empty`` / ``empty_like`` memory is not zero: it is filled with 0xFF bytes (NaN for floats),
  so a kernel or a code path that leaves outputs unwritten is seen.
* ``cupy.RawModule(code=..., options=..., name_expressions=...)``: keyword arguments only,
  exactly one of ``code`` / ``path``, ``options`` must be a tuple (a list raises ``TypeError``,
  the Cython signature ``tuple options``), ``code`` a str; compiled on the first
  ``get_function`` (as 14.2 does), compile errors raise ``CompileException``; a name that is
  not exactly one of the ``name_expressions`` strings is looked up unmangled and is not found
  (``CUDADriverError`` CUDA_ERROR_NOT_FOUND, as for a template kernel on a GPU).
* ``kernel(grid, block, args, shared_mem=0)``: ``grid`` and ``block`` must be tuples (Cython
  ``tuple grid``), shorter ones padded with 1.  On every launch each argument is checked
  against the parameter the kernel declares: an array must be a stand-in array of exactly the
  declared element type (float32 for ``float*``, float64 for ``double*``), C-contiguous and on
  the current device; a scalar must be ``numpy.int32`` for ``int`` and ``numpy.int64`` for
  ``long long``; the argument count must match.  (Real CuPy checks none of this: a wrong
  dtype reads garbage, a Python int is passed as 8 bytes.)  The kernel then runs on the same
  memory (its writes land in the arrays).  The shim refuses, as the GPU does, more than 48 KiB of
  dynamic shared memory, a block above 1024 threads, ``grid.y``/``grid.z`` above 65535.

What it cannot reproduce, or does differently:

* Timing, memory coalescing, occupancy, register spills (``nox -s cuda_compile`` checks those
  at compile time), L2/shared-memory bank behaviour, tensor cores / TF32.
* Races: the threads of a block run one at a time between barriers (``tests/test_cuda_kernels``
  flips their order to catch a missing barrier; here it is ascending), blocks run one after
  another; no float atomics are emulated; warp shuffles go through barriers.
* The driver and NVRTC: no PTX, no ``-ftz=true`` (CuPy adds it: float32 denormals are not
  flushed here), g++ -O1 instead of NVCC's FMA contraction (results differ in the last bits;
  the tests compare with tolerances), no launch-failure semantics (an out-of-bounds access is
  undefined behaviour on the host too, not a ``cudaErrorIllegalAddress``).  Only ``-D`` options are
  honoured and ``-std=`` accepted (the shim always compiles as C++17); any other option raises
  ``NotImplementedError`` rather than being silently dropped.  ``RawModule(path=...)`` (cubin/PTX) and ``RawKernel(code, name)``
  are not supported.  A 0 in ``grid``/``block`` is refused (CuPy would launch 1 block).
* Streams and asynchrony: everything is synchronous; ``Stream`` objects exist only as
  context managers; events, graphs, ``cupyx.profiler`` do not exist.  The counted host reads
  are the places a GPU would synchronise, not a measurement.
* Memory: no pool (``cupy.cuda.set_allocator(None or a callable)`` is accepted and only
  recorded in :data:`allocator`), no limits (no ``OutOfMemoryError``), no pinned memory, no
  ``__cuda_array_interface__`` / ``__dlpack__`` (``torch.from_dlpack`` of a stand-in array
  fails), no device properties.
* Multiple devices: with :func:`set_device_count` several devices exist, but an array on
  another device than the current one is always an error (CuPy enables peer access where the
  hardware allows it and then only warns, the result landing on the current device).
* Kernels: only RawModule kernels whose parameters are ``float*``/``double*``/``int``/
  ``long long`` (what the shim knows); no ElementwiseKernel, ReductionKernel, ``cupy.fuse``.
* Uncertain or not modelled: CuPy functions that reject Python lists where an array is
  expected (the stand-in passes them to NumPy); CuPy's own rounding and summation order in
  reductions and BLAS (NumPy's here); ``flags.c_contiguous`` for arrays with size-1 or
  zero-size axes follows NumPy's relaxed-strides rule (CuPy's may differ); data-dependent
  shapes (boolean indexing, ``nonzero``, ``unique`` ...) are counted as host reads.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import shutil
import sys
import tempfile
import threading
import types
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: The version string reported as ``cupy.__version__``.
VERSION = "14.2.0"

# Names whose CuPy 14.2 object *is* NumPy's (dtypes, scalar types, constants, dtype helpers).
_SAME_AS_NUMPY = frozenset(
    """bool bool_ broadcast_shapes byte cdouble complex128 complex64 complexfloating csingle double
    dtype e euler_gamma finfo float16 float32 float64 floating generic get_printoptions half iinfo
    index_exp inexact inf int16 int32 int64 int8 int_ intc integer intp isdtype issubdtype iterable
    long longlong mintypecode nan ndindex newaxis number pi printoptions promote_types s_
    set_printoptions short signedinteger single typename ubyte uint uint16 uint32 uint64 uint8 uintc
    uintp ulong ulonglong unsignedinteger ushort""".split()
)
# Public NumPy 2.4 names that CuPy 14.2 does not have (so array-api-compat wraps its own, e.g.
# vecdot and unstack, as it does on a GPU).
_NOT_IN_CUPY = frozenset(
    """False_ ScalarType True_ asmatrix block bmat busday_count busday_offset busdaycalendar bytes_
    char character clongdouble complex256 core ctypeslib datetime64 datetime_as_string
    datetime_data dtypes einsum_path emath errstate f2py flexible float128 frompyfunc fromregex
    geomspace get_include getbufsize geterr geterrcall histogram_bin_edges info insert is_busday
    isnat little_endian longdouble ma matrix matvec memmap nanpercentile nanquantile ndenumerate
    nditer nested_iters object_ polyder polydiv polyint rec recarray record sctypeDict setbufsize
    seterr seterrcall show_runtime spacing str_ strings test timedelta64 typecodes unstack vecdot
    vecmat void""".split()
)
_LINALG = """cholesky cond cross det eig eigh eigvals eigvalsh inv lstsq matmul matrix_power
    matrix_rank matrix_transpose norm pinv qr slogdet solve svd tensorinv tensorsolve""".split()
_FFT = """fft fft2 fftfreq fftn fftshift hfft ifft ifft2 ifftn ifftshift ihfft irfft irfft2 irfftn
    rfft rfft2 rfftfreq rfftn""".split()
# NumPy returns Python scalars from these; CuPy returns 0-d arrays.
_ARRAY_RESULT = frozenset({"count_nonzero", "allclose", "array_equal", "array_equiv"})
# Output shapes that depend on the data: a host read on a GPU.
_DATA_DEPENDENT = frozenset(
    """nonzero argwhere flatnonzero unique unique_all unique_counts unique_inverse unique_values
    extract compress""".split()
)
# Not emulated: host-memory views or device-specific entry points.
_REFUSED = frozenset({"from_dlpack", "frombuffer", "fromfile", "fromstring", "fromiter"})

IMPLICIT_CONVERSION = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array "
    "explicitly."
)


# --------------------------------------------------------------------------------- state


class _ThreadState(threading.local):
    def __init__(self):
        self.device = 0
        self.stack: list[int] = []


_thread = _ThreadState()
_device_count = 1
_counts: collections.Counter = collections.Counter()
_launch_lock = threading.Lock()
#: Every kernel launch: ``(name, grid, block, shared_mem, device id)``.
launches: list[tuple] = []


#: What ``cupy.cuda.set_allocator`` was last given (``"pool"``: never called).
allocator = "pool"


def set_allocator(allocator_=None) -> None:
    """``cupy.cuda.set_allocator``: None (CuPy: a ``cudaMalloc`` per array, no pool) or a
    callable; recorded only, since the stand-in has no memory pool."""
    global allocator
    if allocator_ is not None and not callable(allocator_):
        raise TypeError(f"allocator must be callable or None, got {type(allocator_).__name__}")
    allocator = allocator_


def set_device_count(count: int) -> None:
    """How many emulated GPUs ``getDeviceCount`` reports (1 by default, as on the GPU machine)."""
    global _device_count
    if count < 0:
        raise ValueError(count)
    _device_count = int(count)


def counts() -> dict:
    """Host reads since the last :func:`reset_counts`, by kind (``get``, ``item``, ``float``,
    ``bool``, ``int``, ``repr``, ``tolist``, ``data-dependent``, ``synchronize``), plus ``upload``
    (host-to-device copies) and ``launch`` (RawModule kernels)."""
    return dict(_counts)


def syncs() -> int:
    """The number of host synchronisations counted since :func:`reset_counts`."""
    return sum(v for k, v in _counts.items() if k not in ("upload", "launch"))


def reset_counts() -> None:
    _counts.clear()


def _sync(kind: str) -> None:
    _counts[kind] += 1


# ------------------------------------------------------------------------ cupy.cuda.*


class CUDARuntimeError(RuntimeError):
    """As ``cupy_backends.cuda.api.runtime.CUDARuntimeError``."""


class CUDADriverError(RuntimeError):
    """As ``cupy_backends.cuda.api.driver.CUDADriverError``."""


class CompileException(Exception):
    """As ``cupy.cuda.compiler.CompileException``."""


class EmulatedLaunchError(RuntimeError):
    """A kernel launch the stand-in refuses (an argument that does not match the kernel's
    parameter, an empty grid, ...): on a GPU it would read garbage or misbehave silently."""


def _check_device_id(i: int) -> None:
    if not 0 <= i < _device_count:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")


class Device:
    """``cupy.cuda.Device``: compared by id, unhashable (CuPy 14 defines ``__eq__`` only)."""

    __slots__ = ("id",)
    __module__ = "cupy.cuda.device"

    def __init__(self, device=None):
        self.id = _thread.device if device is None else int(device)

    def __int__(self):
        return self.id

    def __enter__(self):
        _check_device_id(self.id)
        _thread.stack.append(_thread.device)
        _thread.device = self.id
        return self

    def __exit__(self, *exc):
        _thread.device = _thread.stack.pop()

    def use(self):
        _check_device_id(self.id)
        _thread.device = self.id
        return self

    def synchronize(self):
        _check_device_id(self.id)
        _sync("synchronize")

    @property
    def compute_capability(self) -> str:
        return "90"

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other):
        return isinstance(other, Device) and self.id == other.id

    def __ne__(self, other):
        return not self.__eq__(other)

    def __lt__(self, other):
        return self.id < other.id if isinstance(other, Device) else NotImplemented

    def __le__(self, other):
        return self.id <= other.id if isinstance(other, Device) else NotImplemented

    def __gt__(self, other):
        return self.id > other.id if isinstance(other, Device) else NotImplemented

    def __ge__(self, other):
        return self.id >= other.id if isinstance(other, Device) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


class Stream:
    """A stand-in stream: a context manager whose work is always already done."""

    __module__ = "cupy.cuda.stream"

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0 if null else id(self)

    def synchronize(self):
        _sync("synchronize")

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class ExternalStream(Stream):
    def __init__(self, ptr, device_id=-1):
        self.ptr = ptr


Stream.null = Stream(null=True)


def get_current_stream(device_id=-1):
    return Stream.null


def _runtime_module():
    rt = types.ModuleType("cupy.cuda.runtime")
    rt.CUDARuntimeError = CUDARuntimeError
    rt.getDeviceCount = lambda: _device_count

    def setDevice(i):  # noqa: N802 (CUDA's name)
        _check_device_id(int(i))
        _thread.device = int(i)

    rt.getDevice = lambda: _thread.device
    rt.setDevice = setDevice
    rt.deviceSynchronize = lambda: _sync("synchronize")
    rt.is_hip = False
    return rt


# ----------------------------------------------------------------------------- arrays


class _Flags:
    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a: np.ndarray):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.base is None

    def __getitem__(self, name):
        return {
            "C_CONTIGUOUS": self.c_contiguous,
            "F_CONTIGUOUS": self.f_contiguous,
            "OWNDATA": self.owndata,
        }[name]

    def __repr__(self):
        return f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n  OWNDATA : {self.owndata}"


class _MemoryPointer:
    __slots__ = ("ptr", "device_id")

    def __init__(self, ptr, device_id):
        self.ptr, self.device_id = ptr, device_id

    @property
    def device(self):
        return Device(self.device_id)


def _new(a: np.ndarray, dev: int) -> ndarray:
    out = object.__new__(ndarray)
    out._a = a
    out._dev = dev
    return out


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def _other_device(x, dev):
    return ValueError(
        f"The device where the array resides ({x._dev}) is different from the current device ({dev}). "
        "Peer access is unavailable between these devices (the CuPy stand-in never enables it)."
    )


_SCALARS = (int, float, complex, bool, np.generic)


def _unwrap(v, dev, seen):
    """NumPy views of the stand-in arrays in ``v`` (recursing into lists and tuples); a NumPy
    array raises CuPy's ``Unsupported type``; an array on another device raises."""
    t = type(v)
    if t is ndarray:
        if v._dev != dev:
            raise _other_device(v, dev)
        seen.append(v)
        return v._a
    if t is tuple or t is list:
        return t(_unwrap(e, dev, seen) for e in v)
    if isinstance(v, np.ndarray):
        raise _unsupported(v)
    return v


def _wrap(r, dev, seen):
    """Stand-in arrays for NumPy results: an input returned as is stays that input, a NumPy
    scalar becomes a 0-d array."""
    t = type(r)
    if t is np.ndarray:
        for s in seen:
            if s._a is r:
                return s
        return _new(r, dev)
    if isinstance(r, np.generic):
        return _new(np.asarray(r), dev)
    if t is tuple or t is list:
        return t(_wrap(e, dev, seen) for e in r)
    if isinstance(r, tuple) and hasattr(r, "_fields"):  # a named tuple (unique_all, ...)
        return t(*(_wrap(e, dev, seen) for e in r))
    return r


def _call(func, args, kwargs):
    dev = _thread.device
    seen: list = []
    a = [_unwrap(x, dev, seen) for x in args]
    k = {key: _unwrap(val, dev, seen) for key, val in kwargs.items()} if kwargs else {}
    return _wrap(func(*a, **k), dev, seen)


def _host_copy(obj, dtype=None, order="K"):
    """``obj`` (host data, possibly holding stand-in arrays in nested sequences) as a new
    NumPy array, the host-to-device copy of ``cupy.array``."""
    if isinstance(obj, (list, tuple)):
        obj = _unwrap_nested(obj)
    host = np.array(obj, dtype=dtype, copy=True, order=order or "K")
    if host.dtype.kind in "OUSVMm":
        raise ValueError(f"Unsupported dtype {host.dtype}")
    _counts["upload"] += 1
    return host


def _unwrap_nested(v):
    """Stand-in arrays inside nested sequences (``cupy.array([x, y])``) as their NumPy data."""
    if type(v) is ndarray:
        return v._a
    if type(v) is tuple or type(v) is list:
        return [_unwrap_nested(e) for e in v]
    return v


def _binary(ufunc, reflected=False):
    def op(self, other):
        if type(other) is not ndarray and not isinstance(other, (*_SCALARS, np.ndarray)):
            return NotImplemented
        return _call(ufunc, (other, self) if reflected else (self, other), {})

    return op


def _inplace(ufunc):
    def op(self, other):
        if type(other) is not ndarray and not isinstance(other, (*_SCALARS, np.ndarray)):
            return NotImplemented
        _call(ufunc, (self, other), {"out": self})
        return self

    return op


def _compare(ufunc, default):
    def op(self, other):
        if type(other) is not ndarray:
            if isinstance(other, np.ndarray) and other.ndim == 0:
                other = other.item()
            elif other is None or (
                not isinstance(other, (*_SCALARS, np.ndarray)) and type(other).__eq__ is object.__eq__
            ):
                return _new(np.full(self._a.shape, default), self._dev)
            elif not isinstance(other, (*_SCALARS, np.ndarray)):
                return NotImplemented
        return _call(ufunc, (self, other), {})

    return op


def _method(name, kind=None):
    fn = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        if kind is not None:
            _sync(kind)
        return _call(fn, (self, *args), kwargs)

    method.__name__ = name
    return method


class ndarray:  # noqa: N801 (CuPy's name)
    """``cupy.ndarray``, holding a NumPy array (its "device memory") and a device id."""

    __slots__ = ("_a", "_dev")
    __module__ = "cupy"
    __array_priority__ = 100
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in does not take memptr or strides")
        self._a = _filled_empty(shape, dtype, order)
        self._dev = _thread.device

    # --- conversions (host reads)
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def get(self, stream=None, order="C", out=None, blocking=True):
        _sync("get")
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order, copy=True)

    def item(self):
        if self._a.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        _sync("item")
        return self._a.item()

    def tolist(self):
        _sync("tolist")
        return self._a.tolist()

    def tobytes(self, order="C"):
        _sync("get")
        return self._a.tobytes(order)

    def __bool__(self):
        size = self._a.size
        if size == 0:
            warnings.warn(
                "The truth value of an empty array is ambiguous. Returning False, but in future this will "
                "result in an error. Use `array.size > 0` to check that an array is not empty.",
                DeprecationWarning,
                stacklevel=2,
            )
            return False
        if size != 1:
            raise ValueError(
                "The truth value of an array with more than one element is ambiguous. Use a.any() or a.all()"
            )
        _sync("bool")
        return bool(self._a.reshape(()))

    def __float__(self):
        _sync("float")
        return float(self._a)

    def __int__(self):
        _sync("int")
        return int(self._a)

    def __complex__(self):
        _sync("float")
        return complex(self._a)

    def __repr__(self):
        _sync("repr")
        return repr(self._a)

    def __str__(self):
        _sync("repr")
        return str(self._a)

    def __format__(self, spec):
        _sync("repr")
        return format(self._a, spec)

    def __reduce__(self):
        _sync("get")
        return (_unpickle, (np.array(self._a),))

    def __copy__(self):
        return _new(self._a.copy(), self._dev)

    def __deepcopy__(self, memo):
        return _new(self._a.copy(), self._dev)

    # --- attributes
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    device = property(lambda self: Device(self._dev))
    data = property(lambda self: _MemoryPointer(self._a.ctypes.data, self._dev))

    @property
    def base(self):
        return None if self._a.base is None else _new(self._a.base, self._dev)

    @property
    def T(self):  # noqa: N802
        return self if self._a.ndim < 2 else _new(self._a.T, self._dev)

    @property
    def mT(self):  # noqa: N802
        return _new(np.swapaxes(self._a, -1, -2), self._dev)

    @property
    def real(self):
        return _new(self._a.real, self._dev)

    @property
    def imag(self):
        return _new(self._a.imag, self._dev)

    # --- shape and copies
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        kwargs = {"order": order, "copy": copy}
        if casting is not None:
            kwargs["casting"] = casting
        return _call(np.ndarray.astype, (self, dtype), kwargs)

    def fill(self, value):
        if type(value) is ndarray:
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._a
        else:
            value = np.asarray(value, dtype=self._a.dtype)
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a.fill(value)

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __getitem__(self, key):
        return _wrap(self._a[_index(key, self._dev)], self._dev, [self])

    def __setitem__(self, key, value):
        key = _index(key, self._dev)
        if type(value) is ndarray:
            if value._dev != self._dev:
                raise _other_device(value, self._dev)
            self._a[key] = value._a
            return
        host = np.asarray(value, dtype=self._a.dtype)
        if host.shape != ():
            # CuPy refuses assignment from CPU arrays (gh-2079): it fills with a scalar only
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a[key] = host

    # --- NumPy protocols: numpy.exp(x), numpy.sum(x) dispatch here, as with CuPy
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        f = getattr(_module, ufunc.__name__, None)
        if not isinstance(f, ufunc_):
            return NotImplemented
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        for x in (*inputs, kwargs.get("out")):
            if x is not None and type(x) is not ndarray and not isinstance(x, (*_SCALARS, np.ndarray)):
                return NotImplemented
        if ufunc.__name__ in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
            inputs = tuple(x.item() if isinstance(x, np.ndarray) and x.ndim == 0 else x for x in inputs)
        if method != "__call__":
            f = getattr(f, method)
        return f(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        module = {"numpy": _module, "numpy.linalg": _module.linalg, "numpy.fft": _module.fft}.get(
            func.__module__
        )
        ours = getattr(module, func.__name__, None) if module is not None else None
        if ours is None or ours is func:
            return NotImplemented
        for t in types_:
            if not issubclass(t, (ndarray, np.ndarray)):
                return NotImplemented
        return ours(*args, **kwargs)

    # --- arithmetic, comparisons (filled in below)
    def __neg__(self):
        return _call(np.negative, (self,), {})

    def __pos__(self):
        return _call(np.positive, (self,), {})

    def __abs__(self):
        return _call(np.absolute, (self,), {})

    def __invert__(self):
        return _call(np.invert, (self,), {})


_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor, "lshift": np.left_shift,
    "rshift": np.right_shift, "divmod": np.divmod,
}  # fmt: skip
for _name, _uf in _BINARY.items():
    setattr(ndarray, f"__{_name}__", _binary(_uf))
    setattr(ndarray, f"__r{_name}__", _binary(_uf, reflected=True))
    if _name != "divmod":
        setattr(ndarray, f"__i{_name}__", _inplace(_uf))
for _name, _uf, _default in (
    ("lt", np.less, False), ("le", np.less_equal, False), ("eq", np.equal, False),
    ("ne", np.not_equal, True), ("gt", np.greater, False), ("ge", np.greater_equal, False),
):  # fmt: skip
    setattr(ndarray, f"__{_name}__", _compare(_uf, _default))
for _name in """all any argmax argmin argpartition argsort choose clip compress conj conjugate copy
    cumprod cumsum diagonal dot flatten max mean min partition prod ptp put ravel repeat reshape round
    searchsorted sort squeeze std sum swapaxes take trace transpose var view""".split():
    if hasattr(np.ndarray, _name):
        setattr(ndarray, _name, _method(_name))
ndarray.nonzero = _method("nonzero", "data-dependent")
ndarray.__hash__ = None  # the comparison operators above must not bring one back


def _index(key, dev):
    """An index for the NumPy array: stand-in arrays unwrapped (their device checked); host
    index arrays and lists are accepted (CuPy copies them to the device)."""
    if type(key) is ndarray:
        if key._dev != dev:
            raise _other_device(key, dev)
        if key._a.dtype == np.bool_:
            _sync("data-dependent")
        return key._a
    if type(key) is tuple:
        return tuple(_index(k, dev) for k in key)
    return key


def _unpickle(host):
    return _new(np.array(host), _thread.device)


def _filled_empty(shape, dtype=float, order="C"):
    a = np.empty(shape, dtype=dtype, order=order)
    if a.size:
        a.reshape(-1, order="A").view(np.uint8).fill(0xFF)  # NaN for floats: unwritten outputs show
    return a


# ------------------------------------------------------------------------- functions


class ufunc_:  # noqa: N801
    """A CuPy ufunc over the NumPy one."""

    __module__ = "cupy"

    def __init__(self, uf: np.ufunc):
        self._uf = uf
        self.__name__ = uf.__name__
        self.nin, self.nout, self.nargs = uf.nin, uf.nout, uf.nargs
        self.identity = uf.identity

    def __call__(self, *args, **kwargs):
        return _call(self._uf, args, kwargs)

    def __getattr__(self, name):  # reduce, accumulate, outer, at, reduceat
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._uf, name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: _call(method, args, kwargs)

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


ufunc_.__name__ = ufunc_.__qualname__ = "ufunc"


def _function(np_func, name):
    to_array = name in _ARRAY_RESULT
    data_dependent = name in _DATA_DEPENDENT

    def f(*args, **kwargs):
        for bad in ("device", "like"):
            if bad in kwargs:
                raise TypeError(f"{name}() got an unexpected keyword argument '{bad}'")
        if data_dependent:
            _sync("data-dependent")
        out = _call(np_func, args, kwargs)
        if to_array and not isinstance(out, ndarray):
            out = _new(np.asarray(out), _thread.device)
        return out

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"CuPy stand-in for numpy.{name} (result on the current device)."
    return f


def _refused(name):
    def f(*args, **kwargs):
        raise NotImplementedError(f"cupy.{name} is not emulated by the CuPy stand-in")

    f.__name__ = name
    return f


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    dev = _thread.device
    if type(obj) is ndarray:
        if obj._dev != dev:
            a = np.array(obj._a, dtype=dtype, copy=True, order=order or "K", ndmin=ndmin)
        else:
            a = np.array(obj._a, dtype=dtype, copy=copy, order=order or "K", ndmin=ndmin)
            if a is obj._a:
                return obj
        return _new(a, dev)
    if copy is False:
        raise ValueError("Unable to avoid copy while creating an array from host data")
    host = _host_copy(obj, dtype, order)
    if ndmin > host.ndim:
        host = host.reshape((1,) * (ndmin - host.ndim) + host.shape)
    return _new(host, dev)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return array(a, dtype=dtype, copy=copy, order=order)


def asanyarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return array(a, dtype=dtype, copy=copy, order=order)


def empty(shape, dtype=float, order="C"):
    return _new(_filled_empty(shape, dtype, order), _thread.device)


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    dev = _thread.device
    proto = _unwrap(prototype, dev, [])
    a = np.empty_like(proto, dtype=dtype, order=order, shape=shape)
    if a.size:
        a.reshape(-1, order="A").view(np.uint8).fill(0xFF)
    return _new(a, dev)


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if type(a) is ndarray:
        return a.get(stream=stream, order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    return _module if any(type(a) is ndarray for a in args) else np


# --------------------------------------------------------------------------- RawModule

_built: dict = {}  # (code, defines, names) -> HostRuntime
_build_dir: list = []
_PARAM = {"F": "float*", "D": "double*", "i": "int", "l": "long long"}
_ARRAY_DTYPE = {"F": np.dtype("float32"), "D": np.dtype("float64")}
_SCALAR_TYPE = {"i": np.int32, "l": np.int64}


def _host_runtime(code: str, defines: tuple, names: tuple):
    """The shim compiled for ``code`` (cached for the process, as CuPy caches per device)."""
    key = (code, defines, names)
    rt = _built.get(key)
    if rt is None:
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        import cuda_host

        if not _build_dir:
            _build_dir.append(Path(tempfile.mkdtemp(prefix="xpcnn-cupy-emulated-")))
            atexit.register(shutil.rmtree, _build_dir[0], True)
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
        try:
            lib = cuda_host.build(_build_dir[0] / digest, code=code, defines=list(defines), names=names)
        except RuntimeError as exc:
            raise CompileException(str(exc)) from None
        rt = _built[key] = cuda_host.HostRuntime(lib)
        rt.signature_of = rt.signatures()
    return rt


class RawKernel:
    """A kernel of a :class:`RawModule` (constructing one from source is not emulated)."""

    __module__ = "cupy"

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("the CuPy stand-in runs RawModule kernels only")

    @classmethod
    def _of(cls, runtime, name):
        k = object.__new__(cls)
        k._rt, k.name = runtime, name
        k._signature = runtime.signature_of[name]
        return k

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        for arg, value in (("grid", grid), ("block", block)):
            if not isinstance(value, tuple):
                raise TypeError(
                    f"Argument '{arg}' has incorrect type (expected tuple, got {type(value).__name__})"
                )
        grid, block = (grid + (1, 1))[:3], (block + (1, 1))[:3]
        if min(grid) < 1 or min(block) < 1:
            raise EmulatedLaunchError(
                f"{self.name}: grid {grid} / block {block} with a 0: CuPy would launch max(1, 0) = 1 "
                "block or thread there (an empty output must not launch)"
            )
        if shared_mem < 0:
            raise OverflowError("can't convert negative value to size_t")
        host_args = self._check(args)
        dev = _thread.device
        with _launch_lock:
            _counts["launch"] += 1
            launches.append((self.name, grid, block, int(shared_mem), dev))
            self._rt.launch(self.name, grid, block, int(shared_mem), host_args)

    def _check(self, args):
        sig, dev, name = self._signature, _thread.device, self.name
        if len(args) != len(sig):
            raise EmulatedLaunchError(f"{name}: {len(args)} arguments given, the kernel declares {len(sig)}")
        out = []
        for i, (a, tag) in enumerate(zip(args, sig, strict=True)):
            param = f"{name}: argument {i} ({_PARAM.get(tag, tag)})"
            if tag in _ARRAY_DTYPE:
                if type(a) is not ndarray:
                    raise EmulatedLaunchError(f"{param} must be a cupy.ndarray, received {type(a).__name__}")
                if a._a.dtype != _ARRAY_DTYPE[tag]:
                    raise EmulatedLaunchError(f"{param} received an array of dtype {a._a.dtype}")
                if not a._a.flags.c_contiguous:
                    raise EmulatedLaunchError(
                        f"{param} received a non-C-contiguous array (kernels ignore strides)"
                    )
                if a._dev != dev:
                    raise EmulatedLaunchError(
                        f"{param} is on device {a._dev} but the launch is on device {dev}"
                    )
                out.append(a._a)
            elif tag in _SCALAR_TYPE:
                if type(a) is not _SCALAR_TYPE[tag]:
                    raise EmulatedLaunchError(
                        f"{param} must be numpy.{_SCALAR_TYPE[tag].__name__}, received {type(a).__name__} "
                        f"{a!r} (CuPy passes a Python int as 8 bytes, a float as a double)"
                    )
                out.append(a)
            else:
                raise EmulatedLaunchError(f"{param}: parameter type not emulated")
        return tuple(out)


class RawModule:
    """``cupy.RawModule`` compiled for the host by g++ (tests/cuda_host_shim.cpp)."""

    __module__ = "cupy"

    def __init__(
        self, *, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
        enable_cooperative_groups=False, name_expressions=None, jitify=None,
    ):  # fmt: skip
        for arg, value, kind in (("code", code, str), ("path", path, str), ("options", options, tuple)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(
                    f"Argument '{arg}' has incorrect type (expected {kind.__name__}, got {type(value).__name__})"
                )
        if (code is None) == (path is None):
            raise TypeError("Exactly one of `code` and `path` keyword arguments must be given.")
        if path is not None:
            raise NotImplementedError("the CuPy stand-in compiles CUDA source only, not cubin/PTX files")
        if backend != "nvrtc" and name_expressions is not None:
            raise ValueError(
                "only nvrtc supports retrieving the mangled names for the given name expressions"
            )
        self.code, self.options, self.backend = code, options, backend
        self.name_expressions = None if name_expressions is None else tuple(name_expressions)
        defines = []
        for opt in options:
            if not isinstance(opt, str):
                raise TypeError(f"compiler options must be str, received {type(opt).__name__}")
            if opt.startswith("-D"):
                defines.append(opt)
            elif opt.split("=", 1)[0] not in ("-std", "--std"):
                raise NotImplementedError(f"the CuPy stand-in cannot honour the NVRTC option {opt!r}")
        self._defines = tuple(defines)
        self.compiled_on: list[int] = []

    def get_function(self, name: str) -> RawKernel:
        if not isinstance(name, str):
            raise TypeError(f"Argument 'name' has incorrect type (expected str, got {type(name).__name__})")
        names = self.name_expressions or ()
        rt = _host_runtime(self.code, self._defines, names)  # compiled on first use, as CuPy 14.2
        dev = _thread.device
        if dev not in self.compiled_on:
            self.compiled_on.append(dev)
        if name not in names:
            # CuPy looks an unknown name up unmangled: a template instance is then not found
            raise CUDADriverError("CUDA_ERROR_NOT_FOUND: named symbol not found")
        return RawKernel._of(rt, name)


# ------------------------------------------------------------------------ the modules


def _build_module() -> types.ModuleType:
    cp = types.ModuleType("cupy", "CPU stand-in for CuPy 14 (tests/cupy_emulated.py).")
    cp.__version__ = VERSION
    cp.__file__ = __file__
    for name in dir(np):
        if name.startswith("_") or name in _NOT_IN_CUPY:
            continue
        obj = getattr(np, name)
        if name in _SAME_AS_NUMPY:
            setattr(cp, name, obj)
        elif name in _REFUSED:
            setattr(cp, name, _refused(name))
        elif isinstance(obj, np.ufunc):
            setattr(cp, name, ufunc_(obj))
        elif callable(obj) and not isinstance(obj, type):
            setattr(cp, name, _function(obj, name))
    for name, obj in (
        ("ndarray", ndarray), ("ufunc", ufunc_), ("array", array), ("asarray", asarray),
        ("asanyarray", asanyarray), ("empty", empty), ("empty_like", empty_like), ("asnumpy", asnumpy),
        ("get_array_module", get_array_module), ("RawModule", RawModule), ("RawKernel", RawKernel),
        ("is_available", lambda: _device_count > 0),
    ):  # fmt: skip
        setattr(cp, name, obj)

    linalg = types.ModuleType("cupy.linalg")
    linalg.LinAlgError = np.linalg.LinAlgError
    for name in _LINALG:
        setattr(linalg, name, _function(getattr(np.linalg, name), name))
    fft = types.ModuleType("cupy.fft")
    for name in _FFT:
        setattr(fft, name, _function(getattr(np.fft, name), name))
    cp.linalg, cp.fft = linalg, fft

    cuda = types.ModuleType("cupy.cuda")
    device = types.ModuleType("cupy.cuda.device")
    device.Device = Device
    device.get_device_id = lambda: _thread.device
    driver = types.ModuleType("cupy.cuda.driver")
    driver.CUDADriverError = CUDADriverError
    compiler = types.ModuleType("cupy.cuda.compiler")
    compiler.CompileException = CompileException
    cuda.Device, cuda.Stream, cuda.ExternalStream = Device, Stream, ExternalStream
    cuda.get_current_stream, cuda.get_device_id = get_current_stream, device.get_device_id
    cuda.is_available = cp.is_available
    cuda.set_allocator = set_allocator
    cuda.device, cuda.runtime, cuda.driver, cuda.compiler = device, _runtime_module(), driver, compiler
    cp.cuda = cuda
    return cp


_module = _build_module()
cupy = _module  # the stand-in module, also usable without install()


def modules() -> dict:
    """``{module name: module}`` for ``sys.modules``."""
    cuda = _module.cuda
    return {
        "cupy": _module,
        "cupy.linalg": _module.linalg,
        "cupy.fft": _module.fft,
        "cupy.cuda": cuda,
        "cupy.cuda.device": cuda.device,
        "cupy.cuda.runtime": cuda.runtime,
        "cupy.cuda.driver": cuda.driver,
        "cupy.cuda.compiler": cuda.compiler,
    }


def available() -> str | None:
    """None when the stand-in can run kernels here, else why not (the host shim needs g++)."""
    return None if shutil.which("g++") else "g++ not found: the CuPy stand-in's kernels need the host shim"


def installed() -> bool:
    return sys.modules.get("cupy") is _module


def install() -> None:
    """Make ``import cupy`` return the stand-in.  Must run before anything imports CuPy (or
    ``array_api_compat.cupy``, which binds CuPy's names when it is imported)."""
    if installed():
        return
    clash = [m for m in ("cupy", "array_api_compat.cupy") if m in sys.modules]
    if clash:
        raise RuntimeError(f"the CuPy stand-in must be installed before {clash[0]} is imported")
    sys.modules.update(modules())


@contextlib.contextmanager
def device_count(count: int):
    """Temporarily report ``count`` emulated GPUs."""
    before = _device_count
    set_device_count(count)
    try:
        yield
    finally:
        set_device_count(before)
