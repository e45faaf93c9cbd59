"""The one module that knows NumPy and CuPy by name.

Everything else in xpcnn works with ``xp``, the Python Array API namespace of its
inputs (through array-api-compat), and with :class:`Placement`, a namespace and a
device together: "where an array lives".

Facts kept here so that no layer has to know them:

* ``device="cpu"`` is NumPy (through ``array_api_compat.numpy``), ``device="cuda"`` is
  CuPy (imported lazily: a CPU-only install never touches it).
* CuPy's creation functions ignore ``device=``; only a ``cupy.cuda.Device`` context
  places them.  ``to_device(x, "cpu")`` changes the namespace.  Host -> device copies
  therefore go through :meth:`Placement.asarray`, device -> host through :func:`to_host`.
* array_api_strict refuses ``numpy.asarray`` on a non-CPU device; it is copied to its
  CPU device first.
* DLPack: a producer on the CPU becomes a NumPy array through ``numpy.from_dlpack``, one on
  a CUDA GPU a CuPy array through ``cupy.from_dlpack``; both share the producer's memory.
  NumPy and CuPy arrays are producers too (``__dlpack__``), so ``torch.from_dlpack`` takes
  a model's arrays without a copy.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any

import array_api_compat
import array_api_compat.numpy as xp_numpy
import numpy as np

__all__ = [
    "Placement",
    "array_namespace",
    "check_array",
    "cuda_available",
    "device_key",
    "from_dlpack",
    "is_cupy",
    "is_host_array",
    "placement",
    "placement_of",
    "to_host",
]

FLOAT_DTYPES = ("float32", "float64")

#: The type of an array in annotations: any Python Array API array (NumPy, CuPy, ...).
Array = Any
#: What a ``device=`` argument takes: ``"cpu"``, ``"cuda"``, ``"cuda:<n>"``, a Placement or an array.
DeviceLike = Any


def array_namespace(*arrays: Any):
    """The Array API namespace of ``arrays`` (they must share one)."""
    if arrays and all(type(a) is np.ndarray for a in arrays):  # hot path: plain NumPy arrays
        return xp_numpy
    return array_api_compat.array_namespace(*arrays)


def device(x):
    """The device of an array (``array_api_compat.device``)."""
    if type(x) is np.ndarray:  # hot path
        return "cpu"
    return array_api_compat.device(x)


def is_cupy(xp) -> bool:
    """True when ``xp`` is CuPy's namespace (the CUDA kernels apply)."""
    return array_api_compat.is_cupy_namespace(xp)


def device_key(dev) -> str:
    """A hashable name for a device object, for dict keys and sets.

    A ``cupy.cuda.Device`` is unhashable in CuPy 14 (``hash()`` raises ``TypeError``), so a
    device never goes into a key itself: its kind and ``id`` do (``"cupy.cuda.device:0"``).
    """
    if type(dev) is str:  # NumPy's "cpu" (hot path)
        return dev
    index = getattr(dev, "id", None)
    if type(index) is int:
        return f"{type(dev).__module__}:{index}"
    return f"{type(dev).__module__}:{dev!r}"


def is_host_scalar(x: Any) -> bool:
    """A NumPy scalar (``numpy.float32(1.0)``, what NumPy reductions return): not an array."""
    return isinstance(x, np.generic)


def host_0d(x: Any) -> np.ndarray:
    """A NumPy scalar as the 0-d array of its dtype (no copy through a wrapper: a hot path,
    every loss value on the CPU)."""
    return np.asarray(x)


def is_host_array(x: Any) -> bool:
    """True for a NumPy array (host memory)."""
    return isinstance(x, np.ndarray)


def is_array(x: Any) -> bool:
    if type(x) is np.ndarray:  # hot path
        return True
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, complex, bool))


