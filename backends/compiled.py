"""Single-pass optimizer updates compiled with Numba, for the NumPy backend (optional).

The portable update makes about a dozen passes over the parameter vector, one per array
operation; these loops make one, which on a CPU is the difference between the optimizer
costing a third of the matrix products and a tenth. They evaluate the same expressions in the
same order and precision as :class:`backends.ops.GenericOps` (Numba does not contract
``a * b + c`` into fused multiply-adds unless asked), so they give the same numbers; the tests
compare them. Without Numba (``pip install "array-api-mlp[fast]"``) ``available()`` is false
and the NumPy backend uses its chunked ``out=`` code instead.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any


def available() -> bool:
    """Whether Numba is installed (it is imported only when the kernels are first needed)."""
    return importlib.util.find_spec("numba") is not None


def _build() -> tuple[Any, Any]:
    import numba

    jit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @jit
    def adam(p, g, m, v, l2, b1, c1, b2, c2, eps_hat, step_size, shrink):  # pragma: no cover
        for i in range(p.shape[0]):
            gi = g[i]
            pi = p[i]
            if l2 != 0:
                gi = gi + l2 * pi
            mi = b1 * m[i] + c1 * gi
            vi = b2 * v[i] + c2 * (gi * gi)
            m[i] = mi
            v[i] = vi
            if shrink != 1:
                pi = pi * shrink
            p[i] = pi - step_size * (mi / (math.sqrt(vi) + eps_hat))

    @jit
    def sgd(p, g, vel, lr, momentum, nesterov, wd, first):  # pragma: no cover
        for i in range(p.shape[0]):
            gi = g[i]
            if wd != 0:
                gi = gi + wd * p[i]
            step = gi
            if momentum != 0:
                vi = gi if first else momentum * vel[i] + gi
                vel[i] = vi
                step = gi + momentum * vi if nesterov else vi
            p[i] = p[i] - lr * step

    return adam, sgd


_kernels: tuple[Any, Any] | None = None


def kernels() -> tuple[Any, Any]:
    """``(adam, sgd)`` compiled loops (compiled on first use, cached on disk by Numba)."""
    global _kernels
    if _kernels is None:
        _kernels = _build()
    return _kernels
