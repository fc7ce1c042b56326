"""The training settings, each defined once: name, type, bounds or choices, default and help.

Every place that takes a setting checks it with its :class:`Setting`: the ``mlp train`` options
(:mod:`mlp.cli.parser` converts their text with :meth:`Setting.parse`), the settings a checkpoint
stores (:func:`mlp.cli.settings.validate_settings`), and the constructors a Python user calls
(:class:`~mlp.layers.dropout.Dropout`, the optimizers, :class:`~mlp.losses.SoftmaxCrossEntropy`,
:class:`~mlp.schedules.LinearWarmup`). So they accept the same values and refuse the others with
one wording per kind of bound: ``<name> must be <what> <bounds>, got <value>``, e.g.
``dropout must be a finite number in [0, 1), got 1.0``.

A setting whose values are the names of a registry (``backend``, ``optimizer``, ...) is defined
here without its choices: the registries live above this module, and
:func:`with_choices` binds them where they are importable (:mod:`mlp.cli.settings`). The module
imports nothing of :mod:`mlp` (the layers, losses, optimizers and schedules import it), only the
name of the default backend from :mod:`backends`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from backends import DEFAULT as DEFAULT_BACKEND

#: How a message names each type a setting may hold.
KIND_NAMES: dict[type, str] = {int: "an integer", float: "a finite number", str: "a string",
                               bool: "true or false", type(None): "null"}


def is_int(value: Any) -> bool:
    """An integer: a Python or NumPy one (anything with ``__index__``), not a bool."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def is_number(value: Any) -> bool:
    """A finite real number: an integer or a float (NumPy's too), not a bool or a string."""
    if isinstance(value, bool | str | bytes):
        return False
    try:
        return math.isfinite(value)
    except (TypeError, ValueError, OverflowError):  # not a number; an int too large for a float
        return False


