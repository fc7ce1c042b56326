"""Standalone softmax, as the notebook MLP used it before a cross-entropy on probabilities."""

from __future__ import annotations

from .._xp import Array, array_namespace
from .base import Layer


def log_softmax(z: Array, xp: object) -> Array:
    """Row-wise ``log(softmax(z))`` for ``z (N, C)``, stable for any magnitude."""
    shifted = z - xp.max(z, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


class Softmax(Layer):
    """Row-wise softmax ``(N, C) -> (N, C)``.

    Backward is the Jacobian-vector product ``dx = y * (g - sum(g * y, axis=1))``, without
    forming the ``C x C`` Jacobian.
    """

    def forward(self, x: Array, train: bool = False) -> Array:
        xp = array_namespace(x)
        e = xp.exp(x - xp.max(x, axis=1, keepdims=True))
        self._y = e / xp.sum(e, axis=1, keepdims=True)
        return self._y

    def backward(self, grad: Array) -> Array:
        xp = array_namespace(grad)
        y = self._y
        return y * (grad - xp.sum(grad * y, axis=1, keepdims=True))
