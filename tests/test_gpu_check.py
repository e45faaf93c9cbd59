"""xpcnn.tools.gpu_check on a machine without a GPU: it says so, runs what it can, and its GPU
sections' code paths run here with device="cpu" on both sides (so that the one GPU run is not
spent on a typo).  The real check runs on an H100 (README, section "GPU")."""

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
