"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from .._xp import Array, array_namespace, device
from .base import Layer


class Dropout(Layer):
    """Zero each input with probability ``rate`` while training and scale the rest by
    ``1 / (1 - rate)``; identity at evaluation. Shapes ``(N, D) -> (N, D)``.

    The mask comes from a seeded host generator with ``random(shape)`` (``rng``: a model passes
    its backend's ``rng(seed)``; :meth:`build` gives a free-standing layer the one it is
    built with), so the same seed drops the same units on every backend.
    """

    def __init__(self, rate: float = 0.5, rng: Any = None) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.rng = rng
        self._mask: Array | None = None

    def build(self, backend: Any, rng: Any, dtype: Any = "float32") -> Dropout:
        if self.rng is None:
            self.rng = rng
        return self

    def config(self) -> dict[str, Any]:
        return {"type": "Dropout", "rate": self.rate}

    def draw_keep(self, shape: tuple[int, ...]) -> Any:
        """The next training mask: a host boolean array of ``shape``, true where a unit is
        kept."""
        if self.rng is None:
            raise RuntimeError("Dropout needs a random generator to train: pass rng= "
                               "(e.g. backend.rng(seed)) or build() the layer")
        return self.rng.random(shape) >= self.rate

    def forward(self, x: Array, train: bool = False, keep: Array | None = None) -> Array:
        """``keep``: the mask to apply, a boolean array like ``x`` on its device (default:
        :meth:`draw_keep`'s, moved there); a compiled step passes it in."""
        if not train or self.rate == 0.0:
            self._mask = None
            return x
        xp = array_namespace(x)
        if keep is None:
            keep = xp.asarray(self.draw_keep(tuple(x.shape)), device=device(x))
        self._mask = keep
        return xp.where(self._mask, x * (1.0 / (1.0 - self.rate)), xp.zeros_like(x))

    def backward(self, grad: Array) -> Array:
        if self._mask is None:
            return grad
        xp = array_namespace(grad)
        return xp.where(self._mask, grad * (1.0 / (1.0 - self.rate)), xp.zeros_like(grad))
