"""CuPy fast paths: the optimizer updates and dropout as single fused elementwise kernels.

Everything else comes from :class:`backends.inplace_ops.InplaceOps`, which CuPy's NumPy-like
``out=`` ufuncs serve unchanged. The kernels take every constant from the host, rounded to the
array dtype as the portable code rounds them, evaluate the generic expressions in the same
order, and are compiled without fused multiply-adds, so they give the same numbers.
"""

from __future__ import annotations

from typing import Any

from .inplace_ops import InplaceOps
from .ops import AdamConstants, Array

_NO_FMA = ("--fmad=false",)


class CupyOps(InplaceOps):
    """``InplaceOps`` on one CUDA device, with the optimizer updates as fused kernels."""

    def __init__(self, xp: Any, cupy: Any, device: Any) -> None:
        super().__init__(xp, cupy, device)
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
        self._dropout = cupy.ElementwiseKernel(
            "T x, U u, U rate, T scale", "T y", "y = u >= rate ? x * scale : (T)0", "mlp_dropout",
            options=_NO_FMA,
        )

    def dropout(self, x: Array, u: Array, rate: float, out: Array | None = None) -> Array:
        # The rate in the uniforms' dtype and the scale in x's, as the generic expression
        # promotes its Python scalars.
        scale = x.dtype.type(1.0 / (1.0 - rate))
        with self.device:
            args = (x, u, u.dtype.type(rate), scale)
            return self._dropout(*args) if out is None else self._dropout(*args, out)

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Array | None:
        with self.device:
            return self.np.empty(shape, dtype=dtype)

    def adam_update(
        self, p: Array, g: Array, m: Array, v: Array, k: AdamConstants
    ) -> tuple[Array, Array, Array]:
        dt = p.dtype.type
        # Host numbers in the parameters' dtype; a captured step's 0-d device arrays as they are.
        constants = (dt(c) if isinstance(c, float | int) else c for c in k)
        with self.device:
            self._adam(g, *constants, p, m, v)
        return p, m, v

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
        dt = p.dtype.type
        first = bool(momentum) and velocity is None
        with self.device:
            if first:
                velocity = self.np.empty_like(p)
            vel = velocity if momentum else p  # plain SGD keeps no velocity; never written
            self._sgd(g, dt(lr), dt(momentum), bool(nesterov), dt(weight_decay), first, p, vel)
        return p, velocity
