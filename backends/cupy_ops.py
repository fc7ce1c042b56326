"""CuPy fast paths: the matrix products by direct cuBLAS calls (:mod:`backends.cublas`, which
a CUDA graph can capture), the optimizer updates and dropout as single fused elementwise
kernels.

Everything else comes from :class:`backends.inplace_ops.InplaceOps`, which CuPy's NumPy-like
``out=`` ufuncs serve unchanged. The kernels take every constant from the host, rounded to the
array dtype as the portable code rounds them, evaluate the generic expressions in the same
order, and are compiled without fused multiply-adds, so they give the same numbers.
"""

from __future__ import annotations

import warnings
from typing import Any

from .cublas import DirectGemm
from .inplace_ops import InplaceOps
from .ops import AdamConstants, Array

_NO_FMA = ("--fmad=false",)


class CupyOps(InplaceOps):
    """``InplaceOps`` on one CUDA device, with the matrix products by direct cuBLAS calls and
    the optimizer updates as fused kernels."""

    def __init__(self, xp: Any, cupy: Any, device: Any) -> None:
        super().__init__(xp, cupy, device)
        self._gemm: DirectGemm | None = None
        #: Why the direct products are not used (``None`` until first tried, or while they are).
        self.gemm_failure: str | None = None
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

    def direct_gemm(self) -> DirectGemm | None:
        """The direct cuBLAS products, once they have matched ``cupy.matmul`` on every layout
        and both dtypes (checked on first use); ``None`` where they failed (why:
        :attr:`gemm_failure`; one warning says so, and CuPy's own products run instead)."""
        if self._gemm is None and self.gemm_failure is None:
            try:
                gemm = DirectGemm(self.np, self.device)
                check_against_cupy(gemm, self.np, self.device)
            except Exception as exc:  # noqa: BLE001 - a missing library, a cuBLAS failure
                self.gemm_failure = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"the direct cuBLAS matrix products cannot be used "
                              f"({self.gemm_failure}); CuPy's own run instead, and a CuPy step "
                              "cannot be captured as a CUDA graph", RuntimeWarning, stacklevel=2)
            else:
                self._gemm = gemm
        return self._gemm

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        gemm = self.direct_gemm()
        if gemm is not None and gemm.accepts(a, b, out):
            return gemm(a, b, out)
        return super().matmul(a, b, out)

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


def check_against_cupy(gemm: DirectGemm, cupy: Any, device: Any) -> None:
    """Compare ``gemm`` with ``cupy.matmul`` on small products of every layout in both dtypes,
    into outputs poisoned with NaN (every entry must be written).

    Raises:
        RuntimeError: a product differs beyond rounding.
    """
    rng = cupy.random.default_rng(0)
    with device:
        for dtype, tolerance in (("float32", 1e-4), ("float64", 1e-12)):
            for a_f in (False, True):
                for b_f in (False, True):
                    a = rng.standard_normal((19, 37) if a_f else (37, 19)).astype(dtype)
                    b = rng.standard_normal((23, 19) if b_f else (19, 23)).astype(dtype)
                    a, b = (a.T if a_f else a), (b.T if b_f else b)
                    out = cupy.full((37, 23), cupy.nan, dtype=dtype)
                    got = gemm(a, b, out)
                    if not bool(cupy.allclose(got, cupy.matmul(a, b), rtol=tolerance,
                                              atol=tolerance)):
                        raise RuntimeError(f"the direct product differs from cupy.matmul "
                                           f"({dtype}, {'F' if a_f else 'C'}"
                                           f"{'F' if b_f else 'C'} operands)")
