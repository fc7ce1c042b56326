"""The header ``mlp train`` prints: after the model and where it runs, the phrase of each setting
that :data:`mlp.schema.HEADER` lists, as the setting's definition writes it, in that order."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from mlp.cli import report
from mlp.cli.report import header_lines
from mlp.cli.settings import DEFAULTS, FIXED, OPTIMIZER_CHOICES, PRESETS
from mlp.schema import HEADER, SETTINGS

#: What the header reads of a model: its widths, activation, size, dtype and backend.
MODEL = SimpleNamespace(sizes=[784, 8, 10], activation="relu", store=SimpleNamespace(size=6370),
                        dtype_name="float32", backend=SimpleNamespace(name="numpy", device="cpu"))
STEPS = 469


def run_settings(preset: str = "default", **changes: Any) -> dict[str, Any]:
    """The settings of ``mlp train --preset PRESET`` with ``changes``."""
    settings = {**DEFAULTS, **FIXED, **PRESETS[preset], **changes}
    if settings["lr"] is None:
        settings["lr"] = OPTIMIZER_CHOICES[settings["optimizer"]].lr
    return settings


def header(settings: dict[str, Any]) -> str:
    """The header on one line, single-spaced."""
    return " ".join(" ".join(header_lines(MODEL, settings, STEPS)).split())


def phrases(settings: dict[str, Any]) -> list[str]:
    """The phrase of each setting the header shows for ``settings``, in :data:`HEADER` order."""
    shown = (s.phrase(settings, steps=f"{STEPS} steps") for s in HEADER)
    return [phrase.strip() for phrase in shown if phrase is not None]


def test_the_header_lists_every_setting_with_a_phrase_once() -> None:
    names = [s.name for s in HEADER]
    assert len(names) == len(set(names))
    assert set(names) == {name for name, s in SETTINGS.items() if s.shown}
    assert all(SETTINGS[s.name] == s for s in HEADER)


@pytest.mark.parametrize("settings", [
    run_settings(),
    *(run_settings(preset) for preset in PRESETS if preset != "default"),
    run_settings("best", optimizer="momentum", lr=0.05, warmup=1, init="normal",
                 output="softmax", output_bias=False),
], ids=lambda s: f"{s['optimizer']}-{s['schedule']}-{s['loss']}")
def test_the_header_shows_the_phrase_of_each_shown_setting_in_order(
        settings: dict[str, Any]) -> None:
    text = header(settings)
    where = 0
    for phrase in phrases(settings):
        found = text.find(phrase, where)
        assert found >= 0, (phrase, text)
        where = found + len(phrase)
    assert text.endswith(phrases(settings)[-1])


@pytest.mark.parametrize(("name", "value", "context"), [
    ("dataset", "fashion-mnist", {}),
    ("epochs", 3, {}),
    ("batch_size", 4321, {}),
    ("seed", 77, {}),
    ("optimizer", "adamw", {}),
    ("lr", 0.0375, {}),
    ("momentum", 0.625, {"optimizer": "momentum"}),
    ("weight_decay", 0.0125, {}),
    ("schedule", "step", {}),
    ("warmup", 345, {"schedule": "warmup-cosine"}),
    ("dropout", 0.375, {}),
    ("label_smoothing", 0.125, {}),
    ("loss", "xent-sum", {}),
    ("init", "normal", {}),
    ("output", "softmax", {}),
    ("output_bias", False, {}),
])
def test_a_changed_setting_changes_its_phrase(name: str, value: Any,
                                              context: dict[str, Any]) -> None:
    assert name in {s.name for s in HEADER}
    before, after = run_settings(**context), run_settings(**context, **{name: value})
    (setting,) = (s for s in HEADER if s.name == name)
    phrase = setting.phrase(after, steps=f"{STEPS} steps")
    assert phrase is not None and phrase != setting.phrase(before, steps=f"{STEPS} steps")
    if not isinstance(value, bool):
        assert f"{value}" in phrase
    assert phrase.strip() in header(after)
    assert header(after) != header(before)


def test_the_phrases_are_the_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another phrase or condition in a definition is what the header shows."""
    changed = {s.name: s for s in HEADER}
    changed["batch_size"] = replace(changed["batch_size"], shown="{} samples a step")
    changed["seed"] = replace(changed["seed"], shown_if=lambda s: s["seed"] != 0)
    changed["dropout"] = replace(changed["dropout"], shown=" (dropout {:g})")
    monkeypatch.setattr(report, "HEADER", tuple(changed.values()))
    text = header(run_settings())
    assert "128 samples a step" in text and "batch 128" not in text
    assert "seed" not in text and "seed 5" in header(run_settings(seed=5))
    assert "cosine schedule (dropout 0), label smoothing 0" in text


def test_conditions_on_other_settings() -> None:
    assert "momentum 0.9" not in header(run_settings())
    assert "momentum lr 0.05 momentum 0.9," in header(run_settings(optimizer="momentum"))
    assert "warm-up" not in header(run_settings(warmup=10))
    assert "warmup-cosine schedule with 1 warm-up step," in header(
        run_settings(schedule="warmup-cosine", warmup=1))
    assert "label smoothing" not in header(run_settings(loss="xent-sum"))
    assert header(run_settings(loss="xent-sum")).endswith("dropout 0, loss xent-sum")
    assert header(run_settings(output_bias=False)).endswith("logits output without bias")


def test_the_text_of_the_header() -> None:
    assert header_lines(MODEL, run_settings(), STEPS, threads=2) == [
        "MLP 784-8-10, relu, 6,370 parameters, float32 on numpy:cpu (2 threads), mnist,",
        "  8 epochs of 469 steps, batch 128, seed 0, adam lr 0.002, weight decay 0,",
        "  cosine schedule, dropout 0, label smoothing 0",
    ]
    assert header_lines(MODEL, run_settings("notebook"), 1, threads=1, ranks=2) == [
        "MLP 784-8-10, relu, 6,370 parameters, float32 on numpy:cpu (1 thread each),",
        "  data-parallel over 2 ranks, mnist, 50 epochs of 1 step, batch 60000, seed 0,",
        "  sgd lr 1e-05, weight decay 0, constant schedule, dropout 0, loss xent-sum,",
        "  normal init, softmax output without bias",
    ]
