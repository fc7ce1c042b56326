"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from .._xp import Array, array_namespace, device
from .base import Layer


class Dropout(Layer):
    """Zero each input with probability ``rate`` while training and scale the rest by
    ``1 / (1 - rate)``; identity at evaluation. Shapes ``(N, D) -> (N, D)``.

    The mask comes from the seeded host generator ``rng`` (a model passes its backend's
    ``rng(seed)``; :meth:`build` gives a free-standing layer the one it is built with). With a
    ``backend`` the layer asks :meth:`backends.Backend.keep_mask` for it: on a device backend
    that draws it on the device from one seed per step, so no ``(N, D)`` mask crosses from the
    host each step; ``host_masks=True`` draws it on the host instead, so the same seed drops
    the same units on every backend. Without a backend, and on host backends, the mask is
    always ``rng.random(shape) >= rate``.
    """

    def __init__(
        self, rate: float = 0.5, rng: Any = None, backend: Any = None, host_masks: bool = False
    ) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.rng = rng
        self.backend = backend
        self.host_masks = bool(host_masks)
        self._mask: Array | None = None

    def build(self, backend: Any, rng: Any, dtype: Any = "float32") -> Dropout:
        if self.rng is None:
            self.rng = rng
        if self.backend is None:
            self.backend = backend
        return self

    def config(self) -> dict[str, Any]:
        return {"type": "Dropout", "rate": self.rate}

    def draw_keep(self, shape: tuple[int, ...]) -> Any:
        """The next training mask, true where a unit is kept: the backend's
        :meth:`~backends.Backend.keep_mask` (on its device), or a host boolean array."""
        if self.rng is None:
            raise RuntimeError("Dropout needs a random generator to train: pass rng= "
                               "(e.g. backend.rng(seed)) or build() the layer")
        if self.backend is not None:
            on_device = False if self.host_masks else None
            return self.backend.keep_mask(self.rng, shape, self.rate, on_device=on_device)
        return self.rng.random(shape) >= self.rate

    def forward(self, x: Array, train: bool = False, keep: Array | None = None) -> Array:
        """``keep``: the mask to apply, a boolean array like ``x`` (default: the next
        :meth:`draw_keep`, moved to ``x``'s device); a compiled step passes it in."""
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
