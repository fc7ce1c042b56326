"""A chain of layers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .._xp import Array
from .activations import ReLU
from .base import Layer
from .linear import Linear


class Sequential(Layer):
    """Apply ``layers`` in order; backward runs them in reverse.

    Parameters are named ``"<index>.<name>"``, e.g. ``"0.W"``, ``"0.b"``, ``"2.W"``. A
    :class:`Linear` with a bias followed by a :class:`ReLU` runs as one fused step (its
    ``forward_relu``/``backward_relu``), with the same numbers as the two layers apart.
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
        layers, i = self.layers, 0
        while i < len(layers):
            if self._fused(i):
                x = layers[i].forward_relu(x, layers[i + 1])
                i += 2
            else:
                x = layers[i].forward(x, train=train)
                i += 1
        return x

    def backward(self, grad: Array,
                 after: Callable[[int], None] | None = None) -> Array | None:
        """Back-propagate ``grad`` through the layers in reverse; ``after(i)`` is called as
        soon as layer ``i``'s gradients are complete (e.g. to start summing them across
        processes while the layers before it run)."""
        layers, i = self.layers, len(self.layers) - 1
        while i >= 0 and grad is not None:
            if i > 0 and self._fused(i - 1):
                grad = layers[i - 1].backward_relu(grad, layers[i])
                done = (i, i - 1)
                i -= 2
            else:
                grad = layers[i].backward(grad)
                done = (i,)
                i -= 1
            if after is not None:
                for j in done:
                    after(j)
        return grad

    def _fused(self, i: int) -> bool:
        """Whether layers ``i`` and ``i + 1`` are a biased Linear and a ReLU, run as one."""
        layers = self.layers
        return (i + 1 < len(layers) and type(layers[i]) is Linear and layers[i].bias
                and type(layers[i + 1]) is ReLU)