@functools.cache
def _cupy():
    try:
        import cupy
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            'device="cuda" needs CuPy, which is not installed. Install it with '
            "`pip install xpcnn[cuda13]` (CUDA 13) or `pip install xpcnn[cuda12]` (CUDA 12), "
            'or use device="cpu".'
        ) from exc
    return cupy


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA GPU."""
    try:
        cupy = _cupy()
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@dataclass(frozen=True)
class Placement:
    """Where arrays live: an Array API namespace ``xp`` and a ``device`` of it.

    ``name`` is ``"cpu"`` for NumPy, ``"cuda:<id>"`` for CuPy, else the device's repr.
    """

    xp: Any
    device: Any
    name: str

    def __repr__(self) -> str:
        return f"Placement({self.name!r})"

    @classmethod
    def of(cls, xp, device) -> Placement:
        """The placement for namespace ``xp`` and one of its devices."""
        return cls(xp, device, _device_name(xp, device))

    @property
    def is_cuda(self) -> bool:
        return is_cupy(self.xp)

    def dtype(self, name: str) -> Any:
        """The namespace's dtype object for ``"float32"`` / ``"float64"`` (or any name)."""
        return getattr(self.xp, str(name))

    def asarray(self, host, dtype: str | None = None, copy: bool = False) -> Array:
        """A host (NumPy) array on this placement, optionally cast on the host first.  On the
        CPU the result may share memory with ``host`` unless ``copy`` is true; elsewhere it is
        always a copy."""
        host = np.array(host, copy=True) if copy else np.asarray(host)
        if dtype is not None:
            host = host.astype(str(dtype), copy=False)
        if self.is_cuda:
            cupy = _cupy()
            with cupy.cuda.Device(self.device.id):
                return self.xp.asarray(cupy.asarray(host))
        return self.xp.asarray(host, device=self.device)

    def activate(self) -> contextlib.AbstractContextManager:
        """A context in which new arrays land on this device: CuPy's creation functions ignore
        ``device=`` and use the current device, so every model pass on ``cuda:<n>`` runs inside
        ``with placement.activate():``.  Elsewhere it does nothing."""
        if self.is_cuda:
            return _cupy().cuda.Device(self.device.id)
        return contextlib.nullcontext()

    def zeros(self, shape, dtype: str) -> Array:
        if self.is_cuda:
            cupy = _cupy()
            with cupy.cuda.Device(self.device.id):
                return self.xp.zeros(shape, dtype=self.dtype(dtype))
        return self.xp.zeros(shape, dtype=self.dtype(dtype), device=self.device)

    def holds(self, x) -> bool:
        """True when ``x`` lives in this namespace and on this device."""
        try:
            return placement_of(x) == self
        except TypeError:
            return False

    def __eq__(self, other) -> bool:
        if not isinstance(other, Placement):
            return NotImplemented
        return self.name == other.name and _same_namespace(self.xp, other.xp)

    def __hash__(self) -> int:
        return hash(self.name)


_CPU = Placement(xp_numpy, "cpu", "cpu")  # what placement("cpu") returns


def _same_namespace(a, b) -> bool:
    return getattr(a, "__name__", a) == getattr(b, "__name__", b)


def _device_name(xp, dev) -> str:
    if array_api_compat.is_numpy_namespace(xp):
        return "cpu"
    if is_cupy(xp):
        return f"cuda:{dev.id}"
    if array_api_compat.is_torch_namespace(xp):
        return f"torch:{dev}"
    return f"{getattr(xp, '__name__', 'xp')}:{dev!r}"


def placement_of(x) -> Placement:
    """The :class:`Placement` of an array (raises ``TypeError`` for a non-array)."""
    if type(x) is np.ndarray:  # hot path (every layer call checks its input's placement)
        return _CPU
    if not is_array(x):
        raise TypeError(f"expected an array, received {type(x).__name__}")
    xp = array_namespace(x)
    dev = array_api_compat.device(x)
    return Placement.of(xp, dev)


def placement(spec) -> Placement:
    """Resolve a device switch: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a Placement, or an array
    (whose placement is taken)."""
    if isinstance(spec, Placement):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key == "cpu":
            return _CPU
        if key == "cuda" or key.startswith("cuda:"):
            index = 0
            if ":" in key:
                try:
                    index = int(key.split(":", 1)[1])
                except ValueError:
                    raise ValueError(
                        f'device must be "cpu", "cuda" or "cuda:<n>"; received {spec!r}'
                    ) from None
            try:
                cupy = _cupy()
            except RuntimeError as exc:
                raise RuntimeError(str(exc).replace('device="cuda"', f"device={spec!r}", 1)) from None
            count = 0
            try:
                count = cupy.cuda.runtime.getDeviceCount()
            except Exception:
                count = 0
            if count == 0:
                raise RuntimeError(
                    f"device={spec!r} was requested but CuPy sees no CUDA GPU (no driver or no device). "
                    'Use device="cpu", or run on a machine with an NVIDIA GPU.'
                )
            if not 0 <= index < count:
                raise ValueError(
                    f"device={spec!r}: only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})"
                )
            import array_api_compat.cupy as xp_cupy

            dev = cupy.cuda.Device(index)
            return Placement(xp_cupy, dev, f"cuda:{index}")
        raise ValueError(f'device must be "cpu", "cuda" or "cuda:<n>"; received {spec!r}')
    if is_array(spec):
        return placement_of(spec)
    raise TypeError(f'device must be "cpu", "cuda" or a Placement; received {type(spec).__name__}')


