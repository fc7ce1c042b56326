"""Namespace helpers: the array library always comes from the arrays themselves."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from array_api_compat import array_namespace

from backends.ops import GenericOps

Array = Any

__all__ = ["Array", "array_namespace", "generic_ops"]


@lru_cache(maxsize=None)
def generic_ops(xp: Any) -> GenericOps:
    """Portable (allocating) operations for namespace ``xp``."""
    return GenericOps(xp)
