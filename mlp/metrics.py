"""Sums of a loss and of correct predictions over batches, kept on the device.

Adding a batch costs two small device operations and no read-back; :meth:`Totals.read` brings
both sums to the host at once (one synchronisation), when the caller wants them: after a set
for an evaluation, every few steps while training.
"""

from __future__ import annotations

from typing import Any

from ._xp import Array


def hits(xp: Any, outputs: Array, labels: Array) -> Array:
    """How many rows of ``outputs (n, C)`` have their largest entry at the integer label
    ``labels (n,)``: a 0-d int64 array of namespace ``xp``."""
    return xp.sum(xp.astype(xp.argmax(outputs, axis=1) == labels, xp.int64))


class Totals:
    """The summed loss (0-d, in ``dtype``) and hit count (0-d int64) of the batches added since
    the last :meth:`read`, on ``backend``'s device."""

    def __init__(self, backend: Any, dtype: Any) -> None:
        self.backend, self.dtype = backend, dtype
        self._reset()

    def _reset(self) -> None:
        xp, device = self.backend.xp, self.backend.device
        self.loss = xp.zeros((), dtype=self.dtype, device=device)
        self.correct = xp.zeros((), dtype=xp.int64, device=device)

    def add(self, loss: Array, weight: float, outputs: Array, labels: Array) -> None:
        """One batch: its loss (0-d) times ``weight`` (the loss's batch factor, see
        :meth:`~mlp.losses.Loss.sum_factor`), and the rows of ``outputs (n, C)`` whose largest entry
        is at the integer label ``labels (n,)``."""
        self.loss = self.loss + loss * weight
        self.correct = self.correct + hits(self.backend.xp, outputs, labels)

    def read(self) -> tuple[float, int]:
        """The sums on the host, which then start again from zero."""
        to_numpy = self.backend.to_numpy
        sums = float(to_numpy(self.loss)), int(to_numpy(self.correct))
        self._reset()
        return sums
