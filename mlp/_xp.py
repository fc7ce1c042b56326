"""Namespace helpers: the array library always comes from the arrays themselves."""

from __future__ import annotations

from functools import cache
from typing import Any

from array_api_compat import array_namespace, device

from backends.ops import GenericOps

Array = Any

__all__ = ["Array", "array_namespace", "device", "generic_ops"]


@cache
def generic_ops(xp: Any) -> GenericOps:
    """Portable (allocating) operations for namespace ``xp``."""
    return GenericOps(xp)
