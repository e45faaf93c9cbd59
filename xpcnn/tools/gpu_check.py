"""``python -m xpcnn.tools.gpu_check``: the GPU check, in one go (at most 8 minutes on an H200).

Sections, each recorded in the JSON file (``--out``) and in the closing table:

1. ``environment``: Python, NumPy, CuPy, PyTorch, the GPU, the CUDA runtime and driver.
2. ``compile``: every template instance of ``kernels/conv2d.cu`` for the GPU's architecture
   (NVRTC or nvcc, ``ptxas -v``): registers and spills per instance.
3. ``parity``: the convolutional layer on the GPU against the same layer on the CPU, from
   identical host-initialised weights and data: output, ``dX``, ``dK``, ``dB``; float32 within
   ``rtol = atol = 1e-3`` (CuPy's TF32 off: ``CUPY_TF32=0``), float64 within ``1e-7``
   relative (``atol = 1e-7 * max|reference|``).  Also the RawKernel against the Array-API
   path on CuPy.
4. ``training``: a LeNet-5 trained a few SGD steps on the CPU and on the GPU from the same
   weights and batches: the losses must agree (float32 ``1e-3``, float64 ``1e-7`` relative);
   ``checkpoint``: a model trained on the GPU, saved, loaded onto the GPU and the CPU
   (bit-identical parameters, equal predictions).
5. ``benchmark`` (before the tests, so that a cut run still has its figures): per-layer
   forward time (median of the GPU times, CUDA events: the kernel time; and of the host
   times: the call time, Python overhead included) of the RawKernel, of the
   Array-API path on CuPy (cuBLAS), and of cuDNN through PyTorch in FP32 and in TF32, for
   LeNet's two convolutions (batch 256) and a 64->64, 56x56, 3x3 layer (batch 32); the
   backward (``dX`` + ``dK``) of the RawKernel against cuDNN's; LeNet-5 training images/s
   against PyTorch eager at batch 256 and 2048 (data already on the GPU; xpcnn's step is
   ``Sequential.train_step``, which like PyTorch's computes no ``dX`` of the input); and the
   issue's targets, met or not.
6. ``tests``: ``pytest`` with ``XPCNN_BACKENDS=cupy`` (the cupy-backend tests only: the CPU
   suite runs in CI, and some of its tests need packages the GPU machine lacks).  Warnings
   from CuPy's own modules are reported, not errors; a run cut at its cap counts the tests
   that had run.
7. ``sanitizer``: ``compute-sanitizer`` (memcheck, racecheck, synccheck, initcheck) on a
   small case that launches every kernel family (CuPy's memory pool off, so that an
   out-of-bounds access leaves its allocation).  Errors it reports fail; a timeout, "Device
   not supported" or a tool that cannot attach is a skip with its reason.

``--budget S`` (default :data:`BUDGET_S`) is the whole run's time; each section has its own cap
(:data:`CAPS`) within what is left, and the sections made of rows (layers, batch sizes, dtypes)
start no row after their cap: a section so cut is ``partial``.  The JSON file is rewritten (a
temporary file, then ``os.replace``) after every section and each section prints its key
figures when it ends, so a run killed at any point leaves a valid, partial file.  A benchmark
row that raises records its error and the others keep their figures (a failure of PyTorch's
side is recorded as the row's ``torch_error``).

Statuses: ``pass``, ``fail``, ``partial`` (cut by its cap, no failure among what ran), ``warn``
(a register spill: speed, not correctness), ``skip``.  Without a visible GPU it says so, runs
what a CPU can (environment, compile) and exits 0 (``--require-gpu``: exit 2).  The exit
status is 1 when a section fails; performance targets are reported, not enforced.

The GPU machine has no network; array-api-compat and array-api-strict come as wheels
(``docs/gpu.md`` gives the commands).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository (xpcnn/tools/ is two below)
#: The whole check's seconds: with ``timeout 470`` around it, under the issue's 8 minutes, and a
#: device call of at most 500 s leaves room for a rerun in a 15-minute device lease.
BUDGET_S = 400.0
#: Seconds each section may take at most (within what is left of the budget); the sections
#: with rows (layers, batch sizes, dtypes) stop starting rows at their cap.
CAPS = {"benchmark": 150, "parity": 45, "raw_vs_api": 30, "training": 45, "checkpoint": 20, "tests": 150,
        "sanitizer": 90}  # fmt: skip

F32_TOL = 1e-3
F64_TOL = 1e-7

# (name, input (c, h, w), kernel size, depth, stride, padding, batch)
PARITY_LAYERS = [
    ("lenet conv1", (1, 28, 28), 5, 6, 1, 2, 16),
    ("lenet conv2", (6, 14, 14), 5, 16, 1, 0, 16),
    ("64->64 3x3", (64, 56, 56), 3, 64, 1, 1, 2),
    ("3x3 stride 2", (3, 17, 19), 3, 5, 2, 1, 5),
    ("4x3 general", (5, 12, 13), (4, 3), 7, (2, 1), (1, 2), 3),
    ("7x7 stride 2", (3, 32, 32), 7, 9, 2, 3, 4),
    ("1x1 pad 1", (4, 6, 5), 1, 3, (2, 1), (0, 1), 2),
]

# (name, n, c, o, hw, k, padding)
BENCH_LAYERS = [
    ("LeNet conv1 1->6 5x5 28x28", 256, 1, 6, 28, 5, 2),
    ("LeNet conv2 6->16 5x5 14x14", 256, 6, 16, 14, 5, 0),
    ("64->64 3x3 56x56", 32, 64, 64, 56, 3, 1),
]
TRAIN_BATCHES = (256, 2048)


class Deadline:
    """The end of a section's (or the run's) time; ``Deadline(None)`` never ends."""

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


def _rows_status(ok: bool, done: int, planned: int) -> dict:
    """A section's status from its rows: ``fail`` when a row failed; ``partial`` (not a failure)
    when its cap cut it before every row ran and none of those that ran failed."""
    if not ok:
        return {"status": "fail"}
    if done < planned:
        return {"status": "partial", "reason": f"cut at the section's cap after {done} of {planned} rows"}
    return {"status": "pass"}


# ------------------------------------------------------------------------------ helpers
def compare(got, ref, dtype: str) -> dict:
    """Max errors of ``got`` against ``ref`` (host arrays) and whether they are within tolerance."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return {"ok": False, "error": f"shape {got.shape} != {ref.shape}"}
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    if dtype == "float32":
        ok = bool(np.all(diff <= F32_TOL + F32_TOL * np.abs(ref)))
    else:
        ok = bool(np.all(diff <= F64_TOL * np.abs(ref) + F64_TOL * max(scale, 1e-300)))
    rel = float((diff / np.maximum(np.abs(ref), 1e-30)).max()) if ref.size else 0.0
    return {"ok": ok, "max_abs": float(diff.max()) if diff.size else 0.0, "max_rel": rel}


