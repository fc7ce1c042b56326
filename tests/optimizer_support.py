"""An optimizer of a user's own, for the tests that run it in every kind of step."""

from __future__ import annotations

from typing import Any

from mlp import Optimizer


class SoftSign(Optimizer):
    """A user's optimizer following the protocol (portable array-API code only): an average
    of the gradients, ``v = μ v + (1-μ) g``, and a step bounded by the learning rate,
    ``p -= lr * tanh(v)``."""

    def __init__(self, lr: float, mu: float = 0.9) -> None:
        super().__init__(lr)
        self.mu, self.v = mu, None

    def bind(self, store: Any) -> None:
        super().bind(store)
        self.v = store.xp.zeros_like(store.flat)

    def state(self) -> dict[str, Any]:
        return {"v": self.v}

    def update(self, ops: Any, p: Any, g: Any, state: tuple, hyper: tuple) -> tuple:
        xp = ops.xp
        v = self.mu * state[0] + (1.0 - self.mu) * g
        return p - hyper[0] * xp.tanh(v), (v,)

    def keep(self, state: tuple) -> None:
        (self.v,) = state
        super().keep(state)
