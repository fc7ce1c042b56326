"""In-place fast paths for NumPy-like libraries (NumPy and CuPy share them).

Each method honours ``out=`` and evaluates the same expressions, in the same order, as
:class:`backends.ops.GenericOps`, so both give the same numbers. The optimizer updates are the
single-pass Numba kernels of :mod:`backends.kernels` when Numba is installed, else the
portable expressions of :class:`GenericOps` (CuPy overrides them with fused kernels).
"""

from __future__ import annotations

from typing import Any

from . import kernels as _kernels
from .ops import AdamConstants, Array, Buffers, GenericOps


class InplaceOps(GenericOps):
    """``GenericOps`` for libraries with NumPy's ``out=`` ufunc protocol.

    Args:
        xp: the array-API namespace; ``module``: the library itself (``numpy``/``cupy``),
            whose ufuncs take ``out=``.
        kernels: use the Numba kernels for the optimizer updates (and the fused elementwise
            passes) when Numba is installed.
    """

    inplace = True

    def __init__(self, xp: Any, module: Any, device: Any = None, kernels: bool = False) -> None:
        super().__init__(xp, device)
        self.np = module
        self.kernels = _kernels.kernels() if kernels and _kernels.available() else None

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Array | None:
        return self.np.empty(shape, dtype=dtype)

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return self.np.matmul(a, b, out=out)

    def add(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return self.np.add(a, b, out=out)

    def relu(self, x: Array, out: Array | None = None) -> Array:
        return self.np.fmax(x, 0, out=out)  # fmax, like the generic where(), maps NaN to 0

    def relu_grad(self, g: Array, y: Array, out: Array | None = None) -> Array:
        np = self.np
        return np.multiply(g, np.greater(y, 0), out=out)

    def bias_relu(self, x: Array, b: Array, out: Array | None = None) -> Array:
        if self._kernel_writes(out, x):
            self.kernels.bias_relu(x, b, out)
            return out
        return self.relu(self.add(x, b, out=out), out=out)

    def relu_grad_sum(
        self, g: Array, y: Array, out: Array | None = None, sums: Array | None = None
    ) -> tuple[Array, Array]:
        if self._kernel_writes(out, g) and sums is not None:
            self.kernels.relu_grad_sum(g, y, out, sums)
            return out, sums
        d = self.relu_grad(g, y, out=out)
        return d, self.sum_rows(d, out=sums)

    def sum_rows(self, x: Array, out: Array | None = None) -> Array:
        return self.np.sum(x, axis=0, out=out)

    def take_rows(self, x: Array, idx: Array, out: Array | None = None) -> Array:
        return self.np.take(x, idx, axis=0, out=out)

    def to_float(self, x: Array, scale: float, dtype: Any, out: Array | None = None) -> Array:
        np = self.np
        if out is None:
            out = np.empty(x.shape, dtype=dtype)
        out[...] = x
        return np.multiply(out, scale, out=out)

    def dropout(self, x: Array, u: Array, rate: float, out: Array | None = None) -> Array:
        np = self.np
        scale = x.dtype.type(1.0 / (1.0 - rate))
        if self._kernel_writes(out, x):
            self.kernels.dropout(x, u, rate, scale, out)
            return out
        out = np.multiply(x, scale, out=out)
        out[u < rate] = 0
        return out

    def one_hot(self, labels: Array, num_classes: int, dtype: Any,
                out: Array | None = None) -> Array:
        if out is None:
            return super().one_hot(labels, num_classes, dtype)
        if self._kernel_writes(out, out):
            self.kernels.one_hot(labels, out)
            return out
        return self.np.equal(labels[:, None], self.np.arange(num_classes), out=out)

    def softmax_xent(self, z: Array, t: Array, k: float, out: Array | None = None,
                     scratch: Buffers | None = None) -> tuple[Array, Array]:
        if out is None or scratch is None:
            return super().softmax_xent(z, t, k)
        np, (n, c) = self.np, z.shape
        col = scratch.get(self, "col", (n, 1), z.dtype)
        tmp = scratch.get(self, "tmp", (n, c), z.dtype)
        logp = np.subtract(z, np.max(z, axis=1, keepdims=True, out=col), out=out)
        col = np.log(np.sum(np.exp(logp, out=tmp), axis=1, keepdims=True, out=col), out=col)
        logp = np.subtract(logp, col, out=logp)
        loss = np.sum(np.multiply(np.multiply(t, logp, out=tmp), -k, out=tmp))
        grad = np.subtract(np.exp(logp, out=logp), t, out=logp)
        return loss, np.multiply(grad, k, out=grad)

    def _kernel_writes(self, out: Array | None, x: Array) -> bool:
        """Whether a 2-D Numba kernel can write ``out`` (Numba present, a buffer given)."""
        return self.kernels is not None and out is not None and x.ndim == 2

    # --- optimizer updates -------------------------------------------------------------

    def sgd_update(
        self,
        p: Array,
        g: Array,
        velocity: Array | None,
        lr: float,
        momentum: float,
        nesterov: bool,
        weight_decay: float,
    ) -> tuple[Array, Array | None]:
        if self.kernels is None:
            p, new_velocity = super().sgd_update(p, g, velocity, lr, momentum, nesterov,
                                                 weight_decay)
            if new_velocity is g:  # the first step's velocity must not alias the gradient buffer
                new_velocity = self.np.array(g, copy=True)
            return p, new_velocity
        first = bool(momentum) and velocity is None
        if first:
            velocity = self.np.zeros_like(p)
        dt = p.dtype.type
        unused = p  # plain SGD keeps no velocity; the loop never touches it
        self.kernels.sgd(p, g, velocity if momentum else unused, dt(lr), dt(momentum),
                         nesterov, dt(weight_decay), first)
        return p, velocity

    def adam_update(
        self, p: Array, g: Array, m: Array, v: Array, k: AdamConstants
    ) -> tuple[Array, Array, Array]:
        if self.kernels is None:
            return super().adam_update(p, g, m, v, k)
        dt = p.dtype.type
        self.kernels.adam(p, g, m, v, *(dt(c) for c in k))
        return p, m, v


__all__ = ["InplaceOps"]
