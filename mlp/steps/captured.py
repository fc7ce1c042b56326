"""The training step captured once as a CUDA graph and replayed for every batch.

At small batches a GPU step is launch-bound: dozens of small kernels, each launched from
Python. A CUDA graph records the launches of one step once and replays them with a single
call. :class:`GraphStep` captures the model's own eager step (forward, loss, backward and the
optimizer update, written with the backend's operations) on fixed buffers:

- the batch is copied into captured input buffers before each replay;
- what the host changes from step to step (the optimizer's
  :meth:`~mlp.optimizers.Optimizer.hyper` constants: the learning rate of a schedule, Adam's
  bias corrections) lives in 0-d device arrays filled before each replay, computed on the host
  exactly as the eager step computes them; the update is the optimizer's own rule;
- the new parameters and optimizer state are copied back into the arrays the graph reads, so
  every replay starts from the previous one's result.

One graph per batch size (an epoch's smaller last batch captures a second one). The first
update of a model runs eagerly (it creates SGD's velocity and warms the allocator); a graph
is captured again whenever the parameter or state arrays were replaced (a checkpoint loaded,
an eager step in between). The loss and outputs a replay returns are the graph's own arrays,
overwritten by the next replay: copy them to keep them.

Dropout is not supported (its masks would have to be drawn inside the graph); neither are
custom losses, nor optimizers without an update rule (:func:`unsupported`). The backend must
be able to capture (:attr:`backends.Backend.capture`: PyTorch on CUDA, and CuPy where its
direct cuBLAS products work).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._xp import Array
from ..layers import Dropout
from .compiled import not_built_in, settings_of

if TYPE_CHECKING:
    from ..model import Network


def unsupported(model: Network) -> str | None:
    """Why ``model``'s step cannot be captured as a CUDA graph, or ``None`` when it can."""
    reason = getattr(model.backend, "capture_unsupported", None) or not_built_in(
        model, "a captured step")
    if reason:
        return reason
    if any(isinstance(layer, Dropout) and layer.rate for layer in model.layers):
        return "a captured step does not support dropout"
    return None


@dataclass
class _Captured:
    """One captured step: its replay, input buffers, per-step scalars and results."""

    replay: Callable[[], None]
    x: Array
    y: Array
    scalars: list[Array]
    fixed: str  # the optimizer configuration it was captured for
    arrays: tuple[Array, ...]  # the parameter vector and optimizer state the graph reads
    loss: Array
    out: Array


class GraphStep:
    """``model.train_step`` as a replayed CUDA graph (see the module docstring).

    Calling it does what the eager step does, with the same numbers: it updates the
    parameters, the optimizer's state and update count, and returns the batch loss (0-d) and
    outputs (a :data:`~mlp.model.Step`). ``captures`` and ``replays`` count the graphs captured and
    the steps that replayed one.

    Raises:
        ValueError: the model's step cannot be captured (see :func:`unsupported`).
    """

    def __init__(self, model: Network) -> None:
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"cannot capture the training step as a CUDA graph: {reason}")
        self.model = model
        self._eager = model.eager_step
        self._graphs: dict[tuple[int, ...], _Captured] = {}
        self.captures = 0
        self.replays = 0

    def __call__(self, x: Array, y: Array) -> tuple[Array, Array]:
        model = self.model
        opt = model.optimizer
        if opt.steps == 0:
            return self._eager(x, y)
        scalars, fixed = opt.hyper(), settings_of(opt)
        key = (*x.shape, *y.shape)
        cap = self._graphs.get(key)
        if cap is None or cap.fixed != fixed or not self._current(cap):
            cap = self._graphs[key] = self._capture(x, y, scalars, fixed)
            self.captures += 1
        cap.x[...] = x
        cap.y[...] = y
        for buffer, value in zip(cap.scalars, scalars, strict=True):
            buffer[...] = value
        cap.replay()
        self.replays += 1
        opt.steps += 1
        return cap.loss, cap.out

    def _arrays(self) -> tuple[Array, ...]:
        model = self.model
        return (model.store.flat, *model.optimizer.state_arrays())

    def _current(self, cap: _Captured) -> bool:
        """Whether the graph still reads the model's arrays (none was replaced since)."""
        now = self._arrays()
        return len(now) == len(cap.arrays) and all(
            a is b for a, b in zip(now, cap.arrays, strict=True))

    def _capture(self, x: Array, y: Array, values: tuple[float, ...],
                 fixed: str) -> _Captured:
        model = self.model
        xp, store, backend = model.xp, model.store, model.backend
        opt = model.optimizer
        dev = backend.device
        static_x = xp.empty(x.shape, dtype=x.dtype, device=dev)
        static_y = xp.empty(y.shape, dtype=y.dtype, device=dev)
        static_x[...] = x
        static_y[...] = y
        scalars = [xp.asarray(v, dtype=model.dtype, device=dev) for v in values]
        flat, *state = arrays = self._arrays()
        saved = [xp.asarray(a, copy=True) for a in arrays]

        def step() -> tuple[Array, Array]:
            loss, out = model.gradients(static_x, static_y)
            p, new_state = opt.update(model.ops, flat, store.flat_grad(), tuple(state),
                                      tuple(scalars))
            for old, new in zip(arrays, (p, *new_state), strict=True):
                if new is not old:
                    old[...] = new
            return loss, out

        replay, (loss, out) = backend.capture(step)
        # Capturing records the step without running it; where a capture runs it too, this
        # undoes its update, so that only the replays change the model.
        for a, before in zip(arrays, saved, strict=True):
            a[...] = before
        store.set_flat(flat)
        return _Captured(replay, static_x, static_y, scalars, fixed, arrays, loss, out)
