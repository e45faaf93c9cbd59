"""Learning-rate schedules: values at given steps, validation, repr."""

import math

import pytest

from xpcnn import schedules as S


def test_constant():
    s = S.Constant(0.05)
    assert [s(t) for t in (0, 1, 10_000)] == [0.05, 0.05, 0.05]


def test_step_decay():
    s = S.StepDecay(0.1, step_size=10, factor=0.5)
    assert s(0) == 0.1 and s(9) == 0.1
    assert s(10) == pytest.approx(0.05) and s(25) == pytest.approx(0.025) and s(30) == pytest.approx(0.0125)


def test_exponential_decay():
    s = S.ExponentialDecay(1.0, rate=0.5, decay_steps=4)
    assert s(0) == 1.0 and s(4) == pytest.approx(0.5) and s(8) == pytest.approx(0.25)
    assert s(2) == pytest.approx(2**-0.5)
    stairs = S.ExponentialDecay(1.0, rate=0.5, decay_steps=4, staircase=True)
    assert stairs(3) == 1.0 and stairs(4) == pytest.approx(0.5) and stairs(7) == pytest.approx(0.5)


def test_cosine_decay():
    s = S.CosineDecay(0.1, decay_steps=100, final=0.01)
    assert s(0) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.055)  # halfway: the mean of the two ends
    assert s(25) == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi / 4)) / 2)
    assert s(100) == pytest.approx(0.01) and s(1000) == pytest.approx(0.01)


def test_linear_warmup_wraps_a_schedule():
    s = S.LinearWarmup(S.StepDecay(0.1, step_size=10, factor=0.5), warmup_steps=5)
    assert s(0) == 0.0
    assert s(1) == pytest.approx(0.02) and s(4) == pytest.approx(0.08)
    assert s(5) == pytest.approx(0.1)  # the wrapped schedule starts its count here
    assert s(14) == pytest.approx(0.1) and s(15) == pytest.approx(0.05)
    started = S.LinearWarmup(0.2, warmup_steps=4, start=0.1)
    assert started(0) == pytest.approx(0.1) and started(2) == pytest.approx(0.15) and started(4) == 0.2


def test_reduce_on_plateau():
    s = S.ReduceOnPlateau(1.0, monitor="val_loss", factor=0.5, patience=2, min_delta=0.0)
    rates = [s.observe(v) for v in [1.0, 0.9, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85]]
    # improvements at 1.0, 0.9, 0.8; two bad epochs after 0.9 -> halve; then 2 more -> halve, and again
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert s(0) == s(12345) == 0.125
    s.reset()
    assert s(0) == 1.0


def test_reduce_on_plateau_mode_max_cooldown_and_floor():
    s = S.ReduceOnPlateau(
        1.0, monitor="val_accuracy", mode="max", factor=0.1, patience=0, cooldown=1, min_value=0.005
    )
    assert s.observe(0.5) == 1.0  # improvement
    assert s.observe(0.4) == pytest.approx(0.1)  # patience 0: reduce at once, then 1 epoch of cooldown
    assert s.observe(0.3) == pytest.approx(0.1)  # cooldown
    assert s.observe(0.3) == pytest.approx(0.01)
    assert s.observe(0.3) == pytest.approx(0.01)  # cooldown
    assert s.observe(0.3) == pytest.approx(0.005)  # floored at min_value
    assert s.observe(math.nan) == pytest.approx(0.005)  # NaN never improves


def test_find_plateau_and_as_schedule():
    p = S.ReduceOnPlateau(0.1)
    assert S.find_plateau(p) is p and S.find_plateau(S.LinearWarmup(p, 3)) is p
    assert S.find_plateau(S.Constant(0.1)) is None
    assert isinstance(S.as_schedule(0.3), S.Constant)
    f = S.as_schedule(lambda t: 0.1 / (t + 1))
    assert f(3) == pytest.approx(0.025)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: S.Constant(0), r"strictly positive, finite value\. Received learning_rate=0"),
        (lambda: S.StepDecay(0.1, step_size=0), r"strictly positive integer\. Received step_size=0"),
        (lambda: S.StepDecay(0.1, step_size=2.5), r"Received step_size=2\.5"),
        (lambda: S.ExponentialDecay(0.1, rate=-1), r"Received rate=-1"),
        (lambda: S.CosineDecay(0.1, 10, final=0.2), r"final <= initial"),
        (lambda: S.LinearWarmup(0.1, warmup_steps=0), r"Received warmup_steps=0"),
        (lambda: S.ReduceOnPlateau(0.1, factor=1.0), r"value in \(0, 1\)\. Received factor=1\.0"),
        (lambda: S.ReduceOnPlateau(0.1, patience=-1), r"non-negative integer\. Received patience=-1"),
        (lambda: S.ReduceOnPlateau(0.1, mode="up"), r'mode "min" or "max"\. Received mode=\'up\''),
        (lambda: S.Constant(0.1)(-1), r"non-negative integer step\. Received step=-1"),
    ],
)
def test_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_repr():
    assert repr(S.StepDecay(0.1, 10)) == "StepDecay(initial=0.1, step_size=10, factor=0.1)"
    assert (
        repr(S.LinearWarmup(0.1, 5)) == "LinearWarmup(after=Constant(value=0.1), warmup_steps=5, start=0.0)"
    )
    assert "ReduceOnPlateau(initial=0.1, monitor='val_loss'" in repr(S.ReduceOnPlateau(0.1))
