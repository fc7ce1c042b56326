"""Reading a results file of ``mlp bench`` (pytest-benchmark's JSON) and checking its shape
before anything is made from it.

A file that is not one, or not whole, is a :class:`ResultsError` naming what is wrong: a FIFO or
a device is refused without waiting or reading, a file larger than :data:`MAX_BYTES` without
reading it, and JSON of another shape (an object without benchmarks, a benchmark without its
median or its configuration) before a report is written.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from mlp.files import NotRegularFile, open_regular

#: Far above what the whole suite writes (a few MB): a larger file is not one of its results.
MAX_BYTES = 64 * 2**20
#: Keys each kind of timed benchmark carries in ``extra_info``, with their types.
_CONFIG = {"size": str, "batch": int, "dtype": str, "device": str}
_NEEDS: dict[str, dict[str, type]] = {
    **{kind: {**_CONFIG, "backend": str, "flops": int}
       for kind in ("forward", "backward", "step", "floor", "step-dropout", "step-graph")},
    "peer": _CONFIG,
    "epoch": {"backend": str, "device": str, "flops": int},
    "epoch-floor": {"backend": str, "device": str, "flops": int},
    "epoch-peer": {"device": str},
    "epoch-contest": {"contest": dict},
    "phases": {"phases": dict},
    "jax-steps": {"jax": dict},
    "sklearn-contest": {"sklearn": dict},
}
_STATS = ("median", "min", "max", "q1", "q3", "mean")


class ResultsError(ValueError):
    """A results file that cannot be read or is not one of ``mlp bench``'s."""


def load(path: str | Path) -> dict[str, Any]:
    """The results in ``path``, checked (see the module docstring)."""
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_BYTES:
                raise ResultsError(f"{path}: {size:,} bytes, more than any results of mlp bench "
                                   f"({MAX_BYTES:,})")
            raw = f.read(MAX_BYTES + 1)
    except NotRegularFile as exc:
        raise ResultsError(f"{path}: {exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(f"{path}: not JSON ({exc})") from None
    problem = _shape_problem(data)
    if problem:
        raise ResultsError(f"{path}: not results of mlp bench: {problem}")
    return data


def _shape_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"the top level is {type(data).__name__}, not an object"
    benches = data.get("benchmarks")
    if not isinstance(benches, list):
        return "no list of benchmarks"
    if not benches:
        return "the list of benchmarks is empty"
    for i, bench in enumerate(benches):
        where = f"benchmark {i}"
        if not isinstance(bench, dict):
            return f"{where} is {type(bench).__name__}, not an object"
        stats, info = bench.get("stats"), bench.get("extra_info", {})
        if not isinstance(stats, dict) or not isinstance(info, dict):
            return f"{where} has no stats or extra_info object"
        for key in _STATS:
            value = stats.get(key, 0.0 if key != "median" else None)
            if not _is_number(value):
                return f"{where}: stats {key!r} is {value!r:.40}, not a number"
        kind = info.get("kind")
        if kind is None:
            continue
        if kind not in _NEEDS:
            return f"{where}: unknown kind {kind!r:.40}"
        for key, typ in _NEEDS[kind].items():
            value = info.get(key)
            if not isinstance(value, typ) or isinstance(value, bool):
                return f"{where} ({kind}): {key!r} is {value!r:.40}, not {typ.__name__}"
    return None


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and not math.isnan(value))
