"""Learning-rate schedules: ``schedule(step) -> factor`` multiplying the base rate.

``step`` counts optimizer updates from 0. Every schedule has a JSON-able ``config()`` and
:func:`schedule_from_config` rebuilds it (checkpoints store it).
"""

from __future__ import annotations

import math
from typing import Any

from .schema import WARMUP


class Schedule:
    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **self.__dict__}


class Constant(Schedule):
    def __call__(self, step: int) -> float:
        return 1.0


class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``step_size`` steps."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, step: int) -> float:
        return self.gamma ** (step // self.step_size)


class Cosine(Schedule):
    """Half a cosine from 1 down to ``min_factor`` over ``total_steps``, then flat."""

    def __init__(self, total_steps: int, min_factor: float = 0.0) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.total_steps, self.min_factor = int(total_steps), float(min_factor)

    def __call__(self, step: int) -> float:
        frac = min(step, self.total_steps) / self.total_steps
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * frac))


class LinearWarmup(Schedule):
    """Rise linearly from ``1/warmup_steps`` to 1 over ``warmup_steps`` (an integer in the
    ``warmup`` setting's bounds, :data:`mlp.schema.WARMUP`), then follow ``after`` (counted from
    the end of the warm-up)."""

    def __init__(self, warmup_steps: int, after: Schedule | None = None) -> None:
        self.warmup_steps = int(WARMUP.check(warmup_steps, "warmup_steps"))
        self.after = after if after is not None else Constant()

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return self.after(step - self.warmup_steps)

    def config(self) -> dict[str, Any]:
        return {"type": "LinearWarmup", "warmup_steps": self.warmup_steps,
                "after": self.after.config()}


SCHEDULES: dict[str, type[Schedule]] = {
    cls.__name__: cls for cls in (Constant, StepDecay, Cosine, LinearWarmup)
}


def schedule_from_config(config: dict[str, Any]) -> Schedule:
    kwargs = dict(config)
    kind = kwargs.pop("type")
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}")
    if "after" in kwargs:
        kwargs["after"] = schedule_from_config(kwargs["after"])
    return SCHEDULES[kind](**kwargs)