def _versions() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()}
    for name in ("cupy", "torch", "array_api_compat", "array_api_strict"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except Exception as exc:  # not installed, or broken
            info[name] = f"unavailable ({type(exc).__name__})"
    return info


def gpu_status() -> tuple[bool, str]:
    """(GPU usable, description or the reason it is not)."""
    from .. import backend

    try:
        place = backend.placement("cuda")
    except Exception as exc:
        return False, str(exc)
    cupy = backend._cupy()
    props = cupy.cuda.runtime.getDeviceProperties(place.device.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return True, f"{name} (sm_{props['major']}{props['minor']}, {props['totalGlobalMem'] / 2**30:.0f} GiB)"


def environment(gpu: bool) -> dict:
    info = {"versions": _versions()}
    if gpu:
        from .. import backend

        cupy = backend._cupy()
        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(0)
        info.update(
            gpu=props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]),
            compute_capability=f"{props['major']}.{props['minor']}",
            multiprocessors=props["multiProcessorCount"],
            cuda_runtime=rt.runtimeGetVersion(),
            cuda_driver=rt.driverGetVersion(),
            cupy_tf32=os.environ.get("CUPY_TF32", "unset"),
        )
    return info


def compile_section(gpu: bool) -> dict:
    from . import cuda_compile as cc

    arch = "sm_90"
    if gpu:
        from .. import backend

        props = backend._cupy().cuda.runtime.getDeviceProperties(0)
        arch = f"sm_{props['major']}{props['minor']}"
    if cc.nvrtc_available() is not None and cc.nvcc_available() is not None:
        return {"status": "skip", "reason": f"{cc.nvrtc_available()}; {cc.nvcc_available()}"}
    used, reports = cc.compile_all("any", arch)
    spilled = [r.name for r in reports if r.spills]
    return {  # a spill costs speed, not correctness: a warning here (nox -s cuda_compile fails on it)
        "status": "warn" if spilled else "pass",
        **({"reason": f"register spills in {', '.join(spilled)}"} if spilled else {}),
        "compiler": used,
        "arch": arch,
        "instances": [vars(r) for r in reports],
        "spills": spilled,
        "table": cc.format_table(reports),
    }


# ------------------------------------------------------------------------------ parity
def layer_parity(
    device: str = "cuda", reference_device: str = "cpu", deadline: Deadline | None = None
) -> dict:
    """The convolutional layer on ``device`` against ``reference_device``, same weights and data."""
    import xpcnn
    from xpcnn import backend

    deadline = deadline or Deadline(None)
    rows, ok = [], True
    cases = [(dtype, case) for dtype in ("float32", "float64") for case in PARITY_LAYERS]
    for dtype, (name, shape, ksize, depth, stride, padding, batch) in cases:
        if deadline.passed():
            break
        rng = np.random.default_rng(len(rows))
        options = dict(stride=stride, padding=padding, seed=7, dtype=dtype)
        layers = [
            xpcnn.Convolutional(shape, ksize, depth, **options).to(d) for d in (reference_device, device)
        ]
        x = rng.standard_normal((batch, *shape))
        dy = rng.standard_normal((batch, depth, *layers[0].output_hw))
        results = []
        for layer in layers:
            place = layer.placement
            y = layer.forward(place.asarray(x, dtype=dtype))
            dx = layer.backward(place.asarray(dy, dtype=dtype))
            grads = {k: backend.to_host(v) for k, v in layer.grads.items()}
            results.append({"y": backend.to_host(y), "dx": backend.to_host(dx), **grads})
        row = {"layer": name, "dtype": dtype}
        for key in results[0]:
            row[key] = compare(results[1][key], results[0][key], dtype)
            ok &= row[key]["ok"]
        rows.append(row)
    return {**_rows_status(ok, len(rows), len(cases)), "layers": rows}


