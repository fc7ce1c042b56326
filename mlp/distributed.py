"""Data-parallel training across processes (ranks), each holding the whole model.

One idea, as in Horovod: every rank draws the same seeded permutation and takes its share of
every global batch; after the backward pass one in-place sum of the flat gradient buffer over
all ranks (the store keeps every gradient in one contiguous vector), then every rank runs the
same optimizer update, so the parameters stay identical without ever being sent. A checksum
of the parameters, compared after initialisation and at every epoch end, turns any drift into
a :class:`DriftError`.

The per-rank loss is weighted by its share of the global batch (``n_rank / n_global`` for a
mean loss), so the summed gradient is the single-process gradient of the global batch, uneven
last batch included; only the summation order differs.

Dropout masks come from a stream per rank and step, ``rng((seed, rank, step))``: ranks drop
different units (as one process drops different units for different rows), and a run resumes
exactly on the same number of ranks. Without dropout the run is the single-process run.

The collective itself is the backend's (:mod:`backends.collectives`): this module names no
communication library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from backends.collectives import Communicator, communicator, launcher_size

from ._xp import Array
from .errors import MLPError, StopRequested, TrainingError

__all__ = ["Distributed", "DistributedError", "DriftError", "launcher_ranks"]


class DistributedError(MLPError):
    """Another rank failed; its own error says why."""


class DriftError(TrainingError):
    """The ranks' parameters are no longer identical."""


def launcher_ranks() -> int:
    """How many processes the MPI launcher this process runs under started (1: none)."""
    return launcher_size()


