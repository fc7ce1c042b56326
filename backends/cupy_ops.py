"""CuPy fast paths: the optimizer updates as single fused elementwise kernels.

Everything else comes from :class:`backends.inplace_ops.InplaceOps`, which CuPy's NumPy-like
``out=`` ufuncs serve unchanged. The kernels evaluate the generic expressions in the same order.
"""

from __future__ import annotations

from typing import Any

from .inplace_ops import InplaceOps


class CupyOps(InplaceOps):
    def __init__(self, xp: Any, cupy: Any, device: Any) -> None:
        super().__init__(xp, cupy, device, threads=1)
        self._adam = cupy.ElementwiseKernel(
            "T g, T l2, T b1, T b2, T eps_hat, T step_size, T shrink",
            "T p, T m, T v",
            """
            T gg = l2 != 0 ? g + p * l2 : g;
            m = m * b1 + gg * (1 - b1);
            v = v * b2 + (gg * gg) * (1 - b2);
            T step = (m / (sqrt(v) + eps_hat)) * step_size;
            p = (shrink != 1 ? p * shrink : p) - step;
            """,
            "mlp_adam_update",
        )

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled):
        dt = p.dtype.type
        l2 = weight_decay if (weight_decay and not decoupled) else 0.0
        shrink = 1.0 - lr * weight_decay if (weight_decay and decoupled) else 1.0
        sqrt_bc2 = (1.0 - beta2**step) ** 0.5
        step_size = lr * sqrt_bc2 / (1.0 - beta1**step)
        self._adam(
            g, dt(l2), dt(beta1), dt(beta2), dt(eps * sqrt_bc2), dt(step_size), dt(shrink),
            p, m, v,
        )
        return p, m, v