def kernel_vs_array_api(device: str = "cuda", deadline: Deadline | None = None) -> dict:
    """RawKernel (``xpcnn.conv2d_forward`` / ``conv2d_backward`` on CuPy) against the Array-API
    path (``_flat_shift``) on the same device."""
    import xpcnn
    from xpcnn import backend
    from xpcnn.ops import _flat_shift

    place = backend.placement(device)
    deadline = deadline or Deadline(None)
    rows, ok = [], True
    cases = [(dtype, case) for dtype in ("float32", "float64") for case in PARITY_LAYERS]
    for dtype, (name, shape, ksize, depth, stride, padding, batch) in cases:
        if deadline.passed():
            break
        kh, kw = (ksize, ksize) if isinstance(ksize, int) else ksize
        st = (stride, stride) if isinstance(stride, int) else stride
        pd = (padding, padding) if isinstance(padding, int) else padding
        rng = np.random.default_rng(3)
        x = place.asarray(rng.standard_normal((batch, *shape)), dtype=dtype)
        k = place.asarray(rng.standard_normal((depth, shape[0], kh, kw)) * 0.2, dtype=dtype)
        y = xpcnn.conv2d_forward(x, k, stride=st, padding=pd)
        y_ref = _flat_shift.forward(place.xp, x, k, st, pd)
        dy = place.asarray(rng.standard_normal(tuple(y.shape)), dtype=dtype)
        dx, dk = xpcnn.conv2d_backward(x, k, dy, stride=st, padding=pd)
        dx_ref, dk_ref = _flat_shift.backward(place.xp, x, k, dy, st, pd, True)
        row = {"layer": name, "dtype": dtype}
        for key, got, ref in (("y", y, y_ref), ("dx", dx, dx_ref), ("dk", dk, dk_ref)):
            row[key] = compare(backend.to_host(got), backend.to_host(ref), dtype)
            ok &= row[key]["ok"]
        rows.append(row)
    return {**_rows_status(ok, len(rows), len(cases)), "layers": rows}


def lenet(device="cpu", dtype="float32", seed=0):
    """LeNet-5 on 28x28 inputs: conv 5x5 (6, padding 2) ReLU maxpool, conv 5x5 (16) ReLU maxpool,
    dense 400-120-84-10 (logits)."""
    import xpcnn

    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 28, 28), 5, 6, padding=2, seed=seed, dtype=dtype),
            xpcnn.ReLU(),
            xpcnn.MaxPool2D(2),
            xpcnn.Convolutional((6, 14, 14), 5, 16, seed=seed + 1, dtype=dtype),
            xpcnn.ReLU(),
            xpcnn.MaxPool2D(2),
            xpcnn.Flatten(),
            xpcnn.Dense(400, 120, seed=seed + 2, dtype=dtype),
            xpcnn.ReLU(),
            xpcnn.Dense(120, 84, seed=seed + 3, dtype=dtype),
            xpcnn.ReLU(),
            xpcnn.Dense(84, 10, seed=seed + 4, dtype=dtype),
        ],
        device=device,
        dtype=dtype,
    )


def training_parity(
    device: str = "cuda",
    reference_device: str = "cpu",
    steps: int = 5,
    batch: int = 64,
    deadline: Deadline | None = None,
) -> dict:
    """Losses of a few SGD steps of LeNet-5 on both devices, from the same weights and batches."""
    import xpcnn

    deadline = deadline or Deadline(None)
    rows, ok = [], True
    dtypes = ("float32", "float64")
    for dtype in dtypes:
        if deadline.passed():
            break
        losses = {}
        for d in (reference_device, device):
            model = lenet(d, dtype)
            loss = xpcnn.SoftmaxCrossEntropy()
            optimizer = xpcnn.SGD(0.05, momentum=0.9)
            rng = np.random.default_rng(11)
            values = []
            for _ in range(steps):
                x = model.placement.asarray(rng.standard_normal((batch, 1, 28, 28)), dtype=dtype)
                t = model.placement.asarray(rng.integers(0, 10, size=batch))
                value, grad = loss.value_and_gradient(model.forward(x), t)
                model.backward(grad)
                optimizer.step(model.layers)
                values.append(float(value))
            losses[d] = values
        ref, got = np.array(losses[reference_device]), np.array(losses[device])
        tol = F32_TOL if dtype == "float32" else F64_TOL
        good = bool(np.all(np.abs(got - ref) <= tol * np.abs(ref)))
        ok &= good
        rows.append(
            {"dtype": dtype, reference_device: losses[reference_device], device: losses[device], "ok": good}
        )
    return {**_rows_status(ok, len(rows), len(dtypes)), "runs": rows}


