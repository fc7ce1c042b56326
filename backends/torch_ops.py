"""PyTorch fast paths: the portable operations written into ``out=`` buffers and in place.

Each method evaluates :class:`backends.ops.GenericOps`'s expression into preallocated tensors
(``torch.matmul(..., out=)``, ``mul_``, ...), so a steady step allocates almost nothing and the
numbers are the portable path's, bit for bit (the tests compare them). On the CPU, with Numba
installed, the elementwise passes that NumPy runs as Numba kernels (the optimizer updates,
bias + ReLU, dropout) run as the same kernels over the tensors' memory; without it they are
PyTorch operations one at a time in the generic order, the updates in place with reused
scratch vectors. Reductions and square roots stay PyTorch's own, as the portable path computes
them: PyTorch's CPU square root is not always the correctly rounded one, so Adam's Numba
update runs in two halves around ``torch.sqrt``.
"""

from __future__ import annotations

from typing import Any

import numpy

from . import kernels as _kernels
from .ops import AdamConstants, Array, Buffers, GenericOps


class TorchOps(GenericOps):
    """``GenericOps`` for PyTorch tensors, honouring ``out=``.

    Args:
        xp: the array-API namespace (``array_api_compat.torch``); ``torch``: the library.
        kernels: run the elementwise passes as the Numba kernels of :mod:`backends.kernels`
            when Numba is installed (CPU tensors only).
    """

    inplace = True

    def __init__(self, xp: Any, torch: Any, device: Any = None, kernels: bool = True) -> None:
        super().__init__(xp, device)
        self.torch = torch
        on_cpu = device is None or torch.device(device).type == "cpu"
        self.kernels = (_kernels.kernels() if kernels and on_cpu and _kernels.available()
                        else None)
        self._zeros: dict[Any, Array] = {}
        self._scratch: dict[tuple[Any, ...], Array] = {}

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Array | None:
        if isinstance(dtype, str):  # "float64", as NumPy-like libraries take it
            dtype = getattr(self.torch, dtype)
        return self.torch.empty(shape, dtype=dtype, device=self.device)

    def _zero(self, dtype: Any) -> Array:
        """A 0-d zero of ``dtype``."""
        zero = self._zeros.get(dtype)
        if zero is None:
            zero = self._zeros[dtype] = self.torch.zeros((), dtype=dtype, device=self.device)
        return zero

    def _tmp(self, like: Array, slot: int = 0) -> Array:
        """Scratch tensor number ``slot`` shaped like ``like``, reused across calls."""
        key = (tuple(like.shape), like.dtype, slot)
        tmp = self._scratch.get(key)
        if tmp is None:
            tmp = self._scratch[key] = self.torch.empty_like(like)
        return tmp

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return self.torch.matmul(a, b, out=out) if out is not None else a @ b

    def add(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return self.torch.add(a, b, out=out) if out is not None else a + b

    def relu(self, x: Array, out: Array | None = None) -> Array:
        if out is None:
            return super().relu(x)
        # The generic where(x > 0, x, 0): NaN and -0.0 become +0.0 (fmax would keep -0.0).
        return self.torch.where(x > 0, x, self._zero(x.dtype), out=out)

    def relu_grad(self, g: Array, y: Array, out: Array | None = None) -> Array:
        if out is None:
            return super().relu_grad(g, y)
        return self.torch.mul(g, y > 0, out=out)

    def bias_relu(self, x: Array, b: Array, out: Array | None = None) -> Array:
        if out is None:
            return super().bias_relu(x, b)
        if self.kernels is not None and x.ndim == 2:
            self.kernels.bias_relu(_host(x), _host(b), _host(out))
            return out
        return self.relu(self.add(x, b, out=out), out=out)

    def relu_grad_sum(
        self, g: Array, y: Array, out: Array | None = None, sums: Array | None = None
    ) -> tuple[Array, Array]:
        d = self.relu_grad(g, y, out=out)
        return d, self.sum_rows(d, out=sums)

    def sum_rows(self, x: Array, out: Array | None = None) -> Array:
        if out is None:
            return super().sum_rows(x)
        return self.torch.sum(x, dim=0, out=out)

    def take_rows(self, x: Array, idx: Array, out: Array | None = None) -> Array:
        if out is None:
            return super().take_rows(x, idx)
        return self.torch.index_select(x, 0, idx, out=out)

    def to_float(self, x: Array, scale: float, dtype: Any, out: Array | None = None) -> Array:
        if out is None:
            return super().to_float(x, scale, dtype)
        return out.copy_(x).mul_(scale)

    def dropout(self, x: Array, u: Array, rate: float, out: Array | None = None) -> Array:
        if out is None:
            return super().dropout(x, u, rate)
        if self.kernels is not None and x.ndim == 2:
            hx = _host(x)
            self.kernels.dropout(hx, _host(u), rate, hx.dtype.type(1.0 / (1.0 - rate)),
                                 _host(out))
            return out
        out = self.torch.mul(x, 1.0 / (1.0 - rate), out=out)
        return out.masked_fill_(u < rate, 0)

    def one_hot(self, labels: Array, num_classes: int, dtype: Any,
                out: Array | None = None) -> Array:
        if out is None:
            return super().one_hot(labels, num_classes, dtype)
        return out.zero_().scatter_(1, labels[:, None], 1)

    def softmax_xent(self, z: Array, t: Array, k: float, out: Array | None = None,
                     scratch: Buffers | None = None) -> tuple[Array, Array]:
        if out is None or scratch is None:
            return super().softmax_xent(z, t, k)
        torch, (n, c) = self.torch, z.shape
        col = scratch.get(self, "col", (n, 1), z.dtype)
        tmp = scratch.get(self, "tmp", (n, c), z.dtype)
        logp = torch.sub(z, torch.amax(z, dim=1, keepdim=True, out=col), out=out)
        col = torch.log(torch.sum(torch.exp(logp, out=tmp), dim=1, keepdim=True, out=col),
                        out=col)
        logp = logp.sub_(col)
        loss = torch.sum(torch.mul(t, logp, out=tmp).mul_(-k))
        grad = torch.exp(logp, out=logp).sub_(t)
        return loss, grad.mul_(k)

    # --- optimizer updates: in place over the flat vector --------------------------------

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
        if self.kernels is not None:
            first = bool(momentum) and velocity is None
            if first:
                velocity = self.torch.zeros_like(p)
            hp = _host(p)
            dt = hp.dtype.type
            self.kernels.sgd(hp, _host(g), _host(velocity) if momentum else hp, dt(lr),
                             dt(momentum), nesterov, dt(weight_decay), first)
            return p, velocity
        torch, a, b = self.torch, self._tmp(p, 0), self._tmp(p, 1)
        if weight_decay:
            g = torch.mul(p, weight_decay, out=a).add_(g)  # g + wd * p
        if momentum:
            if velocity is None:
                velocity = g.clone()  # v = g, in a tensor of its own
            else:
                velocity.mul_(momentum).add_(g)  # μ v + g
            step = torch.mul(velocity, momentum, out=b).add_(g) if nesterov else velocity
        else:
            step = g
        return p.sub_(torch.mul(step, lr, out=b)), velocity

    def adam_update(
        self, p: Array, g: Array, m: Array, v: Array, k: AdamConstants
    ) -> tuple[Array, Array, Array]:
        if not all(isinstance(c, float) for c in (k.eps_hat, k.step_size, k.shrink)):
            return super().adam_update(p, g, m, v, k)  # a captured step's 0-d constants
        if self.kernels is not None:
            # The Numba halves around PyTorch's square root, which is not always the
            # correctly rounded one (the portable path's numbers are PyTorch's).
            hp, hm = _host(p), _host(m)
            dt = hp.dtype.type
            self.kernels.adam_moments(hp, _host(g), hm, _host(v), dt(k.l2), dt(k.beta1),
                                      dt(k.c1), dt(k.beta2), dt(k.c2))
            root = self.torch.sqrt(v, out=self._tmp(p, 0))
            self.kernels.adam_finish(hp, hm, _host(root), dt(k.eps_hat), dt(k.step_size),
                                     dt(k.shrink))
            return p, m, v
        torch, a, b = self.torch, self._tmp(p, 0), self._tmp(p, 1)
        if k.l2:
            g = torch.mul(p, k.l2, out=a).add_(g)  # g + l2 * p
        m.mul_(k.beta1).add_(torch.mul(g, k.c1, out=b))
        v.mul_(k.beta2).add_(torch.mul(g, g, out=b).mul_(k.c2))
        denom = torch.sqrt(v, out=b).add_(k.eps_hat)
        if k.shrink != 1.0:
            p.mul_(k.shrink)
        return p.sub_(torch.div(m, denom, out=b).mul_(k.step_size)), m, v


def _host(x: Array) -> numpy.ndarray:
    """A NumPy array sharing the memory of CPU tensor ``x`` (for the Numba kernels)."""
    return numpy.asarray(x)


__all__ = ["TorchOps"]
