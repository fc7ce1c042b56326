"""The report's rows: one configuration's per-step times and one backend's epoch, read from
pytest-benchmark's JSON by :mod:`benchmarks.report` and drawn by :mod:`benchmarks.plots`, with the
marks of implausible figures that the tables and the plots share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .workloads import gflops

NAN = math.nan
#: A time whose rounds disagree by more than this factor was measured on a busy machine.
ROUNDS_DISAGREE = 1.5
#: The marks of implausible figures, the same in the report's tables and in the plots: a time
#: measured on a busy machine, a time below its floor.
BUSY_MARK, BELOW_MARK = "†", "‡"


def marks(busy: bool, below: bool) -> str:
    """The marks of a figure: `` †`` when it was measured on a busy machine, `` ‡`` when it
    came out below its floor."""
    return (f" {BUSY_MARK}" if busy else "") + (f" {BELOW_MARK}" if below else "")


def round_spread(stats: dict[str, Any]) -> float:
    """How far a benchmark's rounds disagree, as a factor: the slower quartile over the faster
    (``q3 / q1``) for more than 5 rounds, the slowest round over the fastest for fewer; NaN
    when the statistics are not there."""
    if int(stats.get("rounds", 0)) > 5 and "q1" in stats and "q3" in stats:
        return ratio(float(stats["q3"]), float(stats["q1"]))
    if "min" in stats and "max" in stats:
        return ratio(float(stats["max"]), float(stats["min"]))
    return NAN


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (NaN for none)."""
    ordered = sorted(values)
    if not ordered:
        return NAN
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def ratio(a: float, b: float) -> float:
    """``a / b``; NaN when either is NaN or ``b`` is not positive."""
    if math.isnan(a) or math.isnan(b) or b <= 0:
        return NAN
    return a / b


@dataclass
class StepRow:
    """One configuration's per-step medians (seconds) and the matching PyTorch peer."""

    backend: str
    device: str
    size: str
    batch: int
    dtype: str
    flops: int
    times: dict[str, float] = field(default_factory=dict)
    peer: float = NAN
    #: How far each time's rounds disagree (:func:`round_spread`), kind -> factor; ``"peer"``
    #: for the PyTorch peer.
    spread: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.size} b{self.batch} {self.dtype.replace('float', 'f')}"

    def time(self, kind: str) -> float:
        return self.times.get(kind, NAN)

    @property
    def x_floor(self) -> float:
        """Step time over GEMM-floor time (1 is the floor; lower is better)."""
        return ratio(self.time("step"), self.time("floor"))

    @property
    def x_torch(self) -> float:
        """PyTorch peer time over step time (above 1: we are faster)."""
        return ratio(self.peer, self.time("step"))

    @property
    def gflops(self) -> float:
        """Achieved GFLOP/s of the step's matrix products."""
        return gflops(self.flops, self.time("step"))

    def busy(self, *kinds: str) -> bool:
        """Whether the rounds of any of these times disagree by more than ROUNDS_DISAGREE."""
        return any(self.spread.get(kind, NAN) > ROUNDS_DISAGREE for kind in kinds)

    def mark(self, attr: str) -> str:
        """The marks of ratio ``attr`` (``x_floor``, ``x_torch``): `` †`` when a time in it was
        measured on a busy machine, `` ‡`` when the step came out below its floor."""
        kinds = {"x_floor": ("step", "floor"), "x_torch": ("step", "peer")}[attr]
        return marks(self.busy(*kinds), attr == "x_floor" and getattr(self, attr) < 1)


@dataclass
class EpochRow:
    """One backend's epoch, its GEMM floor and the PyTorch peer's epoch (seconds)."""

    backend: str
    device: str
    flops: int
    epoch: float = NAN
    floor: float = NAN
    peer: float = NAN
    #: Fastest rounds (seconds), kind -> time: a check on the medians when the machine is noisy.
    best: dict[str, float] = field(default_factory=dict)
    #: How far each time's rounds disagree (:func:`round_spread`): epoch, floor, peer.
    spread: dict[str, float] = field(default_factory=dict)

    def busy(self, *kinds: str) -> bool:
        return any(self.spread.get(kind, NAN) > ROUNDS_DISAGREE for kind in kinds)

    def mark(self, attr: str) -> str:
        """The marks of ratio ``attr`` (``x_floor``, ``x_torch`` or their ``_best``)."""
        kinds = ("epoch", "floor") if attr.startswith("x_floor") else ("epoch", "peer")
        return marks(self.busy(*kinds), attr.startswith("x_floor") and getattr(self, attr) < 1)

    @property
    def x_floor(self) -> float:
        return ratio(self.epoch, self.floor)

    @property
    def x_floor_best(self) -> float:
        return ratio(self.best.get("epoch", NAN), self.best.get("floor", NAN))

    @property
    def x_torch_best(self) -> float:
        return ratio(self.best.get("peer", NAN), self.best.get("epoch", NAN))

    @property
    def x_torch(self) -> float:
        return ratio(self.peer, self.epoch)

    @property
    def gflops(self) -> float:
        return gflops(self.flops, self.epoch)
