"""JAX: ``jax.numpy`` (an array-API namespace) on a CPU, GPU or TPU device.

JAX arrays are immutable, so the backend runs the portable operations (``GenericOps``, no
``out=``), with one change for compiled code (:class:`JaxOps`). It adds one thing the others
lack: :attr:`JaxBackend.jit`, which compiles a whole training step (see :mod:`mlp.steps.compiled`).

Float64 exists only in JAX's 64-bit mode, which must be on before JAX makes its first array:
set ``JAX_ENABLE_X64=1`` in the environment, or call
``jax.config.update("jax_enable_x64", True)`` first thing. Without it the backend offers
float32 alone, and asking for float64 is a :class:`~backends.BackendError` saying so.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

from .base import DTYPES, Backend
from .errors import BackendError
from .ops import Array, GenericOps

#: Device platforms JAX may name; a bare index means a GPU, as for the other backends.
PLATFORMS = ("cpu", "gpu", "cuda", "rocm", "tpu")
X64_HINT = ('float64 needs JAX\'s 64-bit mode: set JAX_ENABLE_X64=1 in the environment (or call '
            'jax.config.update("jax_enable_x64", True) before any JAX array exists)')


class JaxOps(GenericOps):
    """``GenericOps`` for ``jax.numpy``; the same numbers."""

    def __init__(self, xp: Any, device: Any, tracer: type) -> None:
        super().__init__(xp, device)
        self._tracer = tracer

    def concat_flat(self, parts: list[Array]) -> Array:
        """Under ``jax.jit``, each part written into a zero vector: XLA's CPU backend turns a
        ``concatenate`` of matrix products into a loop several times slower than the whole
        training step, while these in-place writes cost one pass. Eager: ``concat``."""
        if not isinstance(parts[0], self._tracer):
            return super().concat_flat(parts)
        xp = self.xp
        out = xp.zeros((sum(p.shape[0] for p in parts),), dtype=parts[0].dtype)
        start = 0
        for p in parts:
            out = out.at[start : start + p.shape[0]].set(p)
            start += p.shape[0]
        return out


class JaxBackend(Backend):
    """A :class:`~backends.Backend` for JAX, with :attr:`jit`, the step compiler
    (``jax.jit``)."""

    def __init__(self, jax: Any, device: Any) -> None:
        import jax.numpy as jnp

        x64 = bool(jax.config.jax_enable_x64)

        def synchronize() -> None:
            # JAX has no device-wide barrier, and its CPU client may run independent work out
            # of order: wait for every array that still exists on the platform instead.
            jax.block_until_ready(jax.live_arrays(device.platform))

        super().__init__(
            "jax",
            jnp,
            device,
            JaxOps(jnp, device, jax.core.Tracer),
            dtypes=DTYPES if x64 else ("float32",),
            synchronize=synchronize,
            version=jax.__version__,
            is_host=device.platform == "cpu",
        )
        self.jit = jax.jit

    def __repr__(self) -> str:
        return f"Backend('jax', device={str(self.device)!r})"

    def dtype(self, name: Any) -> Any:
        if name == "float64" and "float64" not in self.dtypes:
            raise BackendError(f"backend 'jax': {X64_HINT}; or choose --dtype float32")
        return super().dtype(name)

    def with_ops(self, ops: GenericOps) -> JaxBackend:
        other = copy.copy(self)
        other.ops = ops
        return other


def create(jax: Any, device: Any) -> JaxBackend:
    """The JAX backend on ``device``: ``None`` (the CPU), a ``jax.Device``, ``"cpu"``,
    ``"gpu"``/``"cuda"``/``"rocm"``/``"tpu"`` with an optional ``":index"``, or a bare GPU
    index such as ``0``.

    Raises:
        BackendError: no such device, or a platform JAX has no devices for here.
    """
    if not jax.config.jax_enable_x64:
        # The training loop counts in int64, which JAX stores as int32 in 32-bit mode and
        # warns about at every call; the counts are far below 2**31.
        warnings.filterwarnings("ignore", message="Explicitly requested dtype int64 ",
                                category=UserWarning)
    return JaxBackend(jax, _device(jax, device))


def _device(jax: Any, device: Any) -> Any:
    if device is None:
        device = "cpu"
    if isinstance(device, jax.Device):
        return device
    platform, _, index = str(device).strip().lower().partition(":")
    if platform.isdigit() and not index:
        platform, index = "gpu", platform
    if platform not in PLATFORMS or (index and not index.isdigit()):
        raise BackendError(f"backend 'jax': device {device!r} is not one of "
                           f"{', '.join(PLATFORMS)} (optionally with ':index'), or a GPU index")
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        present = sorted({d.platform for d in jax.devices()})
        raise BackendError(
            f"backend 'jax' has no {platform!r} device here (JAX sees: {', '.join(present)}); "
            f"for NVIDIA GPUs install JAX's CUDA build: pip install \"jax[cuda12]\""
        ) from None
    i = int(index or 0)
    if i >= len(devices):
        raise BackendError(f"backend 'jax' sees {len(devices)} {platform} device(s); "
                           f"device {i} does not exist")
    return devices[i]
