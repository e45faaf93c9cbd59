"""nox sessions: a test session per backend, lint, and the checks the issues add.

``nox`` with no argument runs the default list (the README's test command).
"""

from __future__ import annotations

import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# Extra packages each backend needs beyond ``.[test]``.  torch is pinned to the CPU wheel
# these machines carry: an unpinned torch downloads a multi-GB CUDA build.
BACKENDS = {
    "numpy": [],
    "strict": ["array-api-strict"],
    "torch": ["torch==2.13.0"],
    "cupy": ["cupy-cuda13x"],
}


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def tests(session: nox.Session, backend: str) -> None:
    """The test suite on one backend (XPCNN_BACKENDS selects it in tests/conftest.py).

    The numpy session runs every test; the others run the backend-parametrized tests.
    """
    if backend == "cupy" and shutil.which("nvidia-smi") is None:
        session.skip("no NVIDIA GPU visible (nvidia-smi not found): the cupy tests need a CUDA GPU")
    session.install("-e", ".[test]", *BACKENDS[backend])
    session.run("pytest", *session.posargs, env={"XPCNN_BACKENDS": backend})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, examples and this file."""
    session.install("ruff")
    session.run("ruff", "check", "xpcnn", "tests", "examples", "noxfile.py")
