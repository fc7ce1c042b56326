"""In-place fast paths for NumPy-like libraries (NumPy and CuPy share them).

Each method honours ``out=`` and evaluates the same expressions, in the same order, as
:class:`backends.ops.GenericOps`, so both give the same numbers. The optimizer updates work on
flat parameter vectors in cache-sized chunks, optionally spread over a thread pool (NumPy's ufuncs
release the GIL), which turns about a dozen passes over main memory into one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import compiled as _compiled
from .ops import Array, GenericOps, adam_constants

_CHUNK = 1 << 17  # elements per chunk: the few arrays a chunk touches stay in cache


class InplaceOps(GenericOps):
    """``GenericOps`` for libraries with NumPy's ``out=`` ufunc protocol."""

    inplace = True

    def __init__(
        self, xp: Any, module: Any, device: Any = None, threads: int = 1, compiled: bool = False
    ) -> None:
        super().__init__(xp, device)
        self.np = module
        self.threads = max(1, int(threads))
        self.compiled = None
        if compiled and _compiled.available():
            self.compiled = _compiled.kernels()
        self._pool: ThreadPoolExecutor | None = None
        self._scratch: dict[tuple[Any, int], list[Array]] = {}

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Array:
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

    # --- optimizer updates -------------------------------------------------------------

    def _run_chunked(self, fn: Any, n: int, dtype: Any, nscratch: int) -> None:
        """Call ``fn(start, stop, scratch)`` over ``[0, n)`` in chunks on up to ``threads``
        workers."""
        workers = self.threads if n >= 2 * _CHUNK else 1
        bounds = [n * i // workers for i in range(workers + 1)]

        def run(worker: int) -> None:
            key = (self.np.dtype(dtype), worker)
            scratch = self._scratch.get(key)
            if scratch is None or len(scratch) < nscratch:
                scratch = [self.np.empty(_CHUNK, dtype=dtype) for _ in range(nscratch)]
                self._scratch[key] = scratch
            for start in range(bounds[worker], bounds[worker + 1], _CHUNK):
                stop = min(start + _CHUNK, bounds[worker + 1])
                fn(start, stop, [s[: stop - start] for s in scratch])

        if workers == 1:
            run(0)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mlp-ops")
        for future in [self._pool.submit(run, w) for w in range(workers)]:
            future.result()

    def sgd_update(self, p, g, velocity, lr, momentum, nesterov, weight_decay):
        np = self.np
        if momentum and velocity is None:
            velocity = np.zeros_like(p)
            first = True
        else:
            first = False
        if self.compiled is not None:
            dt = p.dtype.type
            unused = p  # plain SGD keeps no velocity; the loop never touches it
            self.compiled[1](p, g, velocity if momentum else unused, dt(lr), dt(momentum),
                             nesterov, dt(weight_decay), first)
            return p, velocity

        def chunk(a: int, b: int, scratch: list[Array]) -> None:
            gc, pc = g[a:b], p[a:b]
            t, s = scratch
            if weight_decay:
                np.multiply(pc, weight_decay, out=t)
                np.add(gc, t, out=t)
                gc = t
            if momentum:
                vc = velocity[a:b]
                if first:
                    vc[...] = gc
                else:
                    np.multiply(vc, momentum, out=vc)
                    np.add(vc, gc, out=vc)
                if nesterov:
                    np.multiply(vc, momentum, out=s)
                    np.add(gc, s, out=s)
                    step = s
                else:
                    step = vc
            else:
                step = gc
            np.multiply(step, lr, out=s)
            np.subtract(pc, s, out=pc)

        self._run_chunked(chunk, p.shape[0], p.dtype, 2)
        return p, velocity

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled):
        np = self.np
        k = adam_constants(lr, beta1, beta2, eps, step, weight_decay, decoupled)
        l2, shrink, eps_hat, step_size = k["l2"], k["shrink"], k["eps_hat"], k["step_size"]
        if self.compiled is not None:
            dt = p.dtype.type
            self.compiled[0](p, g, m, v, *(dt(k[name]) for name in (
                "l2", "beta1", "c1", "beta2", "c2", "eps_hat", "step_size", "shrink")))
            return p, m, v

        def chunk(a: int, b: int, scratch: list[Array]) -> None:
            pc, gc, mc, vc = p[a:b], g[a:b], m[a:b], v[a:b]
            t, s = scratch
            if l2:
                np.multiply(pc, l2, out=s)
                np.add(gc, s, out=s)
                gc = s
            np.multiply(mc, beta1, out=mc)
            np.multiply(gc, k["c1"], out=t)
            np.add(mc, t, out=mc)
            np.multiply(gc, gc, out=t)
            np.multiply(t, k["c2"], out=t)
            np.multiply(vc, beta2, out=vc)
            np.add(vc, t, out=vc)
            np.sqrt(vc, out=t)
            np.add(t, eps_hat, out=t)
            np.divide(mc, t, out=t)
            np.multiply(t, step_size, out=t)
            if shrink != 1.0:
                np.multiply(pc, shrink, out=pc)
            np.subtract(pc, t, out=pc)

        self._run_chunked(chunk, p.shape[0], p.dtype, 2)
        return p, m, v


def default_threads() -> int:
    """Worker threads for the chunked updates: the CPUs this process may use."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


__all__ = ["InplaceOps", "adam_constants", "default_threads"]