def checkpoint_roundtrip(device: str = "cuda", reference_device: str = "cpu") -> dict:
    """A LeNet-5 trained a step on ``device``, saved, loaded back onto both devices: the
    parameters must be bit-identical, the predictions equal within the parity tolerance."""
    import tempfile

    import xpcnn
    from xpcnn import backend

    model = lenet(device, "float32")
    rng = np.random.default_rng(5)
    xh = rng.standard_normal((8, 1, 28, 28)).astype("float32")
    x = model.placement.asarray(xh, dtype="float32")
    t = model.placement.asarray(rng.integers(0, 10, size=8))
    _, grad = xpcnn.SoftmaxCrossEntropy().value_and_gradient(model.forward(x), t)
    model.backward(grad)
    xpcnn.SGD(0.1).step(model.layers)
    saved = [{k: backend.to_host(v) for k, v in layer.parameters().items()} for layer in model.layers]
    prediction = backend.to_host(model.forward(x))
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "lenet.xpcnn")
        xpcnn.save(model, path)
        for d in (device, reference_device):
            loaded = xpcnn.load(path, device=d)
            same = all(
                np.array_equal(backend.to_host(v), saved[i][k])
                for i, layer in enumerate(loaded.layers)
                for k, v in layer.parameters().items()
            )
            pred = compare(
                backend.to_host(loaded.forward(loaded.placement.asarray(xh, dtype="float32"))),
                prediction,
                "float32",
            )
            rows.append({"device": d, "parameters_identical": same, "prediction": pred})
            ok &= same and pred["ok"]
    return {"status": "pass" if ok else "fail", "loads": rows}


# ------------------------------------------------------------------------------ pytest
def run_pytest(marker: str, timeout: float) -> dict:
    """The cupy-backend tests in a subprocess, cut at ``timeout`` seconds: ``fail`` when a test
    failed (also in a cut run, from pytest's progress characters), ``partial`` when the cut came
    before any failure.  Warnings raised inside CuPy's own modules (a ``PerformanceWarning``, a
    library's preload notice) are reported, not turned into errors as the project's
    ``filterwarnings = ["error"]`` would; xpcnn's own warnings stay errors."""
    if not (ROOT / "tests").is_dir():
        return {"status": "skip", "reason": f"no tests/ under {ROOT}"}
    if timeout < 20:
        return {"status": "skip", "reason": f"out of time ({timeout:.0f} s left for it)"}
    env = dict(os.environ, XPCNN_BACKENDS="cupy")  # the CPU suite runs in CI
    filters = "\n".join([*_project_warning_filters(), "default:::cupy"])  # also cupyx, cupy_backends
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, "-rfEs",
           "-o", f"filterwarnings={filters}", "tests"]  # fmt: skip
    # every test on the cupy backend (-m "": the slow ones too); the others deselect themselves
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        counts = progress_counts(out)
        failed = counts["failed"] + counts["errors"]
        return {
            "status": "fail" if failed else "partial",
            "reason": f"cut after {timeout:.0f} s: " + ", ".join(f"{v} {k}" for k, v in counts.items()),
            "counts": counts,
            "seconds": round(time.monotonic() - start, 1),
            "tail": out[-3000:],
        }
    out = proc.stdout + proc.stderr
    summary = next((line for line in reversed(out.splitlines()) if " in " in line and "=" in line), "")
    status = "pass" if proc.returncode in (0, 5) else "fail"  # 5: nothing selected (no slow tests)
    return {
        "status": status,
        "returncode": proc.returncode,
        "summary": summary.strip("= "),
        "seconds": round(time.monotonic() - start, 1),
        "tail": out[-4000:],
    }