def _fits(kind: type, value: Any) -> bool:
    if kind is int:
        return is_int(value)
    if kind is float:
        return is_number(value)
    if kind is type(None):
        return value is None
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def parse_hidden(text: str) -> list[int]:
    """``"512,512"`` -> ``[512, 512]``; ``""`` or ``"none"`` -> no hidden layer.

    Raises ValueError (a one-line message naming ``--hidden``)."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--hidden takes comma-separated widths such as 512,512, "
                         f"got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"--hidden widths must be >= 1, got {text!r}")
    return sizes


@dataclass(frozen=True)
class Setting:
    """One training setting.

    ``kinds``: the types a value may have (``float`` takes integers too; ``int`` is not a
    bool). Numbers lie within ``low``/``high`` (``None``: unbounded; ``*_open``: the bound itself
    excluded). ``choices``: the values a string may take (``None`` on a registry setting until
    :func:`with_choices` binds its registry). ``form``: a parser the text must get through, and
    ``form_text`` what it takes. ``option``: ``mlp train --<name>`` sets it; ``stored``: a
    checkpoint keeps it. ``help`` and ``default_help`` (what the default is, where it is not
    ``default`` itself) make the option's help line.

    ``shown``: the setting's phrase in the header ``mlp train`` prints (``""``: not there), a
    :meth:`str.format` template: ``{}`` is the value, ``{s}`` is ``s`` unless the value is 1,
    and other names are figures the header passes (:meth:`phrase`). A phrase that starts with a
    space continues the one before it. ``shown_if``: the phrase is there only for the runs
    whose settings it holds for (``None``: every run). :data:`HEADER` gives the order.
    """

    name: str
    kinds: tuple[type, ...]
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = True
    choices: tuple[str, ...] | None = None
    registry: bool = False
    form: Callable[[str], Any] | None = None
    form_text: str = ""
    option: bool = True
    stored: bool = True
    default_help: str | None = None
    shown: str = ""
    shown_if: Callable[[Mapping[str, Any]], bool] | None = None

    @property
    def option_name(self) -> str:
        """``--batch-size`` for ``batch_size``."""
        return "--" + self.name.replace("_", "-")

    @property
    def number_kind(self) -> type | None:
        """``int`` or ``float`` for a numeric setting, else ``None``."""
        return self.kinds[0] if self.kinds[0] in (int, float) else None

    @property
    def bounded(self) -> bool:
        """Whether the setting has a lower or upper bound."""
        return self.low is not None or self.high is not None

    @property
    def bounds(self) -> str:
        """The bounds in words: ``in [0, 1)``, ``> 0``, ``>= 1`` (``""`` when unbounded)."""
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return ""

    @property
    def expected(self) -> str:
        """What a value must be, e.g. ``a finite number in [0, 1)`` or ``one of sgd, adam``."""
        if self.form is not None:
            return self.form_text
        if self.choices is not None:
            text = f"one of {', '.join(self.choices)}"
        else:
            text = " or ".join(KIND_NAMES.get(k, k.__name__) for k in self.kinds
                               if k is not type(None))
            text = f"{text} {self.bounds}".rstrip()
        return f"{text}, or null" if type(None) in self.kinds else text

    def problem(self, value: Any) -> str | None:
        """``None`` if ``value`` is valid, else why not: ``must be <expected>``."""
        ok = any(_fits(k, value) for k in self.kinds)
        if ok and value is not None and self.number_kind is not None and self.bounded:
            ok = self._inside(value)
        if ok and self.choices is not None and value is not None:
            ok = value in self.choices
        if ok and self.form is not None and value is not None:
            try:
                self.form(value)
            except ValueError:
                ok = False
        return None if ok else f"must be {self.expected}"

    def _inside(self, value: Any) -> bool:
        low, high = self.low, self.high
        return ((low is None or (value > low if self.low_open else value >= low))
                and (high is None or (value < high if self.high_open else value <= high)))

    def error(self, value: Any, name: str | None = None) -> str | None:
        """``None`` if ``value`` is valid, else the message: ``<name> must be <expected>, got
        <value>`` (``name`` defaults to the setting's)."""
        why = self.problem(value)
        shown = repr(value) if isinstance(value, str | bytes) else str(value)  # NumPy's 1.5 too
        return None if why is None else f"{name or self.name} {why}, got {shown:.40}"

    def check(self, value: Any, name: str | None = None) -> Any:
        """``value`` if it is valid; raises ValueError with :meth:`error`'s message (a
        constructor passes its own argument's ``name``)."""
        message = self.error(value, name)
        if message is not None:
            raise ValueError(message)
        return value

    def parse(self, text: str) -> Any:
        """An option's text as the setting's value (a number converted, a string as given).

        Raises ValueError: ``'x' is not a number`` or ``must be <expected>, got <text>``."""
        kind = self.number_kind
        value: Any = text
        if kind is not None:
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"{text!r} is not {'an integer' if kind is int else 'a number'}"
                                 ) from None
        why = self.problem(value)
        if why is not None:
            raise ValueError(f"{why}, got {text}")
        return value

    def help_line(self, default_help: str | None = None) -> str:
        """The option's help: what it is, its bounds and its default."""
        shown = default_help or self.default_help
        default = f"default: {shown}" if shown else f"default {self.default}"
        details = f"{self.bounds}, {default}" if self.bounds else default
        return f"{self.help} ({details})" if self.help else f"({details})"

    def phrase(self, settings: Mapping[str, Any], **figures: Any) -> str | None:
        """The setting's phrase in the header of a run of ``settings`` (``figures``: the other
        names its template takes), or ``None`` where the header leaves it out."""
        if not self.shown or (self.shown_if is not None and not self.shown_if(settings)):
            return None
        value = settings[self.name]
        return self.shown.format(value, s="" if value == 1 else "s", **figures)


def _setting(name: str, kinds: type | tuple[type, ...], default: Any, help: str = "",
             **rest: Any) -> Setting:
    return Setting(name, kinds if isinstance(kinds, tuple) else (kinds,), default, help, **rest)


#: The lower and upper bounds that recur: a rate in [0, 1), a positive number, a count.
_RATE = {"low": 0.0, "high": 1.0}
_POSITIVE = {"low": 0.0, "low_open": True}
_NON_NEGATIVE = {"low": 0}
_AT_LEAST_ONE = {"low": 1}

