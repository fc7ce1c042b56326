"""Learning-rate schedules: values at chosen steps, validation and config round trips."""

from __future__ import annotations

import json
import math
import re

import pytest

from mlp.schedules import Constant, Cosine, LinearWarmup, StepDecay, schedule_from_config


def values(schedule, steps):
    return [schedule(s) for s in steps]


def test_constant():
    assert values(Constant(), [0, 1, 10**6]) == [1.0, 1.0, 1.0]


def test_step_decay():
    s = StepDecay(step_size=3, gamma=0.5)
    assert values(s, range(10)) == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    assert StepDecay(1)(2) == pytest.approx(0.01)


def test_cosine():
    s = Cosine(total_steps=4, min_factor=0.1)
    expected = [1.0, 0.1 + 0.9 * (1 + math.sqrt(0.5)) / 2, 0.55,
                0.1 + 0.9 * (1 - math.sqrt(0.5)) / 2, 0.1, 0.1, 0.1]
    assert values(s, range(7)) == pytest.approx(expected, rel=1e-15)
    assert Cosine(10)(10) == pytest.approx(0.0, abs=1e-16)


def test_linear_warmup():
    s = LinearWarmup(4)
    assert values(s, range(6)) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    chained = LinearWarmup(2, after=StepDecay(2, 0.1))
    assert values(chained, range(7)) == pytest.approx([0.5, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01])
    # No warm-up: the schedule after it, from step 0.
    assert values(LinearWarmup(0, Cosine(2)), [0, 1, 2]) == pytest.approx([1.0, 0.5, 0.0])


@pytest.mark.parametrize(("bad", "message"), [
    (lambda: StepDecay(0), "step_size must be >= 1, got 0"),
    (lambda: Cosine(0), "total_steps must be >= 1, got 0"),
    (lambda: LinearWarmup(-1), "warmup_steps must be an integer >= 0, got -1"),
    (lambda: schedule_from_config({"type": "Exponential"}), "unknown schedule 'Exponential'"),
])
def test_validation(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        bad()


@pytest.mark.parametrize("schedule", [
    Constant(), StepDecay(7, 0.3), Cosine(100, 0.05), LinearWarmup(10),
    LinearWarmup(3, Cosine(20, 0.1)), LinearWarmup(2, LinearWarmup(3, StepDecay(4))),
], ids=["constant", "step", "cosine", "warmup", "warmup-cosine", "nested"])
def test_config_round_trip(schedule):
    config = json.loads(json.dumps(schedule.config()))
    again = schedule_from_config(config)
    assert type(again) is type(schedule)
    assert again.config() == schedule.config()
    steps = range(0, 130, 3)
    assert values(again, steps) == values(schedule, steps)
