"""The edge between the MLP math and a concrete array library.

``backends.get(name, device)`` returns a :class:`Backend`: the library's array-API namespace,
its device, array creation and transfer, seeded random numbers, synchronisation and optional
in-place kernels. Nothing here knows about neural networks.
"""

from __future__ import annotations

from typing import Any

from .base import DTYPES, Backend
from .errors import BackendError
from .ops import GenericOps
from .registry import FACTORIES, INSTALL_HINT

NAMES = tuple(FACTORIES)

_cache: dict[tuple[str, str], Backend] = {}


def get(name: str | Backend = "numpy", device: Any = None) -> Backend:
    """The backend ``name`` on ``device`` (``None``: the library's default device).

    Raises:
        BackendError: unknown name, library not installed, or no such device.
    """
    if isinstance(name, Backend):
        return name
    if name not in FACTORIES:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(NAMES)}")
    key = (name, repr(device))
    if key not in _cache:
        _cache[key] = FACTORIES[name](device)
    return _cache[key]


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


__all__ = ["DTYPES", "NAMES", "Backend", "BackendError", "GenericOps", "available", "get"]
