"""The Numba kernels: single-pass optimizer updates and elementwise passes for the NumPy backend
and PyTorch's CPU tensors (optional).

The portable update makes about a dozen passes over the parameter vector, one per array
operation; these loops make one, which on a CPU is the difference between the optimizer
costing a third of the matrix products and a tenth. They evaluate the same expressions in the
same order and precision as :class:`backends.ops.GenericOps` (Numba does not contract
``a * b + c`` into fused multiply-adds unless asked), so they give the same numbers; the tests
compare them. Adam's arithmetic is written once, as two element functions (one element's new
moments, and its new parameter given the root of its second moment) that the fused loop and
its two halves all inline. Without Numba (``pip install ".[numba]"``) ``available()`` is
false and the NumPy backend uses the portable update.

Numba's on-disk cache of the kernels goes to a per-user folder (``$NUMBA_CACHE_DIR`` when
set, else ``numba`` in the package's user cache folder), never next to the installed sources;
when no such folder is writable the kernels are compiled without a cache. When writing (or
reading) the cache fails later (a full disk, a file-size limit, a file made read-only), one
warning names the folder and the kernels are compiled again without a cache: a cache never
fails a run. A Numba that fails to import (or does not finish importing) is one warning naming
it, and the portable update is used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from .imports import load

APP_NAME = "array-api-mlp"


class Kernels(NamedTuple):
    """The Numba kernels.

    ``adam(p, g, m, v, *AdamConstants)`` and
    ``sgd(p, g, velocity, lr, momentum, nesterov, weight_decay, first)`` update their array
    arguments in place;
    ``dropout(x, u, rate, scale, out)`` writes ``x * scale`` where ``u >= rate``, else 0, into
    ``out`` (all ``(N, D)``; ``scale`` in ``x``'s dtype); ``bias_relu(x, b, out)`` writes
    ``max(x + b, 0)`` (NaN to 0) for ``x (N, D)``, ``b (D,)``; ``relu_grad_sum(g, y, out, sums)``
    writes ``g * (y > 0)`` and its column sums, added row after row as NumPy's ``sum(axis=0)``
    adds them; ``one_hot(labels, out)`` writes rows of 0/1 for ``(N,)`` integer labels.
    ``adam_moments(p, g, m, v, l2, beta1, c1, beta2, c2)`` and
    ``adam_finish(p, m, root, eps_hat, step_size, shrink)`` are ``adam`` in two halves around
    ``root = sqrt(v)``, for libraries whose square root the update must share (PyTorch's).
    """

    adam: Any
    sgd: Any
    dropout: Any
    bias_relu: Any
    relu_grad_sum: Any
    one_hot: Any
    adam_moments: Any
    adam_finish: Any


def available() -> bool:
    """Whether Numba is installed and imports (a broken one: a warning naming it, once)."""
    return _numba() is not None


_numba_module: Any = None
_numba_error: str | None = None
_numba_checked = False


def _numba() -> Any:
    """The ``numba`` module, or ``None`` when it is not installed or fails to import."""
    global _numba_module, _numba_error, _numba_checked
    if not _numba_checked:
        _numba_checked = True
        if importlib.util.find_spec("numba") is None:
            _numba_error = "Numba is not installed"
        else:
            try:
                _numba_module = load("numba")
            except ImportError as exc:  # BrokenImport, or a dependency of Numba missing
                _numba_error = str(exc)
                warnings.warn(f"the Numba kernels are off: {exc}", RuntimeWarning,
                              stacklevel=4)
    return _numba_module


def status() -> str:
    """Whether the Numba kernels are active, in a few words (for ``mlp info``)."""
    numba = _numba()
    if numba is None:
        return f"off, the portable update ({_numba_error})"
    folder = cache_dir()
    where = f"cached in {folder}" if folder is not None else "no writable cache folder"
    return f"on, Numba {numba.__version__} ({where})"


def cache_dir() -> Path | None:
    """The writable folder for Numba's cache, or ``None`` when there is none."""
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if not chosen:
        import pooch

        chosen = str(pooch.os_cache(APP_NAME) / "numba")
    path = Path(chosen)
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return None
    return path


@contextlib.contextmanager
def _cache_into(folder: Path) -> Iterator[None]:
    """Point Numba's user-provided cache locator at ``folder`` while functions are decorated
    (the locator reads the setting once, when ``njit(cache=True)`` is applied)."""
    from numba.core import config

    saved = config.CACHE_DIR
    config.CACHE_DIR = str(folder)
    try:
        yield
    finally:
        config.CACHE_DIR = saved


#: Numba's options for every loop (``cache`` aside).
_OPTIONS = {"nogil": True, "error_model": "numpy"}


class _Loop:
    """A Numba kernel that, when its on-disk cache cannot be read or written, compiles again
    without one. Numba compiles (and writes the cache) on a call with new argument types,
    before the loop runs, so a call that failed that way has changed nothing and is repeated.
    """

    def __init__(self, dispatcher: Any, folder: Path | None) -> None:
        self._dispatcher = dispatcher
        self._folder = folder

    def __call__(self, *args: Any) -> Any:
        try:
            return self._dispatcher(*args)
        except OSError as exc:
            if self._folder is None:
                raise
            _uncached(self._folder, exc)
            self._folder = None
            self._dispatcher = load("numba").njit(**_OPTIONS)(self._dispatcher.py_func)
            return self._dispatcher(*args)


_warned_lock = threading.Lock()
_warned: set[str] = set()


def _uncached(folder: Path, exc: OSError) -> None:
    """Warn, once per folder, that the kernels' cache in ``folder`` failed."""
    with _warned_lock:
        if str(folder) in _warned:
            return
        _warned.add(str(folder))
    reason = exc.strerror or str(exc) or type(exc).__name__
    warnings.warn(f"{folder}: the Numba kernels' cache cannot be used ({reason}); compiling "
                  "them without a cache (set NUMBA_CACHE_DIR to a writable folder)",
                  RuntimeWarning, stacklevel=3)


def _build() -> Kernels:
    numba = load("numba")
    folder = cache_dir()
    jit = numba.njit(cache=folder is not None, **_OPTIONS)

    def loop(fn: Any) -> _Loop:
        return _Loop(jit(fn), folder)

    # Adam's arithmetic, once: one element's new moments, and its new parameter given the root
    # of its second moment. Inlined into the loops below at Numba's IR level, so they are
    # compiled (and cached) only as part of those loops.
    element = numba.njit(inline="always", **_OPTIONS)

    @element
    def adam_moments_of(gi, pi, mi, vi, l2, b1, c1, b2, c2):  # pragma: no cover
        if l2 != 0:
            gi = gi + l2 * pi
        return b1 * mi + c1 * gi, b2 * vi + c2 * (gi * gi)

    @element
    def adam_step_of(pi, mi, root, eps_hat, step_size, shrink):  # pragma: no cover
        if shrink != 1:
            pi = pi * shrink
        return pi - step_size * (mi / (root + eps_hat))

    def adam(p, g, m, v, l2, b1, c1, b2, c2, eps_hat, step_size, shrink):  # pragma: no cover
        for i in range(p.shape[0]):
            pi = p[i]
            mi, vi = adam_moments_of(g[i], pi, m[i], v[i], l2, b1, c1, b2, c2)
            m[i] = mi
            v[i] = vi
            p[i] = adam_step_of(pi, mi, math.sqrt(vi), eps_hat, step_size, shrink)

    def adam_moments(p, g, m, v, l2, b1, c1, b2, c2):  # pragma: no cover
        for i in range(p.shape[0]):
            m[i], v[i] = adam_moments_of(g[i], p[i], m[i], v[i], l2, b1, c1, b2, c2)

    def adam_finish(p, m, root, eps_hat, step_size, shrink):  # pragma: no cover
        for i in range(p.shape[0]):
            p[i] = adam_step_of(p[i], m[i], root[i], eps_hat, step_size, shrink)

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

    def dropout(x, u, rate, scale, out):  # pragma: no cover
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                out[i, j] = x[i, j] * scale if u[i, j] >= rate else 0

    def bias_relu(x, b, out):  # pragma: no cover
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                z = x[i, j] + b[j]
                out[i, j] = z if z > 0 else 0

    def relu_grad_sum(g, y, out, sums):  # pragma: no cover
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                d = g[i, j] * (1 if y[i, j] > 0 else 0)
                out[i, j] = d
                sums[j] = d if i == 0 else sums[j] + d

    def one_hot(labels, out):  # pragma: no cover
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = 1 if labels[i] == j else 0

    with _cache_into(folder) if folder is not None else contextlib.nullcontext():
        return Kernels(adam=loop(adam), sgd=loop(sgd), dropout=loop(dropout),
                       bias_relu=loop(bias_relu), relu_grad_sum=loop(relu_grad_sum),
                       one_hot=loop(one_hot), adam_moments=loop(adam_moments),
                       adam_finish=loop(adam_finish))


_kernels: Kernels | None = None


def kernels() -> Kernels | None:
    """The Numba kernels (compiled on first use; cached on disk where a folder allows), or
    ``None`` when Numba is not installed or cannot be loaded (see :func:`available`)."""
    global _kernels
    if _kernels is None and available():
        _kernels = _build()
    return _kernels
