"""The edge between the MLP math and a concrete array library.

``backends.get(name, device)`` returns a :class:`Backend`: the library's array-API namespace,
its device, array creation and host transfer, seeded random numbers, synchronisation, thread
limits, and its operations (:mod:`backends.ops`). Everything that names a concrete library lives
here. The operations are the few kernels the network's hot loop needs — matrix products, bias
add, ReLU and its gradient, row gather, pixel conversion and the SGD/Adam updates — written
once portably and, where a library allows, in place (NumPy ``out=``, Numba kernels, CuPy fused
kernels) with the same numbers. Layers, losses and models live in :mod:`mlp`.
"""

from __future__ import annotations

from typing import Any

from .base import DTYPES, Backend
from .errors import BackendError
from .ops import GenericOps
from .registry import FACTORIES, INSTALL_HINT

NAMES = tuple(FACTORIES)
DEFAULT = "numpy"

_cache: dict[tuple[str, str], Backend] = {}


def get(name: str | Backend | None = None, device: Any = None) -> Backend:
    """The backend ``name`` (``None``: :data:`DEFAULT`) on ``device`` (``None``: the library's
    default device).

    Raises:
        BackendError: unknown name, library not installed, or no such device.
    """
    if isinstance(name, Backend):
        return name
    if name is None:
        name = DEFAULT
    if name not in FACTORIES:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(NAMES)}")
    key = (name, repr(device))
    if key not in _cache:
        _cache[key] = FACTORIES[name](device)
    return _cache[key]


#: The name of an array library's namespace (as ``array_api_compat.array_namespace`` gives it)
#: -> the backend that runs its arrays.
NAMESPACES = {
    "array_api_compat.numpy": "numpy",
    "array_api_compat.torch": "torch",
    "array_api_compat.cupy": "cupy",
    "array_api_strict": "array_api_strict",
    "jax.numpy": "jax",
}


def for_array(x: Any) -> Backend:
    """The backend of array ``x``: its library, on its device.

    Raises:
        BackendError: ``x`` is no array of a library a backend runs.
    """
    import array_api_compat

    try:
        xp = array_api_compat.array_namespace(x)
    except TypeError:
        raise BackendError(f"{type(x).__name__} is not an array of a known library") from None
    name = NAMESPACES.get(xp.__name__)
    if name is None:
        raise BackendError(f"no backend runs arrays of {xp.__name__}: choose one of "
                           f"{', '.join(NAMES)}")
    default, where = get(name), array_api_compat.device(x)
    return default if where == default.device else get(name, where)


def gpu_count(name: str) -> int:
    """How many CUDA GPUs backend ``name``'s library sees on this machine: CuPy's device count;
    0 for the other backends, and where CuPy is missing or sees no driver."""
    if name != "cupy":
        return 0
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - ImportError, CUDARuntimeError and driver errors alike
        return 0


def available() -> list[dict[str, Any]]:
    """One entry per backend: ``name``, ``ok``, ``version``, ``device``, ``dtypes`` and,
    when it cannot be used, ``error`` saying why and what to install."""
    out = []
    for name in NAMES:
        try:
            b = get(name)
        except BackendError as exc:
            out.append({"name": name, "ok": False, "error": str(exc), "hint": INSTALL_HINT[name]})
            continue
        except Exception as exc:  # noqa: BLE001 - a broken install fails in its own ways
            detail = " ".join(str(exc).split())[:300]
            out.append({"name": name, "ok": False, "hint": INSTALL_HINT[name],
                        "error": f"backend {name!r} fails to start ({type(exc).__name__}: "
                                 f"{detail}); reinstall it with: {INSTALL_HINT[name]}"})
            continue
        out.append(
            {
                "name": name,
                "ok": True,
                "version": b.version,
                "device": str(b.device),
                "dtypes": list(b.dtypes),
            }
        )
    return out


def cupy_distributions() -> list[str]:
    """Names of the installed CuPy distributions (``cupy-cuda12x``, ``cupy-cuda13x``, ...).

    More than one is a broken install: they share the ``cupy`` package folder."""
    from importlib.metadata import distributions

    return sorted({name for d in distributions()
                   if (name := d.metadata["Name"] or "").lower().startswith("cupy")})


__all__ = [
    "DEFAULT", "DTYPES", "NAMES", "NAMESPACES", "Backend", "BackendError", "GenericOps",
    "available", "cupy_distributions", "for_array", "get",
]