class Distributed:
    """The ranks of one data-parallel run and the collectives training needs.

    Args:
        comm: the communicator (default: every process the launcher started).
        overlap: start summing each layer's gradient slice as soon as the backward pass has
            produced it (non-blocking, on backends whose gradients live in one host buffer),
            and wait before the update; otherwise one sum of the whole buffer per step.
    """

    def __init__(self, comm: Communicator | None = None, overlap: bool = False) -> None:
        self.comm = comm if comm is not None else communicator()
        self.rank, self.size = self.comm.rank, self.comm.size
        self.local_rank = self.comm.local_rank
        self.overlap = bool(overlap)
        self._ranges: dict[int, tuple[int, int]] | None = None
        self.failed_ranks: list[int] = []  # set by together()

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Distributed(rank={self.rank}, size={self.size}, overlap={self.overlap})"

    # --- sharing out the samples --------------------------------------------------------

    def shard(self, n: int) -> tuple[int, int]:
        """This rank's rows ``[lo, hi)`` of ``n``: contiguous, the first ``n % size`` ranks one
        more than the others."""
        base, extra = divmod(int(n), self.size)
        lo = self.rank * base + min(self.rank, extra)
        return lo, lo + base + (1 if self.rank < extra else 0)

    def agree_seed(self, seed: int | None) -> int:
        """``seed``, or rank 0's fresh draw when ``None``, the same on every rank."""
        import secrets

        mine = int(seed) if seed is not None else secrets.randbits(62)
        return int(self.comm.gather_host([mine])[0, 0])

    # --- the step ----------------------------------------------------------------------------

    def train_step(self, model: Any, x: Array, y: Array, n_global: int,
                   seed: int) -> tuple[Array, Array]:
        """Forward, loss and backward on this rank's rows ``x (n, D)``, ``y (n,)`` of a global
        batch of ``n_global``; the gradient summed over ranks; one optimizer update. Returns
        this rank's batch loss (0-d, before the update; 0 for no rows) and outputs."""
        xp, store, n = model.xp, model.store, int(x.shape[0])
        self._reseed_dropout(model, seed)
        if n == 0:  # fewer rows than ranks in the last batch: this rank adds nothing
            loss = xp.zeros((), dtype=model.dtype, device=model.backend.device)
            out = xp.zeros((0, model.sizes[-1]), dtype=model.dtype, device=model.backend.device)
            store.set_grad(xp.zeros((store.size,), dtype=model.dtype, device=model.backend.device))
            self._sum_grads(model)
        else:
            share = model.loss.sum_factor(n) / model.loss.sum_factor(n_global)
            if self.overlap and store.grad is not None:
                loss, out = self._gradients_overlapped(model, x, y, share)
            else:
                loss, out = model.gradients(x, y, share)
                self._sum_grads(model)
        model.optimizer.step()
        return loss, out

    def _sum_grads(self, model: Any) -> None:
        store = model.store
        summed = self.comm.allreduce_(store.flat_grad())
        if store.grad is None:  # the portable path gathers the layers' gradients again
            store.set_grad(summed)

    def _gradients_overlapped(self, model: Any, x: Array, y: Array,
                              share: float) -> tuple[Array, Array]:
        """The model's gradients, each parameterised layer's slice of the flat buffer summed
        in the background (a gradient hook) while the layers before it run backward."""
        ranges, store, started = self._layer_ranges(model), model.store, []

        def sum_layer(i: int) -> None:
            if i in ranges:
                a, b = ranges[i]
                started.append(self.comm.iallreduce_(store.grad[a:b]))

        loss, out = model.gradients(x, y, share, after=sum_layer)
        for request in started:
            request.wait()
        return loss, out

    def _layer_ranges(self, model: Any) -> dict[int, tuple[int, int]]:
        if self._ranges is None:
            self._ranges = model.store.layer_ranges()
        return self._ranges

    def _reseed_dropout(self, model: Any, seed: int) -> None:
        if model.dropout:
            model.use_dropout_rng(
                model.backend.rng([int(seed), self.rank, int(model.optimizer.steps)]))

    # --- agreement ---------------------------------------------------------------------------

    def agree(self, stop: bool, loss_sum: float, correct: int) -> tuple[bool, float, int]:
        """One small collective: whether any rank was asked to stop, and the sums of the
        ranks' loss and correct predictions since the last call."""
        s, loss, hits = self.comm.reduce_host([1.0 if stop else 0.0, loss_sum, correct])
        return bool(s > 0), float(loss), int(round(hits))

    def max(self, value: int) -> int:
        """The largest of the ranks' ``value``."""
        return int(self.comm.reduce_host([value], "max")[0])

    def evaluate(self, model: Any, data: Any) -> dict[str, float]:
        """Mean loss and accuracy over ``data`` (a :class:`~mlp.train.DeviceData`), each rank
        evaluating its shard."""
        lo, hi = self.shard(data.n)
        loss, correct = 0.0, 0
        if hi > lo:
            part = model.evaluate(data.x[lo:hi, ...], data.y[lo:hi], scale=data.scale)
            loss, correct = part["loss"] * (hi - lo), round(part["accuracy"] * (hi - lo))
        _, loss, correct = self.agree(False, loss, correct)
        return {"loss": loss / data.n, "accuracy": correct / data.n}

    def check_in_sync(self, model: Any, when: str) -> None:
        """Compare a checksum of the parameters across ranks.

        Raises:
            DriftError: some rank's parameters differ from rank 0's.
        """
        host = model.backend.to_numpy(model.store.flat)
        digest = hashlib.blake2b(host.tobytes(), digest_size=8).digest()
        sums = self.comm.gather_host([int.from_bytes(digest, "little", signed=True)])[:, 0]
        differ = [r for r in range(self.size) if sums[r] != sums[0]]
        if differ:
            raise DriftError(
                f"the parameters of rank(s) {', '.join(map(str, differ))} differ from rank 0's "
                f"{when}: every rank must build the model from the same seed or checkpoint, "
                "with the same backend and library versions")

    # --- failures ------------------------------------------------------------------------

    @contextmanager
    def together(self) -> Iterator[None]:
        """Run a block (setup: reading data, building the model) on every rank, and fail
        together: a rank whose block raised re-raises its error, the others a
        :class:`DistributedError` naming it; none is left waiting in a collective."""
        error: Exception | None = None
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the agreement
            error = exc
        failed = self.comm.gather_host([error is not None])[:, 0]
        self.failed_ranks = [r for r in range(self.size) if failed[r]]
        if error is not None:
            raise error
        if failed.any():
            ranks = ", ".join(str(r) for r in range(self.size) if failed[r])
            raise DistributedError(f"rank {ranks} failed (its error is reported above)")

    @contextmanager
    def abort_on_error(self, report: Callable[[BaseException], None]) -> Iterator[None]:
        """While training: an error every rank meets at the same step (a stop, a diverged
        loss, drift) propagates; any other one, met by this rank alone while the others wait
        in a collective, is ``report``-ed and ends every rank at once (exit status 1)."""
        try:
            yield
        except (StopRequested, TrainingError, SystemExit):
            raise
        except BaseException as exc:
            report(exc)
            self.comm.abort(130 if isinstance(exc, KeyboardInterrupt) else 1)
            raise

