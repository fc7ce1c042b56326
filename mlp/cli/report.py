"""What ``mlp train`` prints: a header naming every setting that changes the numbers, one line
per epoch, and where an interrupted run stopped; all within 80 columns."""

from __future__ import annotations

import signal
from typing import Any

from ..schema import HEADER

WIDTH = 80


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def header_lines(model: Any, settings: dict[str, Any], steps_per_epoch: int,
                 threads: int | None = None, ranks: int | None = None) -> list[str]:
    """The run in words: the model, where it runs, then the phrase of each setting of
    :data:`mlp.schema.HEADER` that ``settings`` show, in that order. The first line starts with
    ``MLP ``; ``ranks``: a distributed run's processes (``threads`` is then per rank)."""
    backend = model.backend
    parts = [
        f"MLP {'-'.join(map(str, model.sizes))}",
        f"{model.activation}",
        f"{model.store.size:,} parameters",
        f"{model.dtype_name} on {backend.name}:{backend.device}"
        + (f" ({plural(threads, 'thread')}{' each' if ranks else ''})" if threads else ""),
        *([f"data-parallel over {plural(ranks, 'rank')}"] if ranks else []),
    ]
    steps = plural(steps_per_epoch, "step")
    for setting in HEADER:
        phrase = setting.phrase(settings, steps=steps)
        if phrase is None:
            continue
        if phrase.startswith(" "):
            parts[-1] += phrase
        else:
            parts.append(phrase)
    return pack(parts)


def pack(parts: list[str], width: int = WIDTH) -> list[str]:
    """``parts`` joined by commas into lines of at most ``width`` columns (a part is never
    split; continuation lines are indented)."""
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 2 + len(part) + 1 <= width:
            lines[-1] += f", {part}"
        else:
            lines[-1] += ","
            lines.append(f"  {part}")
    return lines


def epoch_line(m: dict[str, Any], epochs: int) -> str:
    """One finished epoch: losses, accuracies and seconds (samples/s is in ``--metrics``)."""
    width = len(str(epochs))
    line = (f"epoch {m['epoch']:>{width}}/{epochs}  "
            f"train loss {m['train_loss']:.4f} acc {100 * m['train_acc']:.2f}%")
    if "test_loss" in m:
        line += f"  test loss {m['test_loss']:.4f} acc {100 * m['test_acc']:.2f}%"
    return f"{line}  {m['seconds']:.1f} s"


def stop_line(signum: int, trainer: Any) -> str:
    """Where a stopped run stands: inside an epoch, or between two."""
    st, name = trainer.state, signal.Signals(signum).name
    if st.batch == 0:
        where = f"stopped after epoch {st.epoch} of {trainer.epochs}"
    else:
        where = (f"stopped at epoch {st.epoch + 1}, step {st.batch} of "
                 f"{trainer.steps_per_epoch}")
    return f"mlp: {name} received: {where}"
