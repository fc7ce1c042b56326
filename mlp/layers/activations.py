"""Elementwise activations. Shapes: ``x (N, D) -> y (N, D)``, any real floating dtype."""

from __future__ import annotations

import math
from typing import Any

from backends.ops import GenericOps

from .._xp import Array, array_namespace
from .base import Layer


class ReLU(Layer):
    """``max(x, 0)``; its backward passes the gradient where the output is positive."""

    def forward(self, x: Array, train: bool = False) -> Array:
        ops = self._ops(x)
        self._y = ops.relu(x, out=self._buffers.get(ops, "y", tuple(x.shape), x.dtype))
        return self._y

    def backward(self, grad: Array) -> Array:
        ops = self._ops(grad)
        out = self._buffers.get(ops, "dx", tuple(grad.shape), grad.dtype)
        return ops.relu_grad(grad, self._y, out=out)

    def forward_biased(self, ops: GenericOps, x: Array, b: Array, out: Array | None) -> Array:
        """``forward(x + b)`` for ``x (N, D)``, ``b (D,)`` in one pass into ``out``
        (:meth:`backends.GenericOps.bias_relu`): the bias of the :class:`~mlp.layers.Linear`
        before this layer, fused with it."""
        self._y = ops.bias_relu(x, b, out=out)
        return self._y

    def backward_summed(self, ops: GenericOps, grad: Array,
                        sums: Array | None) -> tuple[Array, Array]:
        """``backward(grad)`` and its column sums ``(D,)`` (the bias gradient of the layer
        before) in one pass (:meth:`backends.GenericOps.relu_grad_sum`; ``sums``: where to
        write them)."""
        out = self._buffers.get(ops, "dx", tuple(grad.shape), grad.dtype)
        return ops.relu_grad_sum(grad, self._y, out=out, sums=sums)


class Identity(Layer):
    """``x`` unchanged (a linear network); its backward passes the gradient on."""

    def forward(self, x: Array, train: bool = False) -> Array:
        return x

    def backward(self, grad: Array) -> Array:
        return grad


class LeakyReLU(Layer):
    """``x`` where ``x > 0``, else ``alpha * x``."""

    def __init__(self, alpha: float = 0.01, ops: GenericOps | None = None) -> None:
        super().__init__(ops)
        self.alpha = float(alpha)

    def config(self) -> dict[str, Any]:
        return {"type": "LeakyReLU", "alpha": self.alpha}

    def forward(self, x: Array, train: bool = False) -> Array:
        xp = array_namespace(x)
        self._x = x
        return xp.where(x > 0, x, self.alpha * x)

    def backward(self, grad: Array) -> Array:
        xp = array_namespace(grad)
        return xp.where(self._x > 0, grad, self.alpha * grad)


class Sigmoid(Layer):
    """``1 / (1 + exp(-x))``, evaluated without overflow for large ``|x|``."""

    def forward(self, x: Array, train: bool = False) -> Array:
        xp = array_namespace(x)
        # exp of a non-positive number only: e = exp(-|x|).
        e = xp.exp(-xp.abs(x))
        self._y = xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return self._y

    def backward(self, grad: Array) -> Array:
        y = self._y
        return grad * y * (1.0 - y)


class Tanh(Layer):
    def forward(self, x: Array, train: bool = False) -> Array:
        xp = array_namespace(x)
        self._y = xp.tanh(x)
        return self._y

    def backward(self, grad: Array) -> Array:
        y = self._y
        return grad * (1.0 - y * y)


_GELU_C = math.sqrt(2.0 / math.pi)


class GELU(Layer):
    """Gaussian error linear unit, tanh form (the standard has no ``erf``):
    ``0.5 x (1 + tanh(c (x + 0.044715 x³)))`` with ``c = sqrt(2/π)``."""

    def forward(self, x: Array, train: bool = False) -> Array:
        xp = array_namespace(x)
        self._x = x
        self._t = xp.tanh(_GELU_C * (x + 0.044715 * x * x * x))
        return 0.5 * x * (1.0 + self._t)

    def backward(self, grad: Array) -> Array:
        x, t = self._x, self._t
        dinner = _GELU_C * (1.0 + 3.0 * 0.044715 * x * x)
        return grad * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": GELU,
    "identity": Identity,
}