def to_host(x) -> np.ndarray:
    """Copy any supported array to a NumPy array on the host (a copy when it lives elsewhere;
    a NumPy array comes back as itself).  NumPy arrays are DLPack producers, so
    ``torch.from_dlpack(to_host(x))`` is a torch tensor sharing that memory (no copy)."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):  # a NumPy reduction's scalar (a loss value on the CPU)
        return np.asarray(x)
    if not is_array(x):
        return np.asarray(x)
    xp = array_namespace(x)
    if is_cupy(xp):
        return x.get()
    if array_api_compat.is_torch_namespace(xp):
        return x.detach().cpu().numpy()
    if array_api_compat.is_array_api_strict_namespace(xp):
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.from_dlpack(x)


# DLPack device types (``__dlpack_device__()[0]``): the ones NumPy and CuPy import.
_DLPACK_HOST = {1: "CPU", 3: "CUDA host (pinned)"}
_DLPACK_CUDA = {2: "CUDA", 13: "CUDA managed"}


def from_dlpack(obj, device: DeviceLike = None) -> Array:
    """An xpcnn array viewing the memory of a DLPack producer (a torch tensor, a JAX array, a
    NumPy or CuPy array, ...), shape and dtype unchanged.

    A producer on the CPU gives a NumPy array (``numpy.from_dlpack``), one on CUDA GPU ``n``
    a CuPy array on ``cuda:n`` (``cupy.from_dlpack``): no copy, so writes through either are
    seen by the other.  ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:<n>"``, a Placement or an
    array) asks for a placement: where it differs from the producer's, the array is handed to
    it through :meth:`Placement.asarray` (a copy into device memory; another CPU namespace,
    such as array_api_strict's, may still share the memory); ``None`` keeps the producer's.

    Raises ``TypeError`` when ``obj`` is not a DLPack producer, ``ValueError`` for a device
    type other than the CPU or CUDA (ROCm, Metal, ...).  A torch tensor that requires grad
    must be detached first (torch refuses to export it).
    """
    if not (hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__")):
        raise TypeError(
            "from_dlpack: expected obj to be a DLPack producer (an object with __dlpack__ and "
            f"__dlpack_device__: a torch tensor, a NumPy or CuPy array, ...), received {type(obj).__name__}."
        )
    kind, index = (int(v) for v in obj.__dlpack_device__())
    if kind in _DLPACK_HOST:
        out = np.from_dlpack(obj)
    elif kind in _DLPACK_CUDA:
        cupy = _cupy()
        with cupy.cuda.Device(index):
            out = cupy.from_dlpack(obj)
    else:
        raise ValueError(
            f"from_dlpack: obj lives on DLPack device type {kind} (device {index}); xpcnn imports "
            f"from {', '.join(sorted({*_DLPACK_HOST.values(), *_DLPACK_CUDA.values()}))} memory only."
        )
    if device is None:
        return out
    target = placement(device)
    if target.holds(out):
        return out
    return target.asarray(to_host(out))


_DTYPE_NAMES: dict = {}


def dtype_name(dtype) -> str:
    """``"float32"`` for any namespace's float32 dtype object, and so on (cached: hot path)."""
    key = (type(dtype), dtype)  # the type first: never compare dtypes of two libraries
    try:
        return _DTYPE_NAMES[key]
    except (KeyError, TypeError):
        pass
    name = _dtype_name(dtype)
    try:
        _DTYPE_NAMES[key] = name
    except TypeError:
        pass
    return name


def _dtype_name(dtype) -> str:
    text = str(dtype)
    for prefix in ("array_api_strict.", "torch.", "dtype(", "<class 'numpy."):
        text = text.replace(prefix, "")
    return text.strip("')>\"")


def check_array(x, argument: str, where: str, expected: Placement | None = None, dtype: str | None = None):
    """Validate a layer or loss input and return its namespace.

    Raises ``TypeError`` for a non-array, a non-floating dtype (with a hint) or a dtype that
    differs from ``dtype``; ``ValueError`` when ``x`` lives elsewhere than ``expected``.
    """
    if not is_array(x):
        raise TypeError(f"{where}: expected {argument} to be an array, received {type(x).__name__}.")
    xp = array_namespace(x)
    received = dtype_name(x.dtype)
    if received not in FLOAT_DTYPES:
        raise TypeError(
            f"{where}: expected {argument} with a floating dtype (float32 or float64), received "
            f"dtype {received}. Hint: convert and scale the data first, e.g. x.astype('float32') / 255."
        )
    if expected is not None:
        got = placement_of(x)
        if got != expected:
            raise ValueError(
                f"{where}: {argument} is on {got.name} but the parameters are on {expected.name}. "
                f"Move the model with .to(...) or the data to {expected.name} before calling it."
            )
    if dtype is not None and received != dtype:
        raise TypeError(
            f"{where}: {argument} has dtype {received} but the parameters are {dtype}; xpcnn never "
            f"casts silently. Convert the data with astype or the model with .to(dtype={received!r})."
        )
    return xp


# ------------------------------------------------------------------- distributed helpers
def host_empty_like(x) -> np.ndarray:
    """An uninitialised host array of the host array ``x``'s shape and dtype (an MPI receive
    buffer)."""
    return np.empty_like(np.asarray(x))


def host_contiguous(x) -> np.ndarray:
    """``x`` (a host array) as a C-contiguous NumPy array (an MPI send buffer)."""
    return np.ascontiguousarray(x)


_NCCL_TYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}


