"""Each training setting is defined once (:mod:`mlp.schema`), and every place that takes it
enforces that definition alike: ``mlp train --X VALUE``, a checkpoint whose stored settings hold
the value (``mlp train --resume``), and the Python constructor that takes it. The cases come from
the schema itself: for every bound, the values just inside and just outside it."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlp import checkpoint
from mlp.checks import count_argument
from mlp.cli import main
from mlp.cli.app import build_parser
from mlp.cli.settings import DEFAULTS, FIXED, SETTINGS, STORED, build_model, validate_settings
from mlp.cli.train import plan
from mlp.errors import CheckpointError
from mlp.layers.dropout import Dropout
from mlp.losses import SoftmaxCrossEntropy
from mlp.optimizers import SGD, Adam, AdamW
from mlp.schedules import LinearWarmup
from mlp.schema import SETTINGS as DEFINITIONS
from mlp.schema import Setting, with_choices

BOUNDED = [s for s in SETTINGS.values() if s.bounded]


def edges(setting: Setting) -> list[tuple[Any, bool]]:
    """``(value, valid)`` just inside and just outside each of ``setting``'s bounds (the next
    integer, or the next float), and the non-finite floats."""
    integer = setting.number_kind is int

    def beside(bound: float, toward: float) -> Any:
        if integer:
            return int(bound) + (1 if toward > bound else -1)
        return math.nextafter(float(bound), toward)

    cases = []
    for bound, is_open, outward in ((setting.low, setting.low_open, -math.inf),
                                    (setting.high, setting.high_open, math.inf)):
        if bound is None:
            continue
        edge = int(bound) if integer else float(bound)
        if is_open:
            cases += [(edge, False), (beside(bound, -outward), True)]
        else:
            cases += [(edge, True), (beside(bound, outward), False)]
    if not integer:
        cases += [(math.nan, False), (math.inf, False), (-math.inf, False)]
    return cases


def cases(where: Callable[[Setting], bool]) -> Any:
    """The edge cases of the bounded settings ``where`` holds, as parameters."""
    return [pytest.param(s, value, valid, id=f"{s.name}={value!r}-{'in' if valid else 'out'}")
            for s in BOUNDED if where(s) for value, valid in edges(s)]


def test_the_bounded_settings() -> None:
    """The schema holds the bounds of every numeric setting (a new one joins the cases below)."""
    assert {s.name for s in BOUNDED} == {"dropout", "lr", "momentum", "weight_decay", "warmup",
                                          "label_smoothing", "epochs", "batch_size", "seed",
                                          "threads"}
    assert all(edges(s) for s in BOUNDED)
    # Only presets and checkpoints set momentum; --threads is not stored.
    assert {s.name for s in BOUNDED if not s.option} == {"momentum"}
    assert {s.name for s in BOUNDED if not s.stored} == {"threads"}


# --------------------------------------------------------------------------- the option


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@pytest.mark.parametrize("setting, value, valid", cases(lambda s: s.option))
def test_the_option(setting: Setting, value: Any, valid: bool, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    text = _text(value)
    argv = ["train", f"{setting.option_name}={text}"]
    if valid:
        assert getattr(build_parser().parse_args(argv), setting.name) == value
        return
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--data-dir", str(tmp_path / "no-data")])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"mlp train: error: argument {setting.option_name}: "
                   f"{setting.problem(value)}, got {text} (see mlp train --help)\n")


# --------------------------------------------------------------------------- the checkpoint


#: The stored settings of the checkpoints below: a small model, otherwise the defaults.
BASE = {**DEFAULTS, **FIXED, "hidden": "4", "lr": 1e-3}
TRAIN_STATE = {"epoch": 0, "batch": 0, "shuffle_state": None, "loss_sum": 0.0, "correct": 0,
               "seen": 0, "seconds": 0.0, "history": []}


def _checkpoint(path: Path, settings: dict[str, Any], model_settings: dict[str, Any]) -> Path:
    """A checkpoint of a model built from ``model_settings`` whose meta says ``settings``."""
    model = build_model(model_settings, 784, 10, 10)
    return checkpoint.save(path, model, {"settings": settings, "train_state": TRAIN_STATE})


@pytest.mark.parametrize("setting, value, valid", cases(lambda s: s.stored))
def test_the_checkpoint(setting: Setting, value: Any, valid: bool, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    settings = {**BASE, setting.name: value}
    path = _checkpoint(tmp_path / "run.st", settings, settings if valid else BASE)
    if valid:
        resumed = plan(build_parser().parse_args(["train", "--resume", str(path)]))
        assert resumed.settings[setting.name] == value
        return
    assert main(["train", "--resume", str(path), "--data-dir", str(tmp_path / "no-data")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"mlp: error: invalid checkpoint {path}: its training settings hold invalid "
                   f"values: {setting.error(value)}\n")


@pytest.mark.parametrize("setting", [s for s in BOUNDED if s.stored], ids=lambda s: s.name)
@pytest.mark.parametrize("value", [True, "1", None, [1]], ids=["bool", "string", "null", "list"])
def test_the_checkpoint_takes_numbers_only(setting: Setting, value: Any) -> None:
    message = f"hold invalid values: {setting.error(value)}"
    with pytest.raises(CheckpointError, match=re.escape(message)):
        validate_settings({**BASE, setting.name: value}, "f.st")


# --------------------------------------------------------------------------- the constructors


#: Per setting: the constructors a Python user calls with it, and the name of their argument.
CONSTRUCTORS: dict[str, list[tuple[Callable[[Any], Any], str]]] = {
    "dropout": [(lambda v: Dropout(v), "dropout rate")],
    "lr": [(lambda v: SGD(lr=v), "lr"), (lambda v: Adam(lr=v), "lr"),
           (lambda v: AdamW(lr=v), "lr")],
    "momentum": [(lambda v: SGD(momentum=v), "momentum")],
    "weight_decay": [(lambda v: SGD(weight_decay=v), "weight_decay"),
                     (lambda v: Adam(weight_decay=v), "weight_decay"),
                     (lambda v: AdamW(weight_decay=v), "weight_decay")],
    "label_smoothing": [(lambda v: SoftmaxCrossEntropy(label_smoothing=v), "label_smoothing")],
    "warmup": [(lambda v: LinearWarmup(v), "warmup_steps")],
    "epochs": [(lambda v: count_argument("epochs", v), "epochs")],  # MLP.fit's
    "batch_size": [(lambda v: count_argument("batch_size", v), "batch_size")],
}
#: Bounded settings no constructor of the library checks.
NO_CONSTRUCTOR = {"seed": "NumPy's generator checks the seed MLP(seed=) passes it",
                  "threads": "a setting of the command, not of the model"}


def test_every_bounded_setting_has_its_constructors() -> None:
    assert set(CONSTRUCTORS) | set(NO_CONSTRUCTOR) == {s.name for s in BOUNDED}
    assert not set(CONSTRUCTORS) & set(NO_CONSTRUCTOR)


@pytest.mark.parametrize("setting, value, valid", cases(lambda s: s.name in CONSTRUCTORS))
def test_the_constructors(setting: Setting, value: Any, valid: bool) -> None:
    for build, name in CONSTRUCTORS[setting.name]:
        if valid:
            build(value)
            continue
        with pytest.raises(ValueError, match=f"^{re.escape(setting.error(value, name))}$"):
            build(value)


# --------------------------------------------------------------------------- the definitions


def test_the_help_line_comes_from_the_definition(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for setting in SETTINGS.values():
        if setting.option and setting.name != "lr":  # lr: each optimizer's default
            assert setting.help_line() in text, setting.name
    assert "base learning rate (> 0, default: sgd 0.1, adam 0.002" in text


def test_the_choices_are_the_registries() -> None:
    train = next(a for a in build_parser()._actions  # noqa: SLF001
                 if a.dest == "command").choices["train"]
    choices = {a.dest: a.choices for a in train._actions if a.choices}  # noqa: SLF001
    for setting in SETTINGS.values():
        if setting.registry and setting.option:
            assert tuple(choices[setting.name]) == setting.choices, setting.name
    assert set(STORED) == set(DEFAULTS) | set(FIXED)
    with pytest.raises(KeyError, match="no registry given for"):
        with_choices({})


def test_the_wording_of_each_kind_of_bound() -> None:
    d = DEFINITIONS
    assert d["dropout"].error(1.0) == "dropout must be a finite number in [0, 1), got 1.0"
    assert d["lr"].error(0) == "lr must be a finite number > 0, got 0"
    assert d["weight_decay"].error(-1) == "weight_decay must be a finite number >= 0, got -1"
    assert d["epochs"].error(2.5) == "epochs must be an integer >= 1, got 2.5"
    assert d["epochs"].error(True) == "epochs must be an integer >= 1, got True"
    assert SETTINGS["optimizer"].error("lbfgs") == (
        "optimizer must be one of sgd, adam, adamw, momentum, got 'lbfgs'")
    assert SETTINGS["init"].error(["he"]).startswith("init must be one of ")
    assert SETTINGS["init"].error(None) is None
    assert d["hidden"].error("0") == ("hidden must be comma-separated widths >= 1 such as "
                                      "512,512, or none, got '0'")
    assert d["lr"].parse("3e-3") == 3e-3
    with pytest.raises(ValueError, match="^'fast' is not a number$"):
        d["lr"].parse("fast")
    with pytest.raises(ValueError, match="^'1.5' is not an integer$"):
        d["epochs"].parse("1.5")
