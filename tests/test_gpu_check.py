"""xpcnn.tools.gpu_check on a machine without a GPU: it says so, runs what it can, and its GPU
sections' code paths run here with device="cpu" on both sides (so that the one GPU run is not
spent on a typo).  The real check runs on an H200 (docs/gpu.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

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
    monkeypatch.setattr(gpu_check, "bench_layers", lambda: [row])
    monkeypatch.setattr(gpu_check, "bench_training", lambda: [{"batch": 256, "xpcnn_images_per_s": 10.0}])
    for name in ("layer_parity", "kernel_vs_array_api", "training_parity", "checkpoint_roundtrip"):
        monkeypatch.setattr(gpu_check, name, lambda: {"status": "pass"})
    monkeypatch.setattr(
        gpu_check, "run_pytest", lambda marker, timeout: {"status": "pass", "summary": "1 passed"}
    )
    monkeypatch.setattr(gpu_check, "sanitizer", lambda deadline: {"status": "pass"})


def test_a_killed_run_leaves_a_valid_partial_file(tmp_path, monkeypatch, capsys):
    """The benchmark comes first and the file is rewritten after each section: a run killed
    in the middle (here a KeyboardInterrupt in the parity section) leaves its figures."""
    _fake_gpu(monkeypatch)

    def killed():
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

    def bench_taking_two_seconds():
        gpu_check.time.sleep(2)
        return slow()

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