def _project_warning_filters() -> list[str]:
    """``[tool.pytest.ini_options] filterwarnings`` of the project (``-o`` replaces the list, and
    its regular expressions, unlike ``-W``'s, match a module's name by its start)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return ["error"]
    if not (ROOT / "pyproject.toml").is_file():
        return ["error"]
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["tool"]["pytest"]["ini_options"].get("filterwarnings", []))


def progress_counts(out: str) -> dict:
    """Tests passed, failed, errored and skipped so far, from ``pytest -q``'s progress lines
    (``..F.s  [ 12%]``)."""
    marks = "".join(
        m.group(1) for m in re.finditer(r"^([.FEsxX]+)\s*(?:\[\s*\d+%\])?\s*$", out, re.MULTILINE)
    )
    return {
        "passed": marks.count("."),
        "failed": marks.count("F"),
        "errors": marks.count("E"),
        "skipped": marks.count("s"),
    }


# ------------------------------------------------------------------------------ sanitizer
def sanitizer_case() -> None:
    """The small case run under compute-sanitizer: every kernel family, both dtypes."""
    from .. import backend
    from ..ops import cuda

    cupy = backend._cupy()
    cupy.cuda.set_allocator(None)  # a cudaMalloc per array: out-of-bounds leaves the allocation
    place = backend.placement("cuda")
    rng = np.random.default_rng(0)
    cases = [
        ((3, 9, 17, 33), (11, 9, 3, 3), (1, 1), (1, 1)),
        ((2, 2, 13, 11), (3, 2, 5, 5), (2, 3), (1, 0)),
        ((2, 5, 4, 6), (2, 5, 4, 3), (3, 2), (2, 0)),
        ((2, 2, 6, 5), (3, 2, 1, 1), (2, 1), (0, 1)),
        ((40, 3, 9, 8), (2, 3, 3, 3), (1, 2), (1, 1)),  # several groups in the kernel gradient
    ]
    for dtype in ("float32", "float64"):
        for xs, ks, stride, padding in cases:
            x = place.asarray(rng.standard_normal(xs), dtype=dtype)
            k = place.asarray(rng.standard_normal(ks), dtype=dtype)
            y = cuda.conv2d_forward(x, k, stride=stride, padding=padding)
            dy = place.asarray(rng.standard_normal(tuple(y.shape)), dtype=dtype)
            cuda.conv2d_backward(x, k, dy, stride=stride, padding=padding)
    cupy.cuda.Device().synchronize()
    print("sanitizer case done")


def sanitizer(deadline: Deadline) -> dict:
    tool_path = shutil.which("compute-sanitizer")
    if tool_path is None:
        for candidate in (
            "/usr/local/cuda/bin/compute-sanitizer",
            "/usr/local/cuda/compute-sanitizer/compute-sanitizer",
        ):
            if Path(candidate).exists():
                tool_path = candidate
    if tool_path is None:
        return {"status": "skip", "reason": "compute-sanitizer not found"}
    results, ok = {}, True
    for tool in ("memcheck", "racecheck", "synccheck", "initcheck"):
        left = deadline.left() - 5
        if left < 30:
            results[tool] = {"status": "skip", "reason": "out of time"}
            continue
        cmd = [
            tool_path,
            "--tool",
            tool,
            "--error-exitcode",
            "3",
            sys.executable,
            "-m",
            "xpcnn.tools.gpu_check",
            "--sanitizer-case",
        ]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=min(120, left))
        except subprocess.TimeoutExpired:
            results[tool] = {"status": "skip", "reason": f"timed out after {min(120, left):.0f} s"}
            continue
        results[tool] = sanitizer_outcome(proc.returncode, proc.stdout + proc.stderr)
        ok &= results[tool]["status"] != "fail"
    ran = [r for r in results.values() if r["status"] != "skip"]
    if not ran:
        return {"status": "skip", "reason": "; ".join(f"{t}: {r['reason']}" for t, r in results.items()),
                "tools": results}  # fmt: skip
    return {"status": "pass" if ok else "fail", "tools": results}


def sanitizer_outcome(returncode: int, out: str) -> dict:
    """One compute-sanitizer tool's result: ``fail`` on reported errors (``ERROR SUMMARY: n
    errors``, n > 0) or when the case itself raised; ``pass`` when the case ran to its end
    with no error; otherwise (the device refused, the tool could not attach, ...) ``skip``
    with the tool's last words: an environment that cannot run the tool is not a finding."""
    found = re.findall(r"ERROR SUMMARY: (\d+) error", out)
    summary = next((line for line in reversed(out.splitlines()) if "ERROR SUMMARY" in line), "")
    tail = out[-2000:]
    if any(int(n) > 0 for n in found):
        return {"status": "fail", "summary": summary, "tail": tail}
    if "device not supported" in out.lower():
        return {"status": "skip", "reason": "compute-sanitizer: Device not supported", "tail": tail}
    if "Traceback (most recent call last)" in out and "sanitizer case done" not in out:
        return {"status": "fail", "summary": "the sanitizer case raised", "tail": tail}
    if returncode == 0 and "sanitizer case done" in out:
        return {"status": "pass", "summary": summary}
    last = next((line for line in reversed(out.splitlines()) if line.strip()), "no output")
    return {
        "status": "skip",
        "reason": f"compute-sanitizer did not run (exit {returncode}): {last}",
        "tail": tail,
    }


# ------------------------------------------------------------------------------ benchmark
class Timer:
    """Median seconds per call: CUDA events (cupyx.profiler.benchmark) on a GPU, else wall time.

    CuPy's and PyTorch's default streams are both the legacy default stream, so the events
    recorded by cupyx also bracket PyTorch's work."""

    def __init__(self, gpu: bool, repeat: int = 30, warmup: int = 5):
        self.gpu, self.repeat, self.warmup = gpu, repeat, warmup

    def __call__(self, fn) -> float:
        return self.both(fn)[0]

    def both(self, fn) -> tuple[float, float]:
        """(median device time, median host call time) in seconds; the same twice off a GPU."""
        if self.gpu:
            from cupyx.profiler import benchmark

            result = benchmark(fn, (), n_repeat=self.repeat, n_warmup=self.warmup)
            return float(np.median(result.gpu_times[0])), float(np.median(result.cpu_times))
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        median = float(np.median(times))
        return median, median

    def sync(self):
        if self.gpu:
            from .. import backend

            backend._cupy().cuda.Device().synchronize()


def _torch_precision(torch, tf32: bool) -> None:
    """cuDNN convolutions and cuBLAS matmuls in TF32 or in full FP32 ("ieee")."""
    mode = "tf32" if tf32 else "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # PyTorch >= 2.9
        conv.fp32_precision = mode
        if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
            torch.backends.cuda.matmul.fp32_precision = mode
        else:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    else:  # older PyTorch
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32


