"""The training loop: shuffled mini-batches from a dataset on the device, per-epoch metrics, a
stop flag checked after every step, and a state that resumes exactly.

Images stay as they are on the device (uint8 pixels are not copied to floats as a whole);
each batch is gathered and converted to the model dtype in reusable buffers. Shuffling draws
a permutation per epoch from its own seeded host generator, whose state at the start of the
epoch is part of :class:`TrainState`, so an interrupted run resumes on the very batch where it
stopped with bit-identical results.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from backends.ops import Buffers

from ._xp import Array
from .checks import count_argument
from .distributed import Distributed
from .errors import StopRequested, TrainingError
from .inputs import PIXEL_SCALE, DeviceData
from .metrics import Totals
from .steps import choose

if TYPE_CHECKING:
    from .model import Network

__all__ = ["PIXEL_SCALE", "DeviceData", "StopRequested", "TrainState", "Trainer"]


@dataclass
class TrainState:
    """Where a run stands; JSON-able, stored in checkpoints.

    ``epoch`` counts finished epochs; ``batch`` the batches done in the current one;
    ``shuffle_state`` is the shuffling generator's state at the start of the current epoch;
    ``loss_sum``/``correct``/``seen``/``seconds`` accumulate the current epoch so far.
    """

    epoch: int = 0
    batch: int = 0
    shuffle_state: dict[str, Any] | None = None
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        return cls(**data)


class Trainer:
    """Trains ``model`` on ``train`` for ``epochs``, evaluating on ``test`` after each epoch.

    Args:
        batch_size: samples per step; the last batch of an epoch may be smaller.
        seed: seeds the shuffling generator.
        on_epoch: called with the epoch's metrics dict after each epoch.
        progress: a factory ``(total, initial, desc) -> bar`` with ``update(n)``,
            ``set_postfix_str(s)`` and ``close()`` (e.g. tqdm), or ``None``.
        should_stop: polled after every step; when true, :meth:`fit` raises
            :class:`StopRequested` with the state updated to resume from the next step.
        distributed: train data-parallel over its ranks (:class:`~mlp.distributed.Distributed`):
            ``batch_size`` is the global batch, each rank runs its share of it, and every
            rank ends each step with the same parameters. The metrics (timings aside), the
            state and the ``on_epoch`` calls are global and alike on every rank (callers write on
            ``distributed.is_root`` only); stops agree on the step; only rank 0 shows
            ``progress``.
    """

    def __init__(
        self,
        model: Network,
        train: DeviceData,
        test: DeviceData | None,
        batch_size: int = 128,
        epochs: int = 1,
        seed: int | None = 0,
        state: TrainState | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        progress: Callable[..., Any] | None = None,
        should_stop: Callable[[], bool] | None = None,
        distributed: Distributed | None = None,
    ) -> None:
        batch_size, epochs = count_argument("batch_size", batch_size), int(epochs)
        self.distributed = distributed
        if distributed is not None:
            if batch_size < distributed.size:
                raise ValueError(f"the global batch size {batch_size} is smaller than the "
                                 f"{distributed.size} ranks: give every rank a sample")
            seed = distributed.agree_seed(seed)
        self.seed = seed
        if distributed is None and model.step is None:
            choose(model)  # compiled where the backend compiles (JAX), else eager
        self.model, self.train, self.test = model, train, test
        self.batch_size, self.epochs = batch_size, epochs
        self.shuffle_rng = model.backend.rng(seed)
        self.state = state if state is not None else TrainState()
        if self.state.shuffle_state is None:
            self.state.shuffle_state = self.shuffle_rng.bit_generator.state
        self.on_epoch = on_epoch
        self.progress = progress if distributed is None or distributed.is_root else None
        self.should_stop = should_stop or (lambda: False)
        self._buffers = Buffers()
        # Each finiteness check reads the loss on the host: every step where arrays live on the
        # host (it costs nothing there), sparsely on accelerators (each read synchronises).
        self.check_every = 1 if model.backend.is_host else 50

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train.n / self.batch_size)

    def _batch(self, perm: Array, b: int) -> tuple[Array, Array, int]:
        """Batch ``b``: this rank's rows ``(n, D)`` in the model dtype, their labels ``(n,)``,
        and the global batch's size."""
        model, ops = self.model, self.model.backend.ops
        lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.train.n)
        n_global = hi - lo
        if self.distributed is not None:
            lo, hi = (lo + i for i in self.distributed.shard(n_global))
        idx = perm[lo:hi]
        n = idx.shape[0]
        x, y, buffers = self.train.x, self.train.y, self._buffers
        rows = (n, x.shape[1])
        raw = ops.take_rows(x, idx, out=buffers.get(ops, "raw", rows, x.dtype))
        xb = ops.to_float(raw, self.train.scale, model.dtype,
                          out=buffers.get(ops, "x", rows, model.dtype))
        yb = ops.take_rows(y, idx, out=buffers.get(ops, "y", (n,), y.dtype))
        return xb, yb, n_global

    def _step(self, xb: Array, yb: Array, n_global: int) -> tuple[Array, Array]:
        """The model's step on this rank's batch: its loss and outputs."""
        if self.distributed is None:
            return (self.model.step or self.model.eager_step)(xb, yb)
        return self.distributed.train_step(self.model, xb, yb, n_global, self.seed)

    def _poll(self, loss_sum: float = 0.0, correct: int = 0) -> tuple[bool, float, int]:
        """Whether to stop, and the loss and hit sums: over every rank when distributed."""
        stop = self.should_stop()
        if self.distributed is None:
            return stop, loss_sum, correct
        return self.distributed.agree(stop, loss_sum, correct)

    def _check_in_sync(self, when: str) -> None:
        if self.distributed is not None:
            self.distributed.check_in_sync(self.model, when)

    def fit(self) -> list[dict[str, Any]]:
        """Run the remaining epochs; returns the per-epoch metrics (``state.history``).

        Overflow warnings from the array library are silenced: a non-finite loss is detected
        and reported as one :class:`~mlp.errors.TrainingError` instead. Runs inside the
        model's device context."""
        with warnings.catch_warnings(), self.model.backend.activate():
            warnings.filterwarnings("ignore", r"(overflow|invalid value|divide by zero)",
                                    RuntimeWarning)
            return self._fit()

    def _fit(self) -> list[dict[str, Any]]:
        st, model = self.state, self.model
        self._check_in_sync("at the start")
        while st.epoch < self.epochs:
            self.shuffle_rng.bit_generator.state = st.shuffle_state
            perm = model.backend.asarray(model.backend.permutation(self.shuffle_rng, self.train.n))
            self._run_epoch(perm)
            metrics = {
                "epoch": st.epoch + 1,
                "train_loss": st.loss_sum / st.seen,
                "train_acc": st.correct / st.seen,
                "seconds": st.seconds,
                "samples_per_s": st.seen / st.seconds if st.seconds > 0 else float("nan"),
                "lr": model.optimizer.current_lr,
            }
            self._check_in_sync(f"after epoch {st.epoch + 1}")
            if self.test is not None and self.distributed is not None:
                result = self.distributed.evaluate(model, self.test)
            elif self.test is not None:
                result = model.evaluate(self.test.x, self.test.y, scale=self.test.scale)
            if self.test is not None:
                metrics["test_loss"], metrics["test_acc"] = result["loss"], result["accuracy"]
            st.history.append(metrics)
            st.epoch += 1
            st.batch, st.loss_sum, st.correct, st.seen, st.seconds = 0, 0.0, 0, 0, 0.0
            st.shuffle_state = self.shuffle_rng.bit_generator.state
            if self.on_epoch is not None:
                self.on_epoch(metrics)
            if self._poll()[0] and st.epoch < self.epochs:
                raise StopRequested()  # at an epoch boundary: resumes with the next epoch
        return st.history

    def _run_epoch(self, perm: Array) -> None:
        st, model = self.state, self.model
        total = self.steps_per_epoch
        bar = None
        if self.progress is not None:
            bar = self.progress(total=total, initial=st.batch, desc=f"epoch {st.epoch + 1}")
        totals = Totals(model.backend, model.dtype)
        pending = 0  # steps whose loss is not yet checked on the host
        start = time.perf_counter()
        try:
            for b in range(st.batch, total):
                xb, yb, n_global = self._batch(perm, b)
                n = xb.shape[0]
                loss, out = self._step(xb, yb, n_global)
                totals.add(loss, model.loss.sum_factor(n), out, yb)
                st.seen += n_global
                st.batch = b + 1
                pending += 1
                check = pending >= self.check_every or b + 1 == total
                stop, loss_sum, correct = self._poll(*(totals.read() if check else (0.0, 0)))
                if stop and not check:
                    check = True
                    stop, loss_sum, correct = self._poll(*totals.read())
                if check:
                    if not math.isfinite(loss_sum):
                        raise TrainingError(
                            f"the loss became {'NaN' if math.isnan(loss_sum) else 'infinite'} "
                            f"at epoch {st.epoch + 1}, step {b + 1} (within the last {pending} "
                            f"steps) with learning rate {model.optimizer.current_lr:g}: try a "
                            "smaller --lr, a warm-up (--schedule warmup-cosine) or --dtype float64"
                        )
                    st.loss_sum += loss_sum
                    st.correct += correct
                    pending = 0
                    if bar is not None:
                        bar.set_postfix_str(f"loss {st.loss_sum / st.seen:.4f}", refresh=False)
                if bar is not None:
                    bar.update(1)
                if stop and b + 1 < total:
                    raise StopRequested()
        finally:
            model.backend.synchronize()
            st.seconds += time.perf_counter() - start
            if bar is not None:
                bar.close()
