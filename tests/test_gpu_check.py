"""xpcnn.tools.gpu_check on a machine without a GPU: it says so, runs what it can, and its GPU
sections' code paths run here with device="cpu" on both sides (so that the one GPU run is not
spent on a typo).  The real check runs on an H200 (docs/gpu.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xpcnn.backend import _cupy as backend_cupy
from xpcnn.tools import gpu_check


def test_no_gpu_is_reported_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "gpu_status", lambda: (False, "CuPy sees no CUDA GPU"))
    monkeypatch.setattr(gpu_check, "compile_section", lambda gpu: {"status": "skip", "reason": "not here"})
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "No usable CUDA GPU: CuPy sees no CUDA GPU" in text
    results = json.loads(out.read_text())
    assert results["gpu"] is False
    for name in ("parity", "training", "tests", "benchmark", "sanitizer"):
        assert results["sections"][name] == {"status": "skip", "reason": "no GPU"}
    assert gpu_check.main(["--out", str(out), "--require-gpu"]) == 2


def test_failed_section_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "gpu_status", lambda: (False, "none"))

    def broken(gpu):
        raise RuntimeError("nvrtc exploded")

    monkeypatch.setattr(gpu_check, "compile_section", broken)
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out)]) == 1
    section = json.loads(out.read_text())["sections"]["compile"]
    assert section["status"] == "fail" and "nvrtc exploded" in section["reason"]


def test_compare_tolerances():
    ref = np.array([1.0, -2.0, 0.0])
    assert gpu_check.compare(ref + 9e-4, ref, "float32")["ok"]
    assert not gpu_check.compare(ref + [0, 0, 2e-3], ref, "float32")["ok"]
    assert gpu_check.compare(ref * (1 + 5e-8), ref, "float64")["ok"]
    assert not gpu_check.compare(ref * (1 + 1e-6), ref, "float64")["ok"]
    assert not gpu_check.compare(ref[:2], ref, "float64")["ok"]


def test_sections_run_on_cpu(monkeypatch):
    monkeypatch.setattr(gpu_check, "PARITY_LAYERS", gpu_check.PARITY_LAYERS[3:5])
    assert gpu_check.layer_parity("cpu", "cpu")["status"] == "pass"
    assert gpu_check.kernel_vs_array_api("cpu")["status"] == "pass"
    assert gpu_check.training_parity("cpu", "cpu", steps=2, batch=4)["status"] == "pass"
    assert gpu_check.checkpoint_roundtrip("cpu", "cpu")["status"] == "pass"
    timer = gpu_check.Timer(False, repeat=1, warmup=0)
    layers = gpu_check.bench_layers("cpu", timer, layers=[("tiny", 2, 2, 3, 8, 3, 1)])
    training = gpu_check.bench_training("cpu", batches=(4,), steps=1)
    assert layers[0]["rawkernel_fwd_ms"] > 0 and training[0]["xpcnn_images_per_s"] > 0
    found = gpu_check.targets(layers, training)
    if "cudnn_fp32_fwd_ms" in layers[0]:  # torch installed
        assert len(found) == 1 and "tiny" in found[0]["target"]
    results = {
        "gpu_description": "cpu",
        "sections": {
            "benchmark": {"status": "pass", "layers": layers, "training": training, "targets": found}
        },
    }
    assert "LeNet-5 training, images/s" in gpu_check.format_report(results)


def test_pytest_section_out_of_time():
    assert gpu_check.run_pytest("not slow", timeout=5)["status"] == "skip"


@pytest.mark.parametrize("gpu", [False])
def test_environment_lists_versions(gpu):
    info = gpu_check.environment(gpu)
    assert info["versions"]["numpy"] == np.__version__


def _fake_gpu(monkeypatch):
    """A 'GPU' run whose sections are stand-ins, to drive main() here."""
    monkeypatch.setattr(gpu_check, "gpu_status", lambda: (True, "fake GPU"))
    monkeypatch.setattr(gpu_check, "environment", lambda gpu: {"versions": {}})
    monkeypatch.setattr(gpu_check, "compile_section", lambda gpu: {"status": "pass"})
    row = {"layer": "l", "rawkernel_fwd_ms": 1.0, "rawkernel_fwd_call_ms": 2.0, "arrayapi_fwd_ms": 3.0,
           "rawkernel_bwd_ms": 4.0}  # fmt: skip
    monkeypatch.setattr(gpu_check, "BENCH_LAYERS", gpu_check.BENCH_LAYERS[:1])  # one row each
    monkeypatch.setattr(gpu_check, "TRAIN_BATCHES", (256,))
    monkeypatch.setattr(gpu_check, "bench_layers", lambda **kw: [row])
    monkeypatch.setattr(
        gpu_check, "bench_training", lambda **kw: [{"batch": 256, "xpcnn_images_per_s": 10.0}]
    )
    for name in ("layer_parity", "kernel_vs_array_api", "training_parity", "checkpoint_roundtrip"):
        monkeypatch.setattr(gpu_check, name, lambda **kw: {"status": "pass"})
    monkeypatch.setattr(
        gpu_check, "run_pytest", lambda marker, timeout: {"status": "pass", "summary": "1 passed"}
    )
    monkeypatch.setattr(gpu_check, "sanitizer", lambda deadline: {"status": "pass"})


def test_a_killed_run_leaves_a_valid_partial_file(tmp_path, monkeypatch, capsys):
    """The benchmark comes first and the file is rewritten after each section: a run killed
    in the middle (here a KeyboardInterrupt in the parity section) leaves its figures."""
    _fake_gpu(monkeypatch)

    def killed(**kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(gpu_check, "layer_parity", killed)
    out = tmp_path / "gpu.json"
    with pytest.raises(KeyboardInterrupt):
        gpu_check.main(["--out", str(out)])
    results = json.loads(out.read_text())
    assert results["complete"] is False and list(results["sections"]) == [
        "environment",
        "compile",
        "benchmark",
    ]
    assert results["sections"]["benchmark"]["layers"][0]["rawkernel_fwd_call_ms"] == 2.0
    assert "benchmark: pass" in capsys.readouterr().out and not list(tmp_path.glob(".*.tmp"))


def test_the_budget_caps_the_sections(tmp_path, monkeypatch):
    _fake_gpu(monkeypatch)
    slow = gpu_check.bench_layers

    def bench_taking_two_seconds(**kw):
        gpu_check.time.sleep(2)
        return slow(**kw)

    monkeypatch.setattr(gpu_check, "bench_layers", bench_taking_two_seconds)
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out), "--budget", "16"]) == 0
    sections = json.loads(out.read_text())["sections"]
    assert sections["benchmark"]["status"] == "pass"
    assert all(sections[n]["status"] == "skip" and "out of time" in sections[n]["reason"]
               for n in ("parity", "training", "tests", "sanitizer"))  # fmt: skip
    assert gpu_check.main(["--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["complete"] and all(s["status"] == "pass" for s in results["sections"].values())


def test_the_tests_section_runs_the_cupy_backend_only(monkeypatch):
    seen = {}

    def fake_run(cmd, cwd, env, capture_output, text, timeout):
        seen.update(env=env["XPCNN_BACKENDS"], cmd=cmd)
        return type("P", (), {"returncode": 0, "stdout": "= 3 passed in 1.0s =", "stderr": ""})()

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    assert gpu_check.run_pytest("", 60)["status"] == "pass"
    assert seen["env"] == "cupy" and seen["cmd"][seen["cmd"].index("-m", 3) + 1] == ""


@pytest.mark.parametrize("outcome", ["timeout", "unsupported"])
def test_sanitizer_timeout_or_unsupported_device_is_a_skip(monkeypatch, outcome):
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: "/usr/bin/compute-sanitizer")

    def fake_run(cmd, **kwargs):
        if outcome == "timeout":
            raise gpu_check.subprocess.TimeoutExpired(cmd, 1)
        return type("P", (), {"returncode": 3, "stdout": "", "stderr": "Error: Device not supported"})()

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    section = gpu_check.sanitizer(gpu_check.Deadline(600))
    assert section["status"] == "skip"
    assert ("timed out" if outcome == "timeout" else "Device not supported") in section["reason"]


def test_sanitizer_outcomes():
    outcome = gpu_check.sanitizer_outcome
    done = "sanitizer case done\n========= ERROR SUMMARY: 0 errors\n"
    assert outcome(0, done)["status"] == "pass"
    assert (
        outcome(3, "========= Invalid __global__ read\n========= ERROR SUMMARY: 2 errors\n")["status"]
        == "fail"
    )
    raised = "Traceback (most recent call last):\n  ...\nValueError: boom\n"
    assert outcome(1, raised)["status"] == "fail"
    refused = outcome(1, "========= Error: Failed to initialize the profiler\n")
    assert refused["status"] == "skip" and "Failed to initialize the profiler" in refused["reason"]
    assert outcome(0, "no end line")["status"] == "skip"  # the case did not reach its end


class _RowsDeadline(gpu_check.Deadline):
    """A deadline that passes after ``rows`` rows have been started."""

    def __init__(self, rows):
        super().__init__(None)
        self.rows = rows

    def passed(self):
        self.rows -= 1
        return self.rows < 0


def test_row_sections_stop_at_their_deadline(monkeypatch):
    monkeypatch.setattr(gpu_check, "PARITY_LAYERS", gpu_check.PARITY_LAYERS[3:5])
    for section in (gpu_check.layer_parity("cpu", "cpu", deadline=_RowsDeadline(1)),
                    gpu_check.kernel_vs_array_api("cpu", deadline=_RowsDeadline(1))):  # fmt: skip
        assert section["status"] == "partial" and len(section["layers"]) == 1
        assert "after 1 of 4 rows" in section["reason"]
    run = gpu_check.training_parity("cpu", "cpu", steps=1, batch=2, deadline=_RowsDeadline(1))
    assert run["status"] == "partial" and [r["dtype"] for r in run["runs"]] == ["float32"]
    timer = gpu_check.Timer(False, repeat=1, warmup=0)
    tiny = ("tiny", 2, 2, 3, 8, 3, 1)
    assert gpu_check.bench_layers("cpu", timer, layers=[tiny, tiny], deadline=_RowsDeadline(1)) != []
    assert gpu_check.bench_layers("cpu", timer, layers=[tiny], deadline=_RowsDeadline(0)) == []
    assert gpu_check.bench_training("cpu", batches=(4,), steps=1, deadline=_RowsDeadline(0)) == []


def test_a_benchmark_row_that_raises_keeps_the_others(monkeypatch):
    timer = gpu_check.Timer(False, repeat=1, warmup=0)
    bad = ("kernel larger than the padded input", 2, 2, 3, 2, 5, 0)
    rows = gpu_check.bench_layers("cpu", timer, layers=[("tiny", 2, 2, 3, 8, 3, 1), bad])
    assert rows[0]["rawkernel_fwd_ms"] > 0 and "error" not in rows[0]
    assert rows[1]["layer"] == bad[0] and "ValueError" in rows[1]["error"]
    assert "ERROR" in gpu_check.format_report(
        {"sections": {"benchmark": {"status": "fail", "layers": rows, "training": []}}}
    )

    def torch_breaks(*args):
        raise RuntimeError("cuDNN refused")

    monkeypatch.setattr(gpu_check, "_bench_layer_torch", torch_breaks)
    monkeypatch.setattr(gpu_check, "_bench_training_torch", torch_breaks)
    monkeypatch.setattr(gpu_check, "_torch", lambda: object())  # "installed"
    (row,) = gpu_check.bench_layers("cpu", timer, layers=[("tiny", 2, 2, 3, 8, 3, 1)])
    assert row["rawkernel_fwd_ms"] > 0 and "cuDNN refused" in row["torch_error"] and "error" not in row
    (run,) = gpu_check.bench_training("cpu", batches=(4,), steps=1)
    assert run["xpcnn_images_per_s"] > 0 and "cuDNN refused" in run["torch_error"]
    monkeypatch.setattr(gpu_check, "BENCH_LAYERS", [bad])
    monkeypatch.setattr(gpu_check, "TRAIN_BATCHES", (4,))
    monkeypatch.setattr(gpu_check, "bench_layers", lambda layers, deadline: rows[1:])
    monkeypatch.setattr(gpu_check, "bench_training", lambda batches, deadline: [run])
    assert gpu_check.benchmark(gpu_check.Deadline(None))["status"] == "fail"  # xpcnn's own error


def test_a_cut_test_run_counts_what_ran(monkeypatch):
    text = "....F.s.  [ 40%]\n.E..\n"
    assert gpu_check.progress_counts(text) == {"passed": 9, "failed": 1, "errors": 1, "skipped": 1}
    for printed, status in (("..s...  [ 30%]\n", "partial"), ("..F...  [ 30%]\n", "fail")):

        def cut(cmd, printed=printed, **kwargs):
            raise gpu_check.subprocess.TimeoutExpired(cmd, 60, output=printed)

        monkeypatch.setattr(gpu_check.subprocess, "run", cut)
        section = gpu_check.run_pytest("", 60)
        assert section["status"] == status and "cut after 60 s" in section["reason"]


def test_cupy_warnings_do_not_fail_the_gpu_tests_but_ours_do(tmp_path, monkeypatch):
    """The filter list that run_pytest passes (``-o filterwarnings=...``), tried on a real
    pytest run: a warning from a module named cupy* is reported, one from elsewhere fails."""
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"] = cmd
        return type("P", (), {"returncode": 0, "stdout": "= 1 passed in 0.1s =", "stderr": ""})()

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    gpu_check.run_pytest("", 60)
    option = seen["cmd"][seen["cmd"].index("-o") + 1]
    assert option.startswith("filterwarnings=error\n") and option.endswith("\ndefault:::cupy")
    monkeypatch.undo()
    (tmp_path / "cupyx_fake.py").write_text(
        "import warnings\n\ndef slow():\n    warnings.warn('slow', RuntimeWarning)\n"
    )
    (tmp_path / "test_w.py").write_text(
        "import warnings, cupyx_fake\n\ndef test_cupy():\n    cupyx_fake.slow()\n\n"
        "def test_ours():\n    warnings.warn('ours', RuntimeWarning)\n"
    )
    proc = gpu_check.subprocess.run(
        [gpu_check.sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", option, "test_w.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "1 failed, 1 passed" in proc.stdout and "FAILED test_w.py::test_ours" in proc.stdout


def test_a_register_spill_is_a_warning(monkeypatch):
    from xpcnn.tools import cuda_compile as cc

    spilled = cc.InstanceReport("xpcnn_conv2d_forward<double, 0, 0, 0>", "_Z...", 255, 64, 16, 16)
    monkeypatch.setattr(cc, "nvrtc_available", lambda: None)
    monkeypatch.setattr(cc, "compile_all", lambda compiler, arch: ("nvrtc", [spilled]))
    section = gpu_check.compile_section(False)
    assert section["status"] == "warn" and spilled.name in section["reason"]


def test_the_gpu_sections_run_on_cupy(be, monkeypatch, capsys):
    """The GPU sections with ``device="cuda"``, on CuPy (on the CPU: the stand-in, whose
    RawModule runs the real kernels): the parity sections pass, the benchmark rows have
    xpcnn's figures, and the sanitizer's case runs every kernel family to its end.  PyTorch's
    side needs a CUDA build of torch: off a GPU its failure must only be recorded."""
    if not be.is_cupy:
        pytest.skip("the GPU sections run on CuPy")
    monkeypatch.setattr(gpu_check, "PARITY_LAYERS", gpu_check.PARITY_LAYERS[3:5])
    assert gpu_check.layer_parity("cuda", "cpu")["status"] == "pass"
    assert gpu_check.kernel_vs_array_api("cuda")["status"] == "pass"
    assert gpu_check.training_parity("cuda", "cpu", steps=1, batch=2)["status"] == "pass"
    assert gpu_check.checkpoint_roundtrip("cuda", "cpu")["status"] == "pass"
    timer = gpu_check.Timer(be.name == "cupy", repeat=1, warmup=0)
    (row,) = gpu_check.bench_layers("cuda", timer, layers=[("tiny", 2, 2, 3, 8, 3, 1)])
    (run,) = gpu_check.bench_training("cuda", batches=(2,), steps=1)
    assert "error" not in row and row["rawkernel_bwd_ms"] > 0 and run["xpcnn_images_per_s"] > 0
    if be.name == "cupy":
        assert row.get("torch_error") is None and run.get("torch_error") is None
    if be.name == "cupy-emulated":
        import cupy_emulated

        monkeypatch.setattr(cupy_emulated, "allocator", cupy_emulated.allocator)  # restored after
    try:
        gpu_check.sanitizer_case()  # turns CuPy's memory pool off
    finally:
        if be.name == "cupy":
            cupy = backend_cupy()
            cupy.cuda.set_allocator(cupy.get_default_memory_pool().malloc)
    assert capsys.readouterr().out.strip().endswith("sanitizer case done")