def bench_layers(
    device: str = "cuda", timer: Timer | None = None, layers=BENCH_LAYERS, deadline: Deadline | None = None
) -> list[dict]:
    """Per-layer times in milliseconds, a row per layer; a layer that raises gets a row with its
    ``error`` (the other rows keep their figures); none is started once ``deadline`` has passed."""
    from xpcnn import backend

    place = backend.placement(device)
    timer = timer or Timer(place.is_cuda)
    torch = _torch()
    return [
        _row_or_error({"layer": layer[0]}, lambda layer=layer: _bench_layer(place, timer, torch, *layer))
        for layer in layers
        if not (deadline or Deadline(None)).passed()
    ]


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _row_or_error(row: dict, make) -> dict:
    """``make()``, or ``row`` with the exception that ``make`` raised."""
    try:
        return make()
    except Exception as exc:
        return {**row, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def _bench_layer(place, timer, torch, name, n, c, o, hw, ksize, pad) -> dict:
    import xpcnn
    from xpcnn.ops import _flat_shift

    rng = np.random.default_rng(0)
    x = place.asarray(rng.standard_normal((n, c, hw, hw)), dtype="float32")
    k = place.asarray(rng.standard_normal((o, c, ksize, ksize)) * 0.1, dtype="float32")
    st, pd = (1, 1), (pad, pad)
    y = xpcnn.conv2d_forward(x, k, stride=st, padding=pd)
    dy = place.asarray(rng.standard_normal(tuple(y.shape)), dtype="float32")
    row = {
        "layer": name,
        "batch": n,
        "flop_forward": 2.0 * n * o * c * ksize * ksize * y.shape[2] * y.shape[3],
    }
    for key, fn in (
        ("rawkernel_fwd", lambda: xpcnn.conv2d_forward(x, k, stride=st, padding=pd)),
        ("arrayapi_fwd", lambda: _flat_shift.forward(place.xp, x, k, st, pd)),
        ("rawkernel_bwd", lambda: xpcnn.conv2d_backward(x, k, dy, stride=st, padding=pd)),
    ):
        kernel, call = timer.both(fn)
        row[f"{key}_ms"], row[f"{key}_call_ms"] = 1e3 * kernel, 1e3 * call
    row["gflops_rawkernel_fwd"] = row["flop_forward"] / row["rawkernel_fwd_ms"] / 1e6
    if torch is not None:  # a failure here keeps xpcnn's figures (the row's torch_error)
        found = _row_or_error({}, lambda: _bench_layer_torch(place, timer, torch, x, k, dy, st, pd))
        if "error" in found:
            found["torch_error"], found["torch_traceback"] = found.pop("error"), found.pop("traceback")
        row.update(found)
    return row


def _bench_layer_torch(place, timer, torch, x, k, dy, st, pd) -> dict:
    """cuDNN's (or, off a GPU, PyTorch's CPU) forward and backward of the same layer, FP32 and TF32."""
    from xpcnn import backend

    row = {}
    if place.is_cuda:
        tx, tk, tdy = (torch.from_dlpack(a) for a in (x, k, dy))
    else:
        tx, tk, tdy = (torch.from_numpy(backend.to_host(a)) for a in (x, k, dy))
    torch.backends.cudnn.benchmark = True

    def fwd():
        return torch.nn.functional.conv2d(tx, tk, stride=st, padding=pd)

    def bwd():
        return torch.ops.aten.convolution_backward(
            tdy, tx, tk, None, list(st), list(pd), [1, 1], False, [0, 0], 1, [True, True, False]
        )

    try:
        for label, tf32 in (("fp32", False), ("tf32", True)):
            _torch_precision(torch, tf32)
            row[f"cudnn_{label}_fwd_ms"] = 1e3 * timer(fwd)
            row[f"cudnn_{label}_bwd_ms"] = 1e3 * timer(bwd)
    finally:
        _torch_precision(torch, False)
    row["torch_device"] = str(tx.device)
    return row


def bench_training(
    device: str = "cuda", batches=TRAIN_BATCHES, steps: int = 20, deadline: Deadline | None = None
) -> list[dict]:
    """LeNet-5 training images/s: xpcnn against PyTorch eager (FP32 and TF32), data on the device;
    a row per batch size (with its ``error`` where it raised), none started after ``deadline``."""
    from xpcnn import backend

    place = backend.placement(device)
    torch = _torch()
    return [
        _row_or_error({"batch": batch}, lambda batch=batch: _bench_training_batch(place, torch, batch, steps))
        for batch in batches
        if not (deadline or Deadline(None)).passed()
    ]


def _bench_training_batch(place, torch, batch: int, steps: int) -> dict:
    import xpcnn

    rng = np.random.default_rng(0)
    xh = rng.standard_normal((batch, 1, 28, 28)).astype("float32")
    th = rng.integers(0, 10, size=batch)
    model = lenet(place, "float32").compile(loss=xpcnn.SoftmaxCrossEntropy(), optimizer=xpcnn.SGD(0.01))
    x, t = place.asarray(xh, dtype="float32"), place.asarray(th)

    def step():  # no dX of the input (as PyTorch's step), nothing read back to the host
        model.train_step(x, t)

    row = {"batch": batch, "steps": steps, "xpcnn_images_per_s": _images_per_s(step, batch, steps, place)}
    if torch is not None:  # a failure here keeps xpcnn's figure (the row's torch_error)
        found = _row_or_error({}, lambda: _bench_training_torch(place, torch, xh, th, batch, steps))
        if "error" in found:
            found["torch_error"], found["torch_traceback"] = found.pop("error"), found.pop("traceback")
        else:
            found["ratio_vs_torch_fp32"] = row["xpcnn_images_per_s"] / found["torch_fp32_images_per_s"]
        row.update(found)
    return row


def _bench_training_torch(place, torch, xh, th, batch: int, steps: int) -> dict:
    """PyTorch eager's LeNet-5 images/s on the same data, FP32 and TF32."""
    tdev = "cuda" if place.is_cuda else "cpu"
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ).to(tdev)  # fmt: skip
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    tx, tt = torch.from_numpy(xh).to(tdev), torch.from_numpy(th).to(tdev)
    torch.backends.cudnn.benchmark = True

    def tstep():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(tx), tt).backward()
        opt.step()

    row = {}
    try:
        for label, tf32 in (("fp32", False), ("tf32", True)):
            _torch_precision(torch, tf32)
            row[f"torch_{label}_images_per_s"] = _images_per_s(tstep, batch, steps, place, torch)
    finally:
        _torch_precision(torch, False)
    return row


