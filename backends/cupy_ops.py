"""CuPy fast paths: the optimizer updates as single fused elementwise kernels.

Everything else comes from :class:`backends.inplace_ops.InplaceOps`, which CuPy's NumPy-like
``out=`` ufuncs serve unchanged. The kernels take every constant from the host, rounded to the
array dtype as the portable code rounds them, evaluate the generic expressions in the same
order, and are compiled without fused multiply-adds, so they give the same numbers.
"""

from __future__ import annotations

from typing import Any

from .inplace_ops import InplaceOps
from .ops import adam_constants

_NO_FMA = ("--fmad=false",)


class CupyOps(InplaceOps):
    def __init__(self, xp: Any, cupy: Any, device: Any) -> None:
        super().__init__(xp, cupy, device, threads=1)
        self._adam = cupy.ElementwiseKernel(
            "T g, T l2, T b1, T c1, T b2, T c2, T eps_hat, T step_size, T shrink",
            "T p, T m, T v",
            """
            T gg = l2 != 0 ? g + l2 * p : g;
            m = b1 * m + c1 * gg;
            v = b2 * v + c2 * (gg * gg);
            p = (shrink != 1 ? p * shrink : p) - step_size * (m / (sqrt(v) + eps_hat));
            """,
            "mlp_adam_update",
            options=_NO_FMA,
        )
        self._sgd = cupy.ElementwiseKernel(
            "T g, T lr, T momentum, bool nesterov, T wd, bool first",
            "T p, T vel",
            """
            T gg = wd != 0 ? g + wd * p : g;
            T step = gg;
            if (momentum != 0) {
                T vi = first ? gg : momentum * vel + gg;
                vel = vi;
                step = nesterov ? gg + momentum * vi : vi;
            }
            p = p - lr * step;
            """,
            "mlp_sgd_update",
            options=_NO_FMA,
        )

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Any:
        with self.device:
            return self.np.empty(shape, dtype=dtype)

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled):
        dt = p.dtype.type
        k = adam_constants(lr, beta1, beta2, eps, step, weight_decay, decoupled)
        with self.device:
            self._adam(g, *(dt(k[name]) for name in (
                "l2", "beta1", "c1", "beta2", "c2", "eps_hat", "step_size", "shrink")), p, m, v)
        return p, m, v

    def sgd_update(self, p, g, velocity, lr, momentum, nesterov, weight_decay):
        dt = p.dtype.type
        first = bool(momentum) and velocity is None
        with self.device:
            if first:
                velocity = self.np.empty_like(p)
            vel = velocity if momentum else p  # plain SGD keeps no velocity; never written
            self._sgd(g, dt(lr), dt(momentum), bool(nesterov), dt(weight_decay), first, p, vel)
        return p, velocity
