"""Checks of what a Python user hands the network: counts, and data sets and batches.

A batch's shape and dtype are checked on every call (it costs nothing); a set's values (no NaN
or infinity, labels in range) once per call of :meth:`~mlp.MLP.fit`, ``evaluate`` or
``predict``, with one reduction and one read-back for the whole set, never per batch.
"""

from __future__ import annotations

import operator
from typing import Any

from ._xp import Array, device
from .schema import SETTINGS


def count_argument(name: str, value: Any) -> int:
    """``value`` as an ``int``, checked by the count setting ``name`` of :mod:`mlp.schema`
    (``epochs``, ``batch_size``: an integer, a Python or NumPy one, not a bool, of at least 1).

    Raises:
        ValueError: the schema's message, e.g. ``batch_size must be an integer >= 1, got 2.5``.
    """
    return operator.index(SETTINGS[name].check(value))


def check_batch(x: Array, width: int, dtype: Any, dtype_name: str) -> Array:
    """``x`` itself, once it is ``(N, width)`` of ``dtype`` (named ``dtype_name``).

    Raises:
        ValueError: another shape. TypeError: another dtype.
    """
    _check_width(x, width, "inputs")
    if x.dtype != dtype:
        raise TypeError(f"inputs are {x.dtype}, the model is {dtype_name}; "
                        "convert with model.backend.asarray(x, model.dtype)")
    return x


def check_rows(x: Array, width: int, what: str = "x", shape_name: str | None = None) -> None:
    """``x`` is a set ``(N, width)`` with at least one row; ``what`` names it in messages
    (``shape_name``, where given, in the message about its shape)."""
    _check_width(x, width, shape_name or what)
    if x.shape[0] == 0:
        raise ValueError(f"{what} has 0 rows: at least one sample is needed")


def check_labels(y: Array, n: int, xp: Any, which: str = "") -> None:
    """``y`` is ``(n,)`` integers; ``which`` prefixes the name in messages (``"validation "``).

    Raises:
        ValueError: another shape. TypeError: labels that are not integers.
    """
    if tuple(y.shape) != (n,):
        raise ValueError(f"expected {which}labels of shape ({n},), got {tuple(y.shape)}")
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(f"{which}labels must be integer class indices, not {y.dtype}")


def check_finite(x: Array, backend: Any, which: str = "") -> None:
    """No NaN or infinity in ``x`` (when floating): one reduction and one read-back."""
    xp = backend.xp
    if xp.isdtype(x.dtype, "real floating"):
        _refuse_non_finite(int(backend.to_numpy(_count(xp, ~xp.isfinite(x)))), x, which)


def check_set(x: Array, y: Array, classes: int, backend: Any, which: str = "") -> None:
    """A labelled set: ``y`` holds ``x.shape[0]`` integer labels in ``[0, classes)`` and
    floating ``x`` no NaN or infinity, checked with one reduction and one read-back for both.
    ``which`` prefixes the names in messages (``"validation "``)."""
    xp, n = backend.xp, x.shape[0]
    check_labels(y, n, xp, which)
    parts = [labels_outside(xp, y, classes)]
    if xp.isdtype(x.dtype, "real floating"):
        parts.append(_count(xp, ~xp.isfinite(x)))
    bad = [int(v) for v in backend.to_numpy(xp.stack(parts)).tolist()]
    if len(bad) > 1:
        _refuse_non_finite(bad[1], x, which)
    if bad[0]:
        low, high = (int(v) for v in backend.to_numpy(
            xp.stack([xp.min(y), xp.max(y)])).tolist())
        refuse_labels_outside(bad[0], n, low, high, classes, which)


def labels_outside(xp: Any, y: Array, classes: int) -> Array:
    """How many integer labels ``y (n,)`` of namespace ``xp`` lie outside ``[0, classes)``: a
    0-d int64 array on ``y``'s device (comparisons the dtype cannot fail are left out)."""
    info = xp.iinfo(y.dtype)
    outside = xp.zeros(y.shape, dtype=xp.bool, device=device(y))
    if info.min < 0:
        outside = xp.logical_or(outside, y < 0)
    if classes <= info.max:
        outside = xp.logical_or(outside, y >= classes)
    return _count(xp, outside)


def refuse_labels_outside(bad: int, n: int, low: int, high: int, classes: int,
                          which: str = "") -> None:
    """Refuse ``bad`` of ``n`` labels outside ``[0, classes)`` (their values from ``low`` to
    ``high``): a ``ValueError``, unless ``bad`` is 0."""
    if bad:
        raise ValueError(f"{which}labels must be class indices in [0, {classes}): "
                         f"{bad} of {n} are not (values from {low} to {high})")


def _check_width(x: Array, width: int, name: str) -> None:
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"expected {name} of shape (N, {width}), got {tuple(x.shape)}")


def _count(xp: Any, mask: Array) -> Array:
    return xp.sum(xp.astype(mask, xp.int64))


def _refuse_non_finite(bad: int, x: Array, which: str) -> None:
    if bad:
        raise ValueError(f"{which}inputs hold {bad} NaN or infinite value(s) of "
                         f"{x.shape[0] * x.shape[1]}; clean or impute them first")
