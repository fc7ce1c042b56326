"""A chain of layers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .._xp import Array
from .base import Layer


class Sequential(Layer):
    """Apply ``layers`` in order; backward runs them in reverse.

    Parameters are named ``"<index>.<name>"``, e.g. ``"0.W"``, ``"0.b"``, ``"2.W"``.
    """

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__()
        self.layers = list(layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def config(self) -> dict[str, Any]:
        return {"type": "Sequential", "layers": [layer.config() for layer in self.layers]}

    def named_param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            f"{i}.{name}": shape
            for i, layer in enumerate(self.layers)
            for name, shape in layer.param_shapes().items()
        }

    def build(self, backend: Any, rng: Any, dtype: Any = "float32") -> Sequential:
        for layer in self.layers:
            layer.build(backend, rng, dtype)
        return self

    def named_params(self) -> dict[str, Array]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.params.items()}

    def named_grads(self) -> dict[str, Array]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.grads.items()}

    def forward(self, x: Array, train: bool = False) -> Array:
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def backward(self, grad: Array) -> Array | None:
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
            if grad is None:
                break
        return grad