def _images_per_s(step, batch: int, steps: int, place, torch=None) -> float:
    def sync():
        if place.is_cuda:
            from .. import backend

            backend._cupy().cuda.Device().synchronize()
            if torch is not None:
                torch.cuda.synchronize()

    for _ in range(3):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def benchmark(deadline: Deadline) -> dict:
    """The benchmark section: per-layer times, training images/s, the targets.  A row that
    raised in xpcnn's code fails the section (PyTorch's failures are only recorded: the row's
    ``torch_error``); rows not started before ``deadline`` make it ``partial``."""
    layers = bench_layers(layers=BENCH_LAYERS, deadline=deadline)
    training = bench_training(batches=TRAIN_BATCHES, deadline=deadline)
    ok = not any("error" in r for r in (*layers, *training))
    done, planned = len(layers) + len(training), len(BENCH_LAYERS) + len(TRAIN_BATCHES)
    return {
        **_rows_status(ok, done, planned),
        "layers": layers,
        "training": training,
        "targets": targets(layers, training),
    }


def targets(layers: list[dict], training: list[dict]) -> list[dict]:
    """The issue's targets, met or not (None where a figure is missing)."""
    out = []
    for row in layers:
        if "cudnn_fp32_fwd_ms" not in row:
            continue
        ratio = row["cudnn_fp32_fwd_ms"] / row["rawkernel_fwd_ms"]  # speed relative to cuDNN FP32
        need = 0.5 if row["layer"].startswith("64->64") else 1.0
        out.append(
            {
                "target": f"RawKernel forward >= {need}x cuDNN FP32 speed: {row['layer']}",
                "value": ratio,
                "met": ratio >= need,
            }
        )
    for row in training:
        if row["batch"] == 256 and "ratio_vs_torch_fp32" in row:
            ratio = row["ratio_vs_torch_fp32"]
            out.append(
                {
                    "target": "LeNet training >= 0.8x PyTorch FP32 images/s at batch 256",
                    "value": ratio,
                    "met": ratio >= 0.8,
                }
            )
    return out


# ------------------------------------------------------------------------------ report
def format_report(results: dict) -> str:
    lines = ["", "xpcnn GPU check", "=" * 78]
    lines.append(f"GPU: {results.get('gpu_description')}")
    for name, section in results["sections"].items():
        status = section.get("status", "?")
        extra = section.get("reason") or section.get("summary") or ""
        lines.append(f"{name:<12} {status.upper():<5} {section.get('seconds', '-')!s:>6}s  {extra}")
    comp = results["sections"].get("compile", {})
    if comp.get("table"):
        lines += ["", f"compile ({comp['compiler']}, {comp['arch']}):", comp["table"]]
    bench = results["sections"].get("benchmark", {})
    if bench.get("layers"):
        lines += ["", "per-layer time, ms (float32, forward unless noted)"]
        head = f"{'layer':<30} {'raw':>8} {'arrayapi':>9} {'cudnn32':>8} {'cudnnTF':>8} {'raw bwd':>8} {'cudnn bwd':>9}"
        lines.append(head)
        for r in bench["layers"]:
            if "error" in r:
                lines.append(f"{r['layer']:<30} ERROR {r['error']}")
                continue
            lines.append(
                f"{r['layer']:<30} {r['rawkernel_fwd_ms']:>8.3f} {r['arrayapi_fwd_ms']:>9.3f} "
                f"{r.get('cudnn_fp32_fwd_ms', float('nan')):>8.3f} {r.get('cudnn_tf32_fwd_ms', float('nan')):>8.3f} "
                f"{r['rawkernel_bwd_ms']:>8.3f} {r.get('cudnn_fp32_bwd_ms', float('nan')):>9.3f}"
            )
    if bench.get("training"):
        lines += ["", "LeNet-5 training, images/s"]
        lines.append(f"{'batch':>6} {'xpcnn':>10} {'torch fp32':>11} {'torch tf32':>11} {'ratio':>6}")
        for r in bench["training"]:
            if "error" in r:
                lines.append(f"{r['batch']:>6} ERROR {r['error']}")
                continue
            lines.append(
                f"{r['batch']:>6} {r['xpcnn_images_per_s']:>10.0f} {r.get('torch_fp32_images_per_s', float('nan')):>11.0f} "
                f"{r.get('torch_tf32_images_per_s', float('nan')):>11.0f} {r.get('ratio_vs_torch_fp32', float('nan')):>6.2f}"
            )
    if bench.get("targets"):
        lines += ["", "targets"]
        for t in bench["targets"]:
            lines.append(f"  {'MET ' if t['met'] else 'MISS'} {t['value']:.2f}  {t['target']}")
    lines.append("=" * 78)
    return "\n".join(lines)


