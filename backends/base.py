"""The backend object: one array library on one device."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import numpy

from .errors import BackendError
from .ops import Array, GenericOps

DTYPES = ("float32", "float64")


class Backend:
    """An array library bound to a device.

    Attributes:
        name: registry name (``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``).
        xp: the array-API namespace (via ``array_api_compat`` where the library needs it).
        device: the device arrays are created on.
        ops: array operations, in-place where the library allows (:mod:`backends.ops`).
        is_host: arrays live in host memory, so reading a scalar back costs no device
            synchronisation (NumPy, array-api-strict, PyTorch on CPU).

    ``activate`` makes a context manager that makes ``device`` the library's current device
    (CuPy: ``cupy.cuda.Device(i)``); ``None`` for libraries that need none. ``uniform(seed,
    shape)`` draws float32 samples in [0, 1) on the device from a 64-bit seed; ``None`` where
    random numbers come from the host. ``capture(fn)`` records the device work of ``fn()`` as
    a CUDA graph and returns ``(replay, fn's result)``; ``None`` where the library cannot (see
    :attr:`capture_unsupported`), and ``capture_check()`` says why it cannot here and now
    (``None`` when it can).
    """

    def __init__(
        self,
        name: str,
        xp: Any,
        device: Any,
        ops: GenericOps,
        dtypes: tuple[str, ...] = DTYPES,
        to_numpy: Callable[[Array], numpy.ndarray] | None = None,
        synchronize: Callable[[], None] | None = None,
        version: str = "",
        is_host: bool = True,
        set_threads: Callable[[int], None] | None = None,
        activate: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        uniform: Callable[[int, tuple[int, ...]], Array] | None = None,
        capture: Callable[[Callable[[], Any]], tuple[Callable[[], None], Any]] | None = None,
        no_capture_reason: str | None = None,
        capture_check: Callable[[], str | None] | None = None,
    ) -> None:
        self.name = name
        self.xp = xp
        self.device = device
        self.ops = ops
        self.dtypes = dtypes
        self.version = version
        self.is_host = is_host
        self._to_numpy = to_numpy
        self._synchronize = synchronize
        self._set_threads = set_threads
        self._activate = activate
        self._uniform = uniform
        self._capture = capture
        self._no_capture_reason = no_capture_reason
        self._capture_check = capture_check

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"

    def with_ops(self, ops: GenericOps) -> Backend:
        """The same library and device with other operations, e.g. ``GenericOps`` for the
        portable path on an in-place library."""
        clone = copy.copy(self)
        clone.ops = ops
        return clone

    def activate(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which :attr:`device` is the library's current device.

        Every entry point that creates or touches arrays (model construction, training steps,
        evaluation, prediction, restoring a checkpoint, the trainer's epochs) runs inside it:
        some libraries create arrays on their *current* device whatever ``device=`` says (CuPy
        through array-api-compat), so nothing may rely on a device selected once per process
        or thread. Re-entrant; a no-op for libraries with a single device."""
        return self._activate() if self._activate is not None else contextlib.nullcontext()

    @property
    def capture_unsupported(self) -> str | None:
        """Why this backend cannot capture CUDA graphs (:meth:`capture`), ``None`` if it can."""
        if self._capture is not None:
            return self._capture_check() if self._capture_check is not None else None
        return self._no_capture_reason or (
            f"backend {self.name!r} on {self.device} has no CUDA graphs; use --backend torch "
            "--device cuda")

    def capture(self, fn: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
        """Record the device work of ``fn()`` as a CUDA graph, on this backend's device.

        Returns ``(replay, result)``: ``result`` is what ``fn`` returned, arrays the graph
        writes; ``replay()`` runs the recorded work again, after the work queued on the current
        stream and before what is queued there next, reading and writing the same arrays.
        Capturing may run the work once first (a warm-up, on CuPy): the caller restores what
        it must not change.

        Raises:
            BackendError: the backend cannot capture (:attr:`capture_unsupported`).
        """
        if self._capture is None:
            raise BackendError(str(self.capture_unsupported))
        with self.activate():
            return self._capture(fn)

    def set_threads(self, n: int) -> None:
        """Use at most ``n`` CPU threads for the library's math (BLAS/OpenMP pools, and the
        library's own pool where it has one)."""
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(n))
        if self._set_threads is not None:
            self._set_threads(int(n))

    # --- dtypes ------------------------------------------------------------------------

    def dtype(self, name: Any) -> Any:
        """The library's dtype object for ``"float32"``/``"float64"`` (or a dtype already)."""
        if not isinstance(name, str):
            return name
        if name not in DTYPES:
            raise BackendError(f"unknown dtype {name!r}: choose one of {', '.join(DTYPES)}")
        if name not in self.dtypes:
            raise BackendError(
                f"backend {self.name!r} on device {self.device!r} has no {name}: "
                f"choose --dtype {self.dtypes[0]}"
            )
        return getattr(self.xp, name)

    def dtype_name(self, dtype: Any) -> str:
        """Inverse of :meth:`dtype`."""
        for name in DTYPES:
            if dtype == getattr(self.xp, name):
                return name
        raise BackendError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")

    # --- arrays --------------------------------------------------------------------------

    def asarray(self, host: Any, dtype: Any = None, copy: bool = False) -> Array:
        """Host data (NumPy array or nested lists) on this backend's device.

        ``dtype`` is a name, a dtype of this library, or ``None`` to keep the host dtype (host
        floats of a dtype the device lacks, float64 on a device without it, become its widest
        float). On a host backend the result may share memory with ``host``; ``copy=True``
        guarantees a fresh, writable, C-contiguous array (one the in-place kernels may write
        into).
        """
        host = numpy.array(host, order="C", copy=True) if copy else numpy.asarray(host)
        if dtype is None and host.dtype.name in DTYPES and host.dtype.name not in self.dtypes:
            dtype = self.dtypes[-1]
        if dtype is not None:
            dtype = self.dtype(dtype) if isinstance(dtype, str) else dtype
            # Cast floats on the host: the device may not have the host's dtype (float64).
            name = next((n for n in self.dtypes if dtype == getattr(self.xp, n)), None)
            if name is not None:
                host = host.astype(name, copy=False)
        if not host.flags.c_contiguous:
            host = numpy.ascontiguousarray(host)
        x = self.xp.asarray(host, device=self.device)
        if dtype is not None and x.dtype != dtype:
            x = self.xp.astype(x, dtype)
        return x

    def to_numpy(self, x: Array) -> numpy.ndarray:
        """A host NumPy copy (or view, for NumPy itself) of ``x``."""
        if self._to_numpy is not None:
            return self._to_numpy(x)
        return numpy.asarray(x)

    def host_view(self, x: Array) -> numpy.ndarray:
        """A NumPy array sharing the memory of ``x``, an array of a host backend (NumPy, PyTorch
        on CPU): what is written into it lands in ``x``. Not a transfer."""
        return numpy.asarray(x)

    def to_host_copy(self, x: Array) -> numpy.ndarray:
        """A host NumPy array of ``x`` that the caller owns: writable, C-contiguous and
        sharing no memory with ``x``."""
        return numpy.array(self.to_numpy(x), order="C", copy=True)

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Array:
        with self.activate():
            return self.xp.zeros(shape, dtype=self.dtype(dtype), device=self.device)

    # --- random numbers ------------------------------------------------------------------

    @staticmethod
    def rng(seed: int | None) -> numpy.random.Generator:
        """A seeded host generator; every backend draws from it, so same seed ⇒ same numbers."""
        return numpy.random.default_rng(seed)

    def normal(
        self, rng: numpy.random.Generator, shape: tuple[int, ...], std: float, dtype: Any
    ) -> Array:
        """Normal(0, std²) samples, drawn in float64 on the host then cast, so identical
        across backends (bit-identical in float64)."""
        return self.asarray(rng.standard_normal(shape) * std, dtype)

    @property
    def device_masks(self) -> bool:
        """Whether :meth:`keep_mask` draws on the device by default (device backends with a
        generator of their own)."""
        return self._uniform is not None and not self.is_host

    def keep_mask(
        self, rng: numpy.random.Generator, shape: tuple[int, ...], rate: float,
        on_device: bool | None = None,
    ) -> Array:
        """A boolean dropout mask of ``shape`` on the device: true (keep) with probability
        ``1 - rate``.

        On the host (``on_device=False``, and always on host backends) the mask is
        ``rng.random(shape) >= rate`` copied to the device: the same seed drops the same units
        on every backend. On the device (``on_device=True``; the default where
        :attr:`device_masks`) ``rng`` gives one 64-bit seed per call and the library's own
        generator draws the uniforms: no host work or transfer of ``shape`` numbers per step,
        and still reproducible from the seed (and exactly resumable, since the seeds come
        from ``rng``), but the masks differ from the host ones and between libraries.
        """
        on_device = self.device_masks if on_device is None else on_device
        if on_device and self._uniform is not None:
            with self.activate():
                return self.device_uniform(rng, shape) >= rate
        return self.asarray(rng.random(tuple(shape)) >= rate)

    def device_uniform(self, rng: numpy.random.Generator, shape: tuple[int, ...]) -> Array:
        """Float32 uniforms in [0, 1) of ``shape``, drawn on the device by the library's
        generator from one 64-bit seed taken from ``rng`` (backends with :attr:`device_masks`
        only): what :meth:`keep_mask` compares with the rate on the device."""
        if self._uniform is None:
            raise BackendError(f"backend {self.name!r} has no generator of its own")
        seed = int(rng.integers(0, 2**63))
        with self.activate():
            return self._uniform(seed, tuple(shape))

    def permutation(self, rng: numpy.random.Generator, n: int) -> numpy.ndarray:
        """A host permutation of ``0..n-1`` (int64)."""
        return rng.permutation(n)

    # --- timing --------------------------------------------------------------------------

    def synchronize(self) -> None:
        """Wait for queued device work to finish (no-op on CPU backends)."""
        if self._synchronize is not None:
            self._synchronize()