def nccl_communicator(comm, place: Placement):
    """An NCCL communicator for the MPI ``comm`` (an :class:`xpcnn.distributed.MPICommunicator`)
    on ``place``'s GPU, bootstrapped by broadcasting rank 0's unique id over MPI; ``False``
    (with a message on stderr, once) where CuPy has no NCCL, so that the caller stages its
    buffers through the host instead."""
    import warnings

    try:
        with warnings.catch_warnings():  # CuPy 14 warns (not raises) when libnccl is missing
            warnings.simplefilter("ignore")
            from cupy.cuda import nccl
    except Exception:  # ImportError, or a broken NCCL library
        nccl = None
    if nccl is None or not getattr(nccl, "available", True):
        if comm.rank == 0:
            import sys

            sys.stderr.write(
                "xpcnn.distributed: CuPy has no NCCL here; the gradients are all-reduced through the host "
                "with MPI (slower). For the GPU all-reduce, install NCCL for your CUDA: "
                "pip install nvidia-nccl-cu13 (or nvidia-nccl-cu12).\n"
            )
        return False
    uid = comm.broadcast(nccl.get_unique_id() if comm.rank == 0 else None)
    with _cupy().cuda.Device(place.device.id):
        return nccl.NcclCommunicator(comm.size, uid, comm.rank)


def nccl_allreduce(communicator, flat):
    """The sum over the ranks of the 1-D CuPy array ``flat`` with NCCL, on the current stream."""
    from cupy.cuda import nccl

    cupy = _cupy()
    with cupy.cuda.Device(flat.device.id):  # CuPy allocates on the current device, not flat's
        out = cupy.empty_like(flat)
        kind = getattr(nccl, _NCCL_TYPES[dtype_name(flat.dtype)])
        stream = cupy.cuda.get_current_stream().ptr
        communicator.allReduce(flat.data.ptr, out.data.ptr, flat.size, kind, nccl.NCCL_SUM, stream)
    return out


def cuda_device_for(local_rank: int) -> str:
    """``"cuda:<local_rank mod the GPUs visible>"``: one GPU per rank on a node."""
    count = _cupy().cuda.runtime.getDeviceCount()
    if count < 1:
        raise RuntimeError("no CUDA GPU is visible to this process")
    return f"cuda:{local_rank % count}"