def write_json(path, results: dict) -> None:
    """Write ``results`` atomically: a temporary file beside ``path``, then ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def key_figures(name: str, section: dict) -> str:
    """One line of the figures that matter in a finished section."""
    if name == "benchmark":
        parts = [
            f"{r['layer']}: ERROR {r['error']}"
            if "error" in r
            else f"{r['layer']}: raw {r['rawkernel_fwd_ms']:.3f} ms (call {r['rawkernel_fwd_call_ms']:.3f}), "
            f"cuDNN fp32 {r.get('cudnn_fp32_fwd_ms', float('nan')):.3f}"
            for r in section.get("layers", [])
        ]
        parts += [
            f"train b{r['batch']}: ERROR {r['error']}"
            if "error" in r
            else f"train b{r['batch']}: {r['xpcnn_images_per_s']:.0f} img/s vs torch "
            f"{r.get('torch_fp32_images_per_s', float('nan')):.0f}"
            for r in section.get("training", [])
        ]
        if section.get("reason"):
            parts.append(section["reason"])
        return "; ".join(parts)
    return str(section.get("summary") or section.get("reason") or "")


def _section(results: dict, name: str, fn, out=None) -> None:
    start = time.monotonic()
    try:
        section = fn()
    except Exception as exc:
        section = {
            "status": "fail",
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    section["seconds"] = round(time.monotonic() - start, 1)
    results["sections"][name] = section
    print(f"[gpu_check] {name}: {section['status']} ({section['seconds']} s) {key_figures(name, section)}",
          flush=True)  # fmt: skip
    if out is not None:
        write_json(out, results)


def _capped(deadline: Deadline, name: str, fn):
    """Run ``fn(seconds)`` with this section's cap, or skip it when the budget is spent."""
    seconds = min(CAPS.get(name, 60), deadline.left() - 5)
    if seconds < 10:
        return lambda: {
            "status": "skip",
            "reason": f"out of time ({deadline.left():.0f} s of the budget left)",
        }
    return lambda: fn(seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The GPU check (see the module docstring).")
    parser.add_argument(
        "--out", default="bench-results-gpu.json", help="JSON file, rewritten after each section"
    )
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check")
    parser.add_argument("--require-gpu", action="store_true", help="exit 2 when no GPU is visible")
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest")
    parser.add_argument("--sanitizer-case", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("CUPY_TF32", "0")  # full-FP32 CuPy matmuls (before CuPy is imported)
    if args.sanitizer_case:
        sanitizer_case()
        return 0
    deadline = Deadline(args.budget)
    gpu, description = gpu_status()
    results = {
        "gpu": gpu,
        "gpu_description": description,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "budget_s": args.budget,
        "complete": False,
        "sections": {},
    }
    write_json(args.out, results)
    if not gpu:
        print(f"[gpu_check] No usable CUDA GPU: {description}", flush=True)
        print("[gpu_check] Running only what needs no GPU (environment, kernel compile).", flush=True)
    _section(results, "environment", lambda: {"status": "pass", **environment(gpu)}, args.out)
    _section(results, "compile", lambda: compile_section(gpu), args.out)
    if gpu:
        plan = [
            ("benchmark", lambda seconds: benchmark(Deadline(seconds))),
            ("parity", lambda seconds: layer_parity(deadline=Deadline(seconds))),
            ("raw_vs_api", lambda seconds: kernel_vs_array_api(deadline=Deadline(seconds))),
            ("training", lambda seconds: training_parity(deadline=Deadline(seconds))),
            ("checkpoint", lambda _s: checkpoint_roundtrip()),  # one model: seconds
        ]
        if not args.skip_tests:
            plan.append(("tests", lambda seconds: run_pytest("", seconds)))
        plan.append(("sanitizer", lambda seconds: sanitizer(Deadline(seconds))))
        for name, fn in plan:
            _section(results, name, _capped(deadline, name, fn), args.out)
    else:
        for name in ("benchmark", "parity", "raw_vs_api", "training", "checkpoint", "tests", "sanitizer"):
            results["sections"][name] = {"status": "skip", "reason": "no GPU"}
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    results["complete"] = True
    write_json(args.out, results)
    print(format_report(results))
    print(f"[gpu_check] results written to {args.out}")
    failed = [n for n, s in results["sections"].items() if s.get("status") == "fail"]
    if failed:
        print(f"[gpu_check] FAILED: {', '.join(failed)}")
        return 1
    if not gpu and args.require_gpu:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
