"""Checks of untrusted JSON: a checkpoint's header, the training state and settings it carries.

Each check returns the value it accepted or raises one :class:`Invalid` (a
:class:`~mlp.errors.CheckpointError`) naming the field; messages name at most a few offending
items and are capped in length, whatever the input's size.
"""

from __future__ import annotations

import copy
import reprlib
from collections.abc import Collection, Sequence
from dataclasses import fields
from typing import Any

from backends import Backend

from .errors import CheckpointError
from .schema import KIND_NAMES, is_int, is_number
from .train import TrainState

MAX_MESSAGE = 2000
"""Longest message a check produces (characters)."""
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 5, 5, 80, 80
_KINDS = {**KIND_NAMES, list: "a list", dict: "an object"}


class Invalid(CheckpointError):
    """What is wrong with a field (the caller adds which file it came from)."""


def short(value: Any) -> str:
    """``repr(value)`` cut to a few items and characters."""
    return _REPR.repr(value)


def few(items: Sequence[Any]) -> str:
    """The first five of ``items`` as a list, and how many more there are."""
    more = f" and {len(items) - 5} more" if len(items) > 5 else ""
    return f"[{', '.join(short(x) for x in items[:5])}]{more}"


def cap(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE` characters."""
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "... (cut)"


def check_value(what: str, value: Any, kind: type | tuple[type, ...], *,
                low: float | None = None, high: float | None = None,
                choices: Collection[Any] | None = None) -> Any:
    """``value`` if it is of the JSON ``kind`` (``int`` and ``float`` as the settings take
    them, :func:`mlp.schema.is_int` and :func:`mlp.schema.is_number`: no booleans, finite),
    within ``[low, high]`` when a number, and among ``choices``.

    Raises:
        Invalid: ``"<what> is <value>, expected <kind> in [low, high]"``.
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)

    def fits(k: type) -> bool:
        if k is float:
            return is_number(value)
        if k is int:
            return is_int(value)
        return isinstance(value, k) and (k is bool or not isinstance(value, bool))

    ok = any(fits(k) for k in kinds)
    if ok and isinstance(value, int | float) and not isinstance(value, bool):
        ok = (low is None or value >= low) and (high is None or value <= high)
    if ok and choices is not None:
        ok = value in choices
    if ok:
        return value
    expected = " or ".join(_KINDS.get(k, k.__name__) for k in kinds)
    if low is not None or high is not None:
        expected += f" in [{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    if choices is not None:
        expected += f", one of {few(list(choices))}"
    raise Invalid(cap(f"{what} is {short(value)}, expected {expected}"))


def check_keys(what: str, data: dict[str, Any], keys: Collection[str],
               optional: Collection[str] = ()) -> dict[str, Any]:
    """``data`` if it holds all of ``keys`` and nothing but ``keys`` and ``optional``.

    Raises:
        Invalid: ``"<what> lacks <keys>"`` or ``"<what> has unknown keys [...]"``.
    """
    missing = [k for k in keys if k not in data]
    if missing:
        raise Invalid(cap(f"{what} lacks {', '.join(map(str, missing))}"))
    unknown = [k for k in data if k not in keys and k not in optional]
    if unknown:
        raise Invalid(f"{what} has unknown keys {few(unknown)}")
    return data


def check_rng(what: str, state: Any) -> dict[str, Any]:
    """``state`` if it is a valid state of the generator every backend draws from."""
    try:
        Backend.rng(None).bit_generator.state = state
    except Exception as exc:  # NumPy's own checks of the state's kind, fields and ranges
        raise Invalid(cap(f"{what} is not a state of the backends' random generator "
                          f"({exc})")) from None
    return state


def validate_train_state(data: Any, steps_per_epoch: int | None = None,
                         epochs: int | None = None) -> TrainState:
    """The :class:`~mlp.train.TrainState` that ``data`` (its ``to_json()``) describes, after
    checking every field: types, no unknown or missing key, counts that fit together
    (``correct <= seen``, a sample per finished batch, one history entry per finished epoch)
    and, when given, ``batch < steps_per_epoch`` and ``epoch <= epochs``.

    Raises:
        Invalid: naming the first bad field, e.g. ``train_state.batch``.
    """
    check_keys("train_state", check_value("train_state", data, dict),
               [f.name for f in fields(TrainState)])
    epoch = check_value("train_state.epoch", data["epoch"], int, low=0, high=epochs)
    last = None if steps_per_epoch is None else steps_per_epoch - 1
    if epochs is not None and epoch == epochs:
        last = 0  # a finished run stands at the start of an epoch
    batch = check_value("train_state.batch", data["batch"], int, low=0, high=last)
    # Every finished batch saw at least one sample; no batch, no samples.
    seen = check_value("train_state.seen", data["seen"], int, low=batch,
                       high=None if batch else 0)
    check_value("train_state.correct", data["correct"], int, low=0, high=seen)
    check_value("train_state.loss_sum", data["loss_sum"], float)
    check_value("train_state.seconds", data["seconds"], float, low=0)
    if data["shuffle_state"] is not None:
        check_rng("train_state.shuffle_state", data["shuffle_state"])
    history = check_value("train_state.history", data["history"], list)
    if len(history) != epoch:
        raise Invalid(f"train_state.history holds {len(history)} epochs, but epoch is {epoch}")
    for i, entry in enumerate(history):
        numbers = isinstance(entry, dict) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in entry.values())
        if not numbers or entry.get("epoch") != i + 1:
            raise Invalid(f"train_state.history[{i}] is not the metrics of epoch {i + 1}")
    return TrainState(**copy.deepcopy(data))
