"""Build and drive tests/cuda_host_shim.cpp: the real ``kernels/conv2d.cu`` compiled for the host.

:class:`HostRuntime` has the interface of the CuPy runtime in :mod:`xpcnn.ops.cuda` (``xp``,
``launch``) with NumPy arrays, so the tests run the module's own
orchestration (``_forward``, ``_backward``) on the CPU.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from xpcnn.ops import cuda

HERE = Path(__file__).resolve().parent
SHIM = HERE / "cuda_host_shim.cpp"

_TAGS = {np.dtype("float32"): "F", np.dtype("float64"): "D"}


def build(directory: Path, code: str | None = None, defines=None, names=None) -> Path:
    """Compile the shim with g++ into ``directory``; returns the shared library's path.

    By default the packaged ``conv2d.cu`` with the ``-D`` options of :data:`cuda.OPTIONS` and
    one instance per :data:`cuda.NAME_EXPRESSIONS`; ``code``, ``defines`` (``-D...`` strings)
    and ``names`` (the name expressions) replace them (tests/cupy_emulated.py's RawModule
    compiles exactly what it was given)."""
    gxx = shutil.which("g++")
    if gxx is None:
        raise FileNotFoundError("g++ not found")
    code = cuda.source() if code is None else code
    names = cuda.NAME_EXPRESSIONS if names is None else names
    if defines is None:
        defines = [opt for opt in cuda.OPTIONS if opt.startswith("-D")]
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / "conv2d.cu"
    src.write_text(code, encoding="utf-8")
    entries = "".join(f"XPCNN_ENTRY({name})\n" for name in names)
    (directory / "xpcnn_instances.inc").write_text(entries, encoding="utf-8")
    lib = directory / "libxpcnn_shim.so"
    cmd = [
        gxx, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unknown-pragmas", "-U_FORTIFY_SOURCE",
        f"-I{directory}", f'-DXPCNN_KERNEL_SOURCE="{src}"', *defines, "-o", str(lib), str(SHIM),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"g++ failed:\n{proc.stderr}")
    return lib


class ShimError(RuntimeError):
    pass


class HostRuntime:
    """Runs the kernels of ``conv2d.cu`` on the CPU; ``reverse`` flips the thread order in a phase."""

    xp = np

    def __init__(self, lib_path: Path, reverse: bool = False):
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.xpcnn_shim_launch.restype = ctypes.c_int
        self.lib.xpcnn_shim_name.restype = ctypes.c_char_p
        self.lib.xpcnn_shim_signature.restype = ctypes.c_char_p
        self.reverse = reverse
        self.launches: list[tuple] = []

    def names(self) -> list[str]:
        return [self.lib.xpcnn_shim_name(i).decode() for i in range(self.lib.xpcnn_shim_count())]

    def signatures(self) -> dict[str, str]:
        """``{name expression: type string}``, one letter per parameter (F float*, D double*,
        i int, l long long), as the shim checks them."""
        count = self.lib.xpcnn_shim_count()
        return {
            self.lib.xpcnn_shim_name(i).decode(): self.lib.xpcnn_shim_signature(i).decode()
            for i in range(count)
        }

    def launch(self, name, grid, block, shared, args):
        holders, types = [], []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, "kernels ignore strides: arrays must be contiguous"
                holders.append(ctypes.c_void_p(a.ctypes.data))
                types.append(_TAGS.get(a.dtype, "?"))
            elif isinstance(a, np.int32):
                holders.append(ctypes.c_int32(int(a)))
                types.append("i")
            elif isinstance(a, np.int64):
                holders.append(ctypes.c_int64(int(a)))
                types.append("l")
            else:  # a Python int or float: CuPy would pass it as int64 / double
                raise ShimError(f"{name}: argument {a!r} of type {type(a).__name__} has no explicit C type")
        argv = (ctypes.c_void_p * len(holders))(
            *[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders]
        )
        err = ctypes.create_string_buffer(512)
        rc = self.lib.xpcnn_shim_launch(
            name.encode(), "".join(types).encode(), argv, *map(ctypes.c_uint, grid), *map(ctypes.c_uint, block),
            ctypes.c_ulonglong(shared), int(self.reverse), err, len(err),
        )  # fmt: skip
        self.launches.append((name, tuple(grid), tuple(block), shared))
        if rc != 0:
            raise ShimError(f"{name}: {err.value.decode()}")

    def forward(self, x, k, stride=(1, 1), padding=(0, 0)):
        return cuda._forward(self, np.ascontiguousarray(x), np.ascontiguousarray(k), stride, padding)

    def backward(self, x, k, dy, stride=(1, 1), padding=(0, 0), input_gradient=True):
        arrays = [np.ascontiguousarray(a) for a in (x, k, dy)]
        return cuda._backward(self, *arrays, stride, padding, input_gradient)
