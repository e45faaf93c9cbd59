"""One backend fixture: every array test runs on every available backend.

Backends: ``numpy``; ``strict`` (array_api_strict with data on ``Device("device1")``, so any
array created without ``device=`` fails loudly); ``torch`` (CPU, when installed); ``cupy``
(when a GPU is visible).  ``pytest -k strict`` selects one.  ``XPCNN_BACKENDS=numpy,strict``
restricts the set (the nox sessions use it); a backend named there but not installed fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

import xpcnn
from xpcnn import backend as B

ALL = ("numpy", "strict", "torch", "cupy")


def _selected():
    env = os.environ.get("XPCNN_BACKENDS")
    return tuple(n.strip() for n in env.split(",") if n.strip()) if env else ALL


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
    raise ValueError(name)


@pytest.fixture(params=list(_selected()))
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
    if "numpy" in _selected():
        return
    keep, drop = [], []
    for item in items:
        (keep if "be" in getattr(item, "fixturenames", ()) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
