"""The benchmark's quick mode: it runs, its JSON has the documented structure and sane values.

No timing is asserted (the machines are shared and noisy): only that each number exists, is
finite and positive, and that the derived figures follow from the measured ones.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from xpcnn import testing as reference
from xpcnn.tools import bench


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench-results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "xpcnn.tools.bench", "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text())


def _check_stats(stats, flops, repeats):
    assert stats["repeats"] == repeats == len(stats["times_ms"])
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
    assert stats["spread"] >= 0 and stats["noisy"] == (stats["spread"] > bench.NOISY_SPREAD)
    assert all(math.isfinite(t) and t > 0 for t in stats["times_ms"])
    assert stats["gflops"] == pytest.approx(flops / (stats["median_ms"] * 1e-3) / 1e9)
    assert stats["pct_peak"] == pytest.approx(100 * stats["gflops"] / bench.PEAK_GFLOPS)


@pytest.mark.slow
def test_quick_json_structure(quick):
    _, result = quick
    assert result["quick"] is True
    assert result["errors"] == []
    settings = result["settings"]
    assert settings["dtype"] == "float32" and settings["peak_gflops"] == bench.PEAK_GFLOPS
    names = [c["case"] for c in result["cases"]]
    assert names == [name for name, *_ in bench.CONV_CASES] + [bench.STEP_CASE, bench.RESNET_CASE]
    have_torch = result["machine"]["torch"] is not None
    for case in result["cases"]:
        n = settings["batch"]
        if case["kind"] == "conv":
            s = case["shape"]
            assert case["flops"] == bench.conv_flops(n, s["c_in"], s["c_out"], s["hw"])
            _check_stats(case["tutorial"], case["flops"], settings["tutorial_repeats"])
            assert case["speedup_vs_tutorial"] == pytest.approx(
                case["tutorial"]["median_ms"] / case["xpcnn"]["median_ms"]
            )
        elif case["case"] == bench.RESNET_CASE:
            assert case["flops"] == bench.resnet_flops(n)
        else:
            assert case["flops"] == bench.step_flops(n)
        repeats = (
            settings["repeats"] if case["case"] != bench.RESNET_CASE else max(3, settings["repeats"] // 4)
        )
        _check_stats(case["xpcnn"], case["flops"], repeats * settings["rounds"])
        if have_torch:
            _check_stats(case["torch"], case["flops"], repeats * settings["rounds"])
            assert case["ratio_to_torch"] == pytest.approx(
                case["xpcnn"]["median_ms"] / case["torch"]["median_ms"]
            )
        else:
            assert case["torch"] is None and case["ratio_to_torch"] is None
    keys = [t["key"] for t in result["targets"]]
    assert keys == [key for key, *_ in bench.TARGETS]
    for t in result["targets"]:
        if t["value"] is not None:
            assert t["met"] == (t["value"] <= t["limit"] if t["kind"] == "max" else t["value"] >= t["limit"])


@pytest.mark.slow
def test_quick_memory_and_table(quick):
    stdout, result = quick
    mem = result["memory"]
    if mem["xpcnn"]["peak_growth_mib"] is not None:  # Linux: /proc/self/clear_refs
        assert mem["xpcnn"]["peak_growth_mib"] > 0
        if result["machine"]["torch"] is not None:
            assert mem["torch"]["peak_growth_mib"] > 0
            assert mem["ratio"] == pytest.approx(
                mem["xpcnn"]["peak_growth_mib"] / mem["torch"]["peak_growth_mib"]
            )
    assert "| case | implementation | median ms |" in stdout
    assert "QUICK MODE" in stdout
    for name, *_ in bench.CONV_CASES:
        assert f"| {name} | xpcnn |" in stdout


def test_flop_counts():
    # 1->8 on 28x28, batch 64: 64 * 8 * 26 * 26 outputs of 9 multiply-adds, x2 FLOPs, x3 passes
    assert bench.conv_flops(64, 1, 8, 28) == 3 * 2 * 64 * 8 * 26 * 26 * 9
    assert (
        bench.step_flops(1) == bench.conv_flops(1, 1, 8, 28) + bench.conv_flops(1, 8, 16, 26) + 6 * 9216 * 10
    )


def test_full_mode_needs_five_repeats():
    with pytest.raises(SystemExit):
        bench.parse_args(["--repeats", "3"])
    assert bench.parse_args([]).repeats >= 5 and bench.parse_args([]).batch == 64


def test_tutorial_loops_match_reference():
    """The per-sample loops the benchmark times compute the layer (float64 oracle)."""
    rng = np.random.default_rng(3)
    x, k, b = rng.normal(size=(3, 2, 7, 6)), rng.normal(size=(4, 2, 3, 2)), rng.normal(size=4)
    y = reference.tutorial_forward(x, k, b)
    np.testing.assert_allclose(y, reference.conv2d_forward(x, k) + b[:, None, None], rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=y.shape)
    dx, dk, db = reference.tutorial_backward(x, k, dy)
    dx_ref, dk_ref = reference.conv2d_backward(x, k, dy)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dk, dk_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-12)
