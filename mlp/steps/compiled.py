"""The training step compiled as one function, on backends that compile (JAX: ``jax.jit``).

The compiled step is the eager one: the model's layers run forward and backward, its loss,
and the optimizer's update from the backend's operations, traced once as a pure function

    (flat parameters, optimizer state, x, y, dropout masks, per-step scalars)
        -> (new flat parameters, new optimizer state, loss, outputs, new parameters by name)

Everything the host changes from one step to the next is an argument, so one trace serves
every step: the learning rate (schedules), Adam's bias-corrected constants (computed on the
host in float64, exactly as the eager step computes them, and passed as Python numbers, which
the compiled arithmetic rounds to the model dtype as the eager arithmetic does) and the
dropout masks (host arrays drawn from the layer's generator in the same order as the eager
step draws them). Settings fixed by the optimizer's configuration are compiled in. A new batch
shape (an epoch's smaller last batch) traces once more.

The step consumes the previous parameter vector and optimizer state (their buffers are donated
to the new ones, so the update runs in place): keep copies of them, not references, across
steps. The parameters by name (``model.parameters()``) are arrays of their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._xp import Array
from ..layers import Dropout, Linear
from ..losses import LOSSES
from ..optimizers import Optimizer

if TYPE_CHECKING:
    from ..model import Network

State = tuple[Array, ...]


def unsupported(model: Network) -> str | None:
    """Why ``model``'s step cannot be compiled, or ``None`` when it can."""
    if getattr(model.backend, "jit", None) is None:
        return f"backend {model.backend.name!r} does not compile steps (use --backend jax)"
    return not_built_in(model, "the compiled step")


def not_built_in(model: Network, step: str) -> str | None:
    """Why ``step`` (a compiled or captured step) cannot take ``model``'s optimizer or loss:
    the optimizer must follow the update protocol (:meth:`~mlp.optimizers.Optimizer.update`),
    the loss be a built-in one."""
    opt = model.optimizer
    if type(opt).update is Optimizer.update:
        return (f"{step} needs an optimizer with an update rule (Optimizer.update); "
                f"{type(opt).__name__} defines none")
    if type(model.loss) not in LOSSES.values():
        return (f"{step} supports the built-in losses {', '.join(LOSSES)}, not "
                f"{type(model.loss).__name__}")
    return None


def settings_of(opt: Optimizer) -> str:
    """The optimizer's configuration as a hashable key: a step compiled or captured for one
    configuration is traced again for another."""
    return json.dumps(opt.config(), sort_keys=True, default=str)


def compiled_step(model: Network, jit: bool | None) -> CompiledStep | None:
    """The compiled step for ``model``: with ``jit=None`` where the backend compiles and the
    loss and optimizer allow it, with ``True`` always (a ``ValueError`` where it cannot), with
    ``False`` never (``None``)."""
    if jit is False or (jit is None and unsupported(model) is not None):
        return None
    return CompiledStep(model)


class CompiledStep:
    """``model.train_step`` as one compiled function (see the module docstring).

    Calling it does what the eager step (:meth:`~mlp.model.Network.eager_step`) does: it
    updates the model's parameters, the optimizer's state and update count, and returns the
    batch loss (0-d) and outputs (a :data:`~mlp.model.Step`). The layers keep no gradients
    afterwards (they stay inside the compiled function).

    Raises:
        ValueError: the model's step cannot be compiled (see :func:`unsupported`).
    """

    def __init__(self, model: Network) -> None:
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"cannot compile the training step: {reason}")
        self.model = model
        self._compiled: Callable[..., Any] | None = None
        self._traced_for: tuple[Any, ...] = ()
        self._dropouts: list[tuple[Dropout, int]] = []
        width = model.sizes[0]
        for layer in model.layers:
            if isinstance(layer, Linear):
                width = layer.n_out
            elif isinstance(layer, Dropout) and layer.rate:
                self._dropouts.append((layer, width))

    def __call__(self, x: Array, y: Array) -> tuple[Array, Array]:
        """One step on ``x (N, sizes[0])`` in the model dtype and labels ``y`` (as for
        :meth:`~mlp.MLP.train_step`); returns the loss (0-d) and the outputs."""
        model = self.model
        backend, opt, store = model.backend, model.optimizer, model.store
        if self._traced_for != (model.loss, opt):
            # Another loss or optimizer object: trace afresh rather than reuse its settings.
            reason = unsupported(model)
            if reason is not None:
                raise ValueError(f"cannot compile the training step: {reason}; run it "
                                 "eagerly (mlp.steps.choose(model, jit=False))")
            self._compiled = backend.jit(self._step, static_argnames=("settings",),
                                         donate_argnums=(0, 1))
            self._traced_for = (model.loss, opt)
        n = x.shape[0]
        # Host masks and numbers go straight in: the call moves them with its other arguments.
        masks = tuple(layer.draw_keep((n, width)) for layer, width in self._dropouts)
        before = store.flat
        try:
            flat, state, loss, out, views = self._compiled(
                before, opt.state_arrays(), x, y, masks, tuple(opt.hyper()),
                settings=settings_of(opt))
        except BaseException:
            store.set_flat(before)  # the trace left its placeholders in the layers
            for layer, _ in self._dropouts:
                layer.feed(None)  # and perhaps a fed mask no forward took
            raise
        store.set_flat(flat, views)
        opt.keep(state)
        for layer in model.layers:
            layer.grads.clear()
        return loss, out

    def _step(self, flat: Array, state: State, x: Array, y: Array, masks: tuple[Array, ...],
              hyper: tuple[float, ...], settings: str
              ) -> tuple[Array, State, Array, Array, dict[str, Array]]:
        """The pure function that is traced: the model's own forward, loss, backward and
        update on placeholders."""
        model = self.model
        model.store.set_flat(flat)
        for (layer, _), keep in zip(self._dropouts, masks, strict=True):
            layer.feed(keep)
        loss, out = model.gradients(x, y)
        flat, state = model.optimizer.update(model.ops, flat, model.store.flat_grad(), state,
                                             hyper)
        model.store.set_flat(flat)
        return flat, state, loss, out, model.store.named()