MOMENTUM = _setting("momentum", float, 0.9, option=False, shown=" momentum {:g}",
                    shown_if=lambda s: s["optimizer"] == "momentum", **_RATE)

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    _setting("backend", str, DEFAULT_BACKEND, "array library", registry=True),
    _setting("device", (str, int, type(None)), None, "device, e.g. 0 or cuda:1 for GPUs",
             default_help="the backend's default device"),
    _setting("dtype", str, "float32", "floating dtype of parameters and activations",
             registry=True),
    _setting("dataset", str, "mnist", "the dataset to train and test on", registry=True,
             shown="{}"),
    _setting("hidden", str, "512,512", "hidden widths, comma-separated", form=parse_hidden,
             form_text="comma-separated widths >= 1 such as 512,512, or none"),
    _setting("activation", str, "relu", "hidden activation", registry=True),
    _setting("init", (str, type(None)), None, option=False, registry=True, shown="{} init",
             shown_if=lambda s: s["init"] is not None),
    _setting("dropout", float, 0.0, "drop rate after each hidden activation",
             shown="dropout {:g}", **_RATE),
    _setting("optimizer", str, "adam",
             f"momentum is SGD with Nesterov momentum {MOMENTUM.default}", registry=True,
             shown="{}"),
    _setting("lr", float, None, "base learning rate", shown=" lr {:g}", **_POSITIVE),
    MOMENTUM,
    _setting("weight_decay", float, 0.0, "L2 (sgd, adam) or decoupled (adamw) decay",
             shown="weight decay {:g}", **_NON_NEGATIVE),
    _setting("schedule", str, "cosine", "learning-rate schedule over the whole run; step "
             "divides it by 10 after each third", registry=True, shown="{} schedule"),
    _setting("warmup", int, 0, "linear warm-up steps for warmup-cosine",
             shown=" with {} warm-up step{s}", shown_if=lambda s: s["schedule"] == "warmup-cosine",
             **_NON_NEGATIVE),
    _setting("label_smoothing", float, 0.0, "weight of the uniform distribution mixed into "
             "each one-hot target", shown="label smoothing {:g}",
             shown_if=lambda s: s["loss"] == "softmax-xent", **_RATE),
    _setting("epochs", int, 8, "passes over the training set", shown="{} epoch{s} of {steps}",
             **_AT_LEAST_ONE),
    _setting("batch_size", int, 128, "samples per step, over all ranks with --distributed",
             shown="batch {}", **_AT_LEAST_ONE),
    _setting("seed", int, 0, "seeds initial weights, dropout and shuffling", shown="seed {}",
             **_NON_NEGATIVE),
    _setting("loss", str, "softmax-xent", option=False, registry=True, shown="loss {}",
             shown_if=lambda s: s["loss"] != "softmax-xent"),
    _setting("output", str, "logits", option=False, registry=True, shown="{} output",
             shown_if=lambda s: s["output"] != "logits" or not s["output_bias"]),
    _setting("output_bias", bool, True, option=False, shown=" without bias",
             shown_if=lambda s: not s["output_bias"]),
    _setting("threads", int, None, "BLAS threads, at most the usable cores", stored=False,
            default_help="all usable cores", **_AT_LEAST_ONE),
)}
"""Every setting, in the order a checkpoint's settings and ``mlp train --help`` list them."""


def with_choices(registries: Mapping[str, Collection[str]]) -> dict[str, Setting]:
    """:data:`SETTINGS` with each registry setting's choices bound (``name -> the registry
    whose names it takes``); raises KeyError naming a registry setting left without one."""
    unbound = sorted(name for name, s in SETTINGS.items() if s.registry and name not in registries)
    if unbound:
        raise KeyError(f"no registry given for {', '.join(unbound)}")
    return {name: replace(s, choices=tuple(registries[name])) if s.registry else s
            for name, s in SETTINGS.items()}


HEADER: tuple[Setting, ...] = tuple(SETTINGS[name] for name in (
    "dataset", "epochs", "batch_size", "seed", "optimizer", "lr", "momentum", "weight_decay",
    "schedule", "warmup", "dropout", "label_smoothing", "loss", "init", "output", "output_bias"))
"""The settings the header of ``mlp train`` shows, in its order: each one ``shown``."""

DROPOUT, LR, WEIGHT_DECAY, WARMUP, LABEL_SMOOTHING = (
    SETTINGS[name] for name in ("dropout", "lr", "weight_decay", "warmup", "label_smoothing"))
"""The settings the Python constructors check their arguments with."""
