"""One backend fixture: every array test runs on every available backend.

Backends: ``numpy``; ``strict`` (array_api_strict with data on ``Device("device1")``, so any
array created without ``device=`` fails loudly); ``torch`` (CPU, when installed); ``cupy``
(when a GPU is visible); ``cupy-emulated`` (tests/cupy_emulated.py: CuPy 14's rules on the CPU,
the real ``.cu`` kernels through the host shim; needs g++).  By default ``cupy`` runs where CuPy
sees a GPU and ``cupy-emulated`` everywhere else.  ``pytest -k strict`` (or ``-k emulated``)
selects one.  ``XPCNN_BACKENDS=numpy,strict`` restricts the set (the nox sessions use it); a
backend named there but not available fails.

The stand-in replaces ``cupy`` in ``sys.modules`` for the whole process, so ``cupy`` and
``cupy-emulated`` never run in one process; it is installed here, before anything imports
CuPy, only when ``cupy-emulated`` is selected.  Tests that take ``be`` and check something
CuPy-specific use ``be.is_cupy`` (true for both).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cupy_emulated  # noqa: E402

KNOWN = ("numpy", "strict", "torch", "cupy", "cupy-emulated")


def _real_gpu() -> bool:
    """CuPy is installed and sees a GPU (asked without importing ``cupy`` itself)."""
    try:
        from cupy_backends.cuda.api import runtime

        return runtime.getDeviceCount() > 0
    except Exception:
        return False


def _selected():
    env = os.environ.get("XPCNN_BACKENDS")
    if env:
        names = tuple(n.strip() for n in env.split(",") if n.strip())
        unknown = [n for n in names if n not in KNOWN]
        if unknown:
            raise pytest.UsageError(f"XPCNN_BACKENDS: unknown backend(s) {unknown}; known: {list(KNOWN)}")
        if "cupy" in names and "cupy-emulated" in names:
            raise pytest.UsageError(
                "XPCNN_BACKENDS: cupy and cupy-emulated cannot share a process (the stand-in replaces "
                "the cupy module); run them in two sessions"
            )
        return names
    return ("numpy", "strict", "torch", "cupy" if _real_gpu() else "cupy-emulated")


SELECTED = _selected()
if "cupy-emulated" in SELECTED and cupy_emulated.available() is None:
    try:
        cupy_emulated.install()  # before xpcnn (or anything) imports cupy or array_api_compat.cupy
    except RuntimeError:  # cupy imported already (a plugin?): the backend reports it, see _make
        pass

import xpcnn  # noqa: E402
from xpcnn import backend as B  # noqa: E402


@dataclass
class Backend:
    """A test backend: its name and the :class:`~xpcnn.backend.Placement` arrays go to."""

    name: str
    place: B.Placement

    def asarray(self, host, dtype="float64"):
        return self.place.asarray(np.asarray(host), dtype=dtype)

    def to_host(self, x):
        return B.to_host(x)

    @property
    def xp(self):
        return self.place.xp

    @property
    def is_cupy(self) -> bool:
        """CuPy, real or emulated."""
        return self.name in ("cupy", "cupy-emulated")

    def __repr__(self):
        return self.name


def _make(name: str):
    """The Backend, or a skip reason."""
    if name == "numpy":
        return Backend("numpy", B.placement("cpu"))
    if name == "strict":
        try:
            import array_api_strict as s
        except ImportError:
            return "array_api_strict is not installed"
        return Backend("strict", B.Placement.of(s, s.Device("device1")))
    if name == "torch":
        try:
            import torch
        except ImportError:
            return "torch is not installed"
        import array_api_compat.torch as xt

        return Backend("torch", B.Placement.of(xt, torch.device("cpu")))
    if name == "cupy":
        if not xpcnn.cuda_available():
            return "no CUDA GPU visible to CuPy (or CuPy not installed)"
        return Backend("cupy", B.placement("cuda"))
    if name == "cupy-emulated":
        reason = cupy_emulated.available()
        if reason is not None:
            return reason
        if not cupy_emulated.installed():
            return "the CuPy stand-in is not installed in this process (real cupy was imported first)"
        return Backend("cupy-emulated", B.placement("cuda"))
    raise ValueError(name)


@pytest.fixture(params=list(SELECTED))
def be(request) -> Backend:
    name = request.param
    made = _make(name)
    if isinstance(made, str):
        if os.environ.get("XPCNN_BACKENDS"):
            pytest.fail(f"backend {name} was requested by XPCNN_BACKENDS but is unavailable: {made}")
        pytest.skip(made)
    return made


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_collection_modifyitems(config, items):
    """Where XPCNN_BACKENDS leaves out numpy (the strict/torch/cupy sessions), run only the
    tests that take the ``be`` fixture: the others do not depend on the backend and run in
    the numpy session."""
    if "numpy" in SELECTED:
        return
    keep, drop = [], []
    for item in items:
        (keep if "be" in getattr(item, "fixturenames", ()) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
