"""The README's accuracy promises, through the real command line on real MNIST (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlp.checkpoint import load

pytestmark = pytest.mark.slow


def _train(tmp_path: Path, *args: str) -> list[dict]:
    metrics = tmp_path / "metrics.jsonl"
    run = subprocess.run([sys.executable, "-m", "mlp", "train", "--quiet", "--metrics",
                          str(metrics), *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def test_the_default_configuration_reaches_98_percent(tmp_path: Path) -> None:
    history = _train(tmp_path)
    assert len(history) == 8
    assert history[-1]["test_acc"] >= 0.98


def test_the_fast_preset_reaches_98_percent(tmp_path: Path) -> None:
    history = _train(tmp_path, "--preset", "fast", "--seed", "0")
    assert len(history) == 3
    assert history[-1]["test_acc"] >= 0.98


def test_options_on_the_command_line_override_the_preset(tmp_path: Path) -> None:
    ckpt = tmp_path / "m.safetensors"
    history = _train(tmp_path, "--preset", "fast", "--epochs", "1", "--hidden", "32",
                     "--save", str(ckpt))
    assert len(history) == 1  # not the preset's 3 epochs
    saved = load(ckpt)
    assert saved.config["sizes"] == [784, 32, 10]  # not the preset's 512,512
    # What the option did not name comes from the preset: Adam at 3e-3, label smoothing 0.1.
    assert saved.optimizer_config["type"] == "Adam" and saved.optimizer_config["lr"] == 3e-3
    assert saved.loss_config["label_smoothing"] == 0.1
