"""Fully connected layer ``y = x @ W + b``."""

from __future__ import annotations

import math
from typing import Any

from backends.ops import GenericOps

from .._xp import Array
from .activations import ReLU
from .base import Layer

INITS = ("he", "glorot", "normal")


class Linear(Layer):
    """Affine map from ``n_in`` to ``n_out`` features.

    Shapes: ``x (N, n_in) -> y (N, n_out)``; ``W (n_in, n_out)``, ``b (n_out,)``; any real
    floating dtype, the same for inputs and parameters.

    Args:
        init: ``"he"`` (normal, std ``sqrt(2/n_in)``, for ReLU-like activations), ``"glorot"``
            (normal, std ``sqrt(2/(n_in+n_out))``) — both with zero bias — or ``"normal"``:
            every weight *and* bias from N(0, ``std²``), the notebook's N(0, 1) by default.
        input_grad: compute the gradient with respect to ``x`` in :meth:`backward`; a model's
            first layer turns it off and saves a third of the backward matrix products.
        ops: see :class:`~mlp.layers.Layer`.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        bias: bool = True,
        init: str = "he",
        std: float = 1.0,
        input_grad: bool = True,
        ops: GenericOps | None = None,
    ) -> None:
        super().__init__(ops)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}: choose one of {', '.join(INITS)}")
        if n_in < 1 or n_out < 1:
            raise ValueError(f"Linear needs positive sizes, got {n_in} -> {n_out}")
        self.n_in, self.n_out, self.bias, self.init, self.std = n_in, n_out, bias, init, std
        self.input_grad = input_grad
        self._x: Array | None = None

    def config(self) -> dict[str, Any]:
        return {"type": "Linear", "n_in": self.n_in, "n_out": self.n_out, "bias": self.bias,
                "init": self.init, "std": self.std}

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"W": (self.n_in, self.n_out)}
        if self.bias:
            shapes["b"] = (self.n_out,)
        return shapes

    def init_params(self, backend: Any, rng: Any, dtype: Any) -> dict[str, Array]:
        if self.init == "he":
            std = math.sqrt(2.0 / self.n_in)
        elif self.init == "glorot":
            std = math.sqrt(2.0 / (self.n_in + self.n_out))
        else:
            std = self.std
        params = {"W": backend.normal(rng, (self.n_in, self.n_out), std, dtype)}
        if self.bias:
            if self.init == "normal":
                params["b"] = backend.normal(rng, (self.n_out,), std, dtype)
            else:
                params["b"] = backend.zeros((self.n_out,), dtype)
        return params

    def forward(self, x: Array, train: bool = False) -> Array:
        ops = self._ops(x)
        out, y = self._product(ops, x)
        if self.bias:
            y = ops.add(y, self.params["b"], out=out)
        return y

    def forward_relu(self, x: Array, relu: ReLU) -> Array:
        """``relu.forward(self.forward(x))`` with the bias and the ReLU in one pass over the
        output (:meth:`backends.GenericOps.bias_relu`); needs a bias. Pair it with
        :meth:`backward_relu`."""
        ops = self._ops(x)
        out, y = self._product(ops, x)
        return relu.forward_biased(ops, y, self.params["b"], out)

    def backward_relu(self, grad: Array, relu: ReLU) -> Array | None:
        """``self.backward(relu.backward(grad))`` with the ReLU's backward and the bias
        gradient in one pass (:meth:`backends.GenericOps.relu_grad_sum`)."""
        ops = self._ops(grad)
        grad, bias_grad = relu.backward_summed(ops, grad, self.grads.get("b"))
        return self._backward_product(ops, grad, bias_grad)

    def _product(self, ops: GenericOps, x: Array) -> tuple[Array | None, Array]:
        """The output buffer and ``x @ W`` written into it."""
        self._x = x
        out = self._buffers.get(ops, "y", (x.shape[0], self.n_out), x.dtype)
        return out, ops.matmul(x, self.params["W"], out=out)

    def backward(self, grad: Array) -> Array | None:
        """``grad (N, n_out)`` -> ``grad_x (N, n_in)``; fills ``grads["W"]``, ``grads["b"]``."""
        ops = self._ops(grad)
        bias_grad = ops.sum_rows(grad, out=self.grads.get("b")) if self.bias else None
        return self._backward_product(ops, grad, bias_grad)

    def _backward_product(self, ops: GenericOps, grad: Array,
                          bias_grad: Array | None) -> Array | None:
        """Stores ``grads["W"]`` and ``bias_grad`` (in that order); returns the input gradient
        (``None`` without ``input_grad``)."""
        x = self._x
        if x is None:
            raise RuntimeError("Linear.backward called before forward")
        self.grads["W"] = ops.matmul(x.T, grad, out=self.grads.get("W"))
        if bias_grad is not None:
            self.grads["b"] = bias_grad
        if not self.input_grad:
            return None
        out = self._buffers.get(ops, "dx", (grad.shape[0], self.n_in), grad.dtype)
        return ops.matmul(grad, self.params["W"].T, out=out)
