"""Loss and accuracy curves of a training run, drawn with matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_history(history: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Write a PNG with loss (left) and accuracy (right) per epoch, train and test.

    ``history`` holds the per-epoch metrics dicts of :class:`mlp.train.Trainer`.
    """
    # A Figure of its own on the Agg canvas: the user's pyplot state and backend stay as they were.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, label, ax in (
        ("train_loss", "train", ax_loss), ("test_loss", "test", ax_loss),
        ("train_acc", "train", ax_acc), ("test_acc", "test", ax_acc),
    ):
        values = [h.get(key) for h in history]
        if all(v is not None for v in values):
            if key.endswith("acc"):
                values = [100.0 * v for v in values]
            ax.plot(epochs, values, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss (mean per sample)",
                title="Loss per epoch (lower is better)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)",
               title="Accuracy per epoch (higher is better)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
