"""Optimizers over a :class:`~mlp.params.ParameterStore`'s flat parameter vector.

An optimizer is two things (the protocol every step follows, eager, compiled or captured):

- :meth:`Optimizer.hyper`: the host constants of the next update, the numbers that change from
  step to step (the learning rate from the schedule, Adam's bias corrections), in float64;
- :meth:`Optimizer.update`: the rule, ``(ops, p, g, state, hyper) -> (p, state)``, a pure
  function of arrays that calls one update of the backend's operations (portable array-API
  code, with a fused kernel where a backend has one).

:meth:`Optimizer.state_arrays` and :meth:`Optimizer.keep` hand the state to a step and take it
back. A subclass that implements these works in every step; the equations are quoted in each
class.
"""

from __future__ import annotations

from typing import Any

from backends.ops import AdamConstants

from ._xp import Array
from .params import ParameterStore
from .schedules import Constant, Schedule, schedule_from_config
from .schema import LR, MOMENTUM, WEIGHT_DECAY


class Optimizer:
    """Base: holds the base learning rate, a schedule and the update count."""

    def __init__(self, lr: float, schedule: Schedule | None = None, weight_decay: float = 0.0):
        self.lr = float(LR.check(lr))
        self.weight_decay = float(WEIGHT_DECAY.check(weight_decay))
        self.schedule = schedule if schedule is not None else Constant()
        self.steps = 0
        self.store: ParameterStore | None = None

    @property
    def current_lr(self) -> float:
        """The learning rate the next update will use."""
        return self.lr * self.schedule(self.steps)

    def bind(self, store: ParameterStore) -> None:
        """Attach to a model's parameters and allocate the optimizer state."""
        self.store = store

    def hyper(self) -> tuple[Any, ...]:
        """The host constants of the next update (from ``steps`` and the schedule)."""
        return (self.current_lr,)

    def state_arrays(self) -> tuple[Array, ...]:
        """The state the next update reads, as a tuple of device arrays (maybe empty)."""
        return tuple(self.state().values())

    def update(self, ops: Any, p: Array, g: Array, state: tuple[Array, ...],
               hyper: tuple[Any, ...]) -> tuple[Array, tuple[Array, ...]]:
        """The update rule: new parameters and state from the flat parameters ``p``, gradient
        ``g``, the state and the host constants (numbers, or traced or 0-d arrays in a compiled
        or captured step). No side effects: the step keeps the results."""
        raise NotImplementedError(f"{type(self).__name__} defines no update rule")

    def keep(self, state: tuple[Array, ...]) -> None:
        """Take back the state an update returned, and count the update."""
        self.steps += 1

    def step(self) -> None:
        """Apply one update from the store's current gradient (the eager step)."""
        store = self.store
        p, state = self.update(store.backend.ops, store.flat, store.flat_grad(),
                               self.state_arrays(), self.hyper())
        if p is not store.flat:
            store.set_flat(p)
        self.keep(state)

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "lr": self.lr, "weight_decay": self.weight_decay,
                "schedule": self.schedule.config()}

    def state(self) -> dict[str, Array]:
        """Name -> device array of the optimizer's buffers (empty when stateless)."""
        return {}

    def state_shapes(self, size: int) -> dict[str, tuple[int, ...]]:
        """Name -> shape of each buffer :meth:`state` holds after ``self.steps`` updates of
        ``size`` parameters (what a checkpoint of this optimizer must contain)."""
        return {}

    def load_state(self, steps: int, buffers: dict[str, Array]) -> None:
        """Restore the update count and buffers (same names as :meth:`state`)."""
        self.steps = int(steps)


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's formulation:

    ``g += wd * p``; with momentum ``μ``: ``v = μ v + g`` (``v = g`` on the first step) and the
    step is ``v``, or ``g + μ v`` with Nesterov; ``p -= lr * step``.
    """

    def __init__(self, lr: float = 0.1, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, schedule: Schedule | None = None) -> None:
        super().__init__(lr, schedule, weight_decay)
        MOMENTUM.check(momentum)
        if nesterov and not momentum:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.velocity: Array | None = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def update(self, ops: Any, p: Array, g: Array, state: tuple[Array, ...],
               hyper: tuple[Any, ...]) -> tuple[Array, tuple[Array, ...]]:
        p, velocity = ops.sgd_update(p, g, state[0] if state else None, hyper[0],
                                     self.momentum, self.nesterov, self.weight_decay)
        return p, () if velocity is None else (velocity,)

    def keep(self, state: tuple[Array, ...]) -> None:
        self.velocity = state[0] if state else None
        super().keep(state)

    def state(self) -> dict[str, Array]:
        return {} if self.velocity is None else {"velocity": self.velocity}

    def state_shapes(self, size: int) -> dict[str, tuple[int, ...]]:
        # The velocity is created by the first update (``v = g``), and only with momentum.
        return {"velocity": (size,)} if self.momentum and self.steps else {}

    def load_state(self, steps: int, buffers: dict[str, Array]) -> None:
        super().load_state(steps, buffers)
        self.velocity = buffers.get("velocity")


class Adam(Optimizer):
    """Adam (Kingma & Ba), with L2 weight decay added to the gradient:

    ``g += wd * p``; ``m = β1 m + (1-β1) g``; ``v = β2 v + (1-β2) g²``;
    ``p -= lr * m̂ / (sqrt(v̂) + eps)`` with ``m̂ = m / (1-β1^t)``, ``v̂ = v / (1-β2^t)`` and ``t``
    counting from 1 (evaluated in the paper's efficient form, see ``backends.ops``).
    """

    decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 schedule: Schedule | None = None) -> None:
        super().__init__(lr, schedule, weight_decay)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)
        self.m: Array | None = None
        self.v: Array | None = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "betas": list(self.betas), "eps": self.eps}

    def bind(self, store: ParameterStore) -> None:
        super().bind(store)
        xp = store.xp
        if self.m is None or self.m.shape != store.flat.shape:
            self.m = xp.zeros_like(store.flat)
            self.v = xp.zeros_like(store.flat)

    def hyper(self) -> tuple[Any, ...]:
        """``(eps_hat, step_size, shrink)`` of the next update (``t = steps + 1``)."""
        k = AdamConstants.of(self.current_lr, *self.betas, self.eps, self.steps + 1,
                             self.weight_decay, self.decoupled)
        return (k.eps_hat, k.step_size, k.shrink)

    def update(self, ops: Any, p: Array, g: Array, state: tuple[Array, ...],
               hyper: tuple[Any, ...]) -> tuple[Array, tuple[Array, ...]]:
        b1, b2 = self.betas
        eps_hat, step_size, shrink = hyper
        shrinks = self.decoupled and self.weight_decay
        l2 = self.weight_decay if (self.weight_decay and not self.decoupled) else 0.0
        k = AdamConstants(l2, b1, 1.0 - b1, b2, 1.0 - b2, eps_hat, step_size,
                          shrink if shrinks else 1.0)
        p, m, v = ops.adam_update(p, g, state[0], state[1], k)
        return p, (m, v)

    def keep(self, state: tuple[Array, ...]) -> None:
        self.m, self.v = state
        super().keep(state)

    def state(self) -> dict[str, Array]:
        return {"m": self.m, "v": self.v}

    def state_shapes(self, size: int) -> dict[str, tuple[int, ...]]:
        return {"m": (size,), "v": (size,)}

    def load_state(self, steps: int, buffers: dict[str, Array]) -> None:
        super().load_state(steps, buffers)
        self.m, self.v = buffers["m"], buffers["v"]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd`` before
    the Adam step, instead of adding ``wd * p`` to the gradient."""

    decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2,
                 schedule: Schedule | None = None) -> None:
        super().__init__(lr, betas, eps, weight_decay, schedule)


OPTIMIZERS: dict[str, type[Optimizer]] = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


def optimizer_from_config(config: dict[str, Any]) -> Optimizer:
    kwargs = dict(config)
    kind = kwargs.pop("type")
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}")
    kwargs["schedule"] = schedule_from_config(kwargs.pop("schedule", {"type": "Constant"}))
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return OPTIMIZERS[kind](**kwargs)
