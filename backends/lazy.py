"""Lazy, chunked arrays (``dask.array``): recognised, checked inside their task graph, and
computed together.

A model predicts on a dask array by building its forward pass into the array's task graph
(:mod:`mlp.inference`); nothing runs until the caller computes, chunk by chunk, on the threaded
scheduler or a ``dask.distributed`` cluster, so memory is bounded by the chunks in flight, not
by the data. Dask is imported only when such an array is met.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import is_dask_array

Array = Any


def is_lazy(x: Any) -> bool:
    """Whether ``x`` is a dask array."""
    return is_dask_array(x)


def whole_rows(x: Array) -> Array:
    """``x (N, D)`` chunked by rows only (each chunk holds whole rows), each chunk checked
    for NaN and infinity when it is computed (a ``ValueError`` naming the rows)."""
    x = x.rechunk({1: -1})
    if np.issubdtype(x.dtype, np.floating):
        x = x.map_blocks(_finite, dtype=x.dtype, meta=np.empty((0, 0), dtype=x.dtype))
    return x


def compute(*arrays: Array) -> tuple[Any, ...]:
    """The values of dask ``arrays``, computed in one pass over their shared inputs."""
    import dask

    return dask.compute(*arrays)


def _finite(block: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    bad = int(np.count_nonzero(~np.isfinite(block)))
    if bad:
        start, stop = block_info[0]["array-location"][0] if block_info else (0, len(block))
        raise ValueError(f"inputs hold {bad} NaN or infinite value(s) in rows {start} to "
                         f"{stop - 1}; clean or impute them first")
    return block
