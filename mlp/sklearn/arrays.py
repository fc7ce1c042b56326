"""Where the estimators' arrays live: "everything follows X" under array API dispatch."""

from __future__ import annotations

from typing import Any

import numpy as np

import backends

from .._xp import Array, array_namespace, device
from ..inputs import on_backend
from ..model import Network


def following(X: Any, y: Any) -> Any:
    """``y`` (``(N,)`` or ``(N, k)``) in ``X``'s namespace and on its device ("everything
    follows X"); labels that are not numbers stay host NumPy."""
    try:
        xp = array_namespace(X)
        if array_namespace(y) is xp and device(y) == device(X):
            return y
    except TypeError:
        return y
    host = to_host(y)
    return host if host.dtype.kind not in "biuf" else xp.asarray(host, device=device(X))


def on_model(model: Network, a: Any, dtype: Any = None) -> Array:
    """``a`` (any shape) as an array of the model's library and device (cast to ``dtype``,
    when given)."""
    a = on_backend(model.backend, a)
    return a if dtype is None or a.dtype == dtype else model.xp.astype(a, dtype)


def to_host(a: Any) -> np.ndarray:
    """A host NumPy copy (or view) of an array of any backend's library, on any device."""
    if isinstance(a, np.ndarray) or not hasattr(a, "__array_namespace__") and not hasattr(
            a, "__dlpack__"):
        return np.asarray(a)
    return backends.for_array(a).to_numpy(a)


def placement(a: Any) -> tuple[Any, Any]:
    """The namespace and device of ``a`` (the default backend's for lists and the like)."""
    try:
        return array_namespace(a), device(a)
    except TypeError:
        default = backends.get()
        return default.xp, default.device


def float_name(a: Any) -> str:
    """``"float32"`` for a float32 array of any library, else ``"float64"`` (what the checked
    inputs and the fitted arrays hold)."""
    return "float32" if a.dtype == array_namespace(a).float32 else "float64"
