"""The report's PNG plots: epoch times, per-step ratios and per-step times (matplotlib, Agg).

Times are drawn on linear axes from zero, one panel per model size and batch so that no panel
mixes milliseconds with hundreds of them. A time that was not measured is written where its bar
would be, so every legend entry has a bar or a reason; reference lines are named in the legend.
An implausible figure is hatched and carries the report's mark (:data:`BUSY_MARK` when its
rounds disagree, :data:`BELOW_MARK` below its floor), explained in the legend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .rows import BELOW_MARK, BUSY_MARK, ROUNDS_DISAGREE, EpochRow, StepRow
from .workloads import QUICK_BATCH, QUICK_DTYPE, QUICK_SIZE

PLOT_DIR = "plots"
BACKEND_COLORS = {"numpy": "#4c72b0", "torch": "#dd8452", "array_api_strict": "#8c8c8c",
                  "cupy": "#55a868", "torch-cuda": "#c44e52"}
#: The three times each row compares: ours, the GEMM floor, the PyTorch peer.
SERIES = (("ours", "#4c72b0"), ("GEMM floor", "#8c8c8c"), ("PyTorch", "#dd8452"))
#: Bar height of one series in a group of three.
BAR = 0.27
MARK_LEGEND = {BUSY_MARK: f"{BUSY_MARK} rounds disagree by > {ROUNDS_DISAGREE}×: busy machine",
               BELOW_MARK: f"{BELOW_MARK} below its floor: not a lower bound"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def _short(dtype: str) -> str:
    return dtype.replace("float", "f")


def _plain(names: Sequence[str]) -> list[Any]:
    """Unhatched legend entries of the series ``names`` (a hatched first bar would otherwise
    give its series a hatched entry)."""
    from matplotlib.patches import Patch

    colors = dict(SERIES)
    return [Patch(facecolor=colors[n], label=n) for n in names]


def _mark_legend(used: set[str]) -> list[Any]:
    """Legend handles explaining the marks in ``used`` (hatched bars carry them)."""
    from matplotlib.patches import Patch

    return [Patch(facecolor="white", edgecolor="black", hatch="///", label=MARK_LEGEND[m])
            for m in (BUSY_MARK, BELOW_MARK) if any(m in u for u in used)]


def _time_bars(ax: Any, labels: Sequence[str], series: Sequence[Sequence[float]], scale: float,
               unit: str, values: bool = False,
               marks: Sequence[Sequence[str]] | None = None) -> set[str]:
    """Grouped horizontal bars on a linear axis from zero: one group per label (first on top),
    one bar per entry of :data:`SERIES`. ``series[i][j]`` is series ``i`` of group ``j`` in
    seconds, NaN when not measured (written as such in place of the bar); ``marks[i][j]`` the
    marks of that time (hatched and written after the bar). Returns the marks used."""
    top = max((v * scale for s in series for v in s if not math.isnan(v)), default=1.0)
    used: set[str] = set()
    for i, ((name, color), times) in enumerate(zip(SERIES, series, strict=True)):
        ys = [j + (i - 1) * BAR for j in range(len(labels))]
        widths = [0.0 if math.isnan(v) else v * scale for v in times]
        measured = any(not math.isnan(v) for v in times)
        these = marks[i] if marks is not None else [""] * len(times)
        bars = ax.barh(ys, widths, height=BAR, color=color, label=name if measured else None)
        for bar, y, v, w, mark in zip(bars, ys, times, widths, these, strict=True):
            if math.isnan(v):
                ax.text(0, y, f" {name}: not measured", va="center", fontsize=7, color="#555555")
                continue
            if mark:
                bar.set_hatch("///")
                bar.set_edgecolor("black")
                used.add(mark)
            if values or mark:
                ax.text(w, y, (f" {w:.2f}" if values else "") + mark, va="center", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, top * 1.12)
    ax.set_xlabel(f"{unit} (median)")
    ax.grid(axis="x", alpha=0.3)
    return used


def epoch_plot(epochs: list[EpochRow], path: Path) -> bool:
    """Seconds per epoch of each backend beside its GEMM floor and the PyTorch peer."""
    if not epochs:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 1.0 * len(epochs) + 1.4))
    labels = ["\n".join([r.backend] + [f"{v:.2f}× {what}{r.mark(attr)}" for v, what, attr in
                                       ((r.x_floor, "floor", "x_floor"),
                                        (r.x_torch, "PyTorch", "x_torch"))
                                       if not math.isnan(v)]) for r in epochs]
    marks = [[_busy(r, kind) for r in epochs] for kind in ("epoch", "floor", "peer")]
    used = _time_bars(ax, labels, [[r.epoch for r in epochs], [r.floor for r in epochs],
                                   [r.peer for r in epochs]], 1.0, "seconds per epoch",
                      values=True, marks=marks)
    used |= {r.mark(a) for r in epochs for a in ("x_floor", "x_torch")}
    ax.set_title(f"Time for one training epoch, shorter is faster\n"
                 f"({QUICK_SIZE}, batch {QUICK_BATCH}, {QUICK_DTYPE})")
    _, names = ax.get_legend_handles_labels()
    ax.legend(handles=_plain(names) + _mark_legend(used), fontsize=8, loc="lower right")
    _save(fig, path)
    return True


def _busy(row: Any, kind: str) -> str:
    """`` †`` when the rounds of ``row``'s time ``kind`` disagree (a busy machine)."""
    return f" {BUSY_MARK}" if row.busy(kind) else ""


def step_time_plot(rows: list[StepRow], path: Path) -> bool:
    """Milliseconds per step beside floor and peer: one panel per (model size, batch), each on its
    own linear scale from zero."""
    rows = [r for r in rows if not math.isnan(r.time("step"))]
    if not rows:
        return False
    panels: dict[tuple[str, int], list[StepRow]] = {}
    for r in rows:
        panels.setdefault((r.size, r.batch), []).append(r)
    plt = _pyplot()
    heights = [len(group) for group in panels.values()]
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, layout="constrained",
                             figsize=(8, 0.62 * sum(heights) + 1.1 * len(panels) + 0.8),
                             gridspec_kw={"height_ratios": heights})
    used: set[str] = set()
    for ax, ((size, batch), group) in zip(axes[:, 0], panels.items(), strict=True):
        labels = [f"{r.backend} {_short(r.dtype)}" for r in group]
        marks = [[_busy(r, "step") + (f" {BELOW_MARK}" if r.x_floor < 1 else "")
                  for r in group], [_busy(r, "floor") for r in group],
                 [_busy(r, "peer") for r in group]]
        used |= _time_bars(ax, labels, [[r.time("step") for r in group],
                                        [r.time("floor") for r in group],
                                        [r.peer for r in group]], 1e3, "milliseconds per step",
                           marks=marks)
        ax.set_title(f"{size}, batch {batch}", fontsize=10)
    handles, names = axes[0, 0].get_legend_handles_labels()
    for ax in axes[1:, 0]:  # a series missing from the first panel may be in another
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.suptitle("Time per training step, shorter is faster (each panel on its own scale)",
                 fontsize=11)
    handles = _plain(names) + _mark_legend(used)
    fig.legend(handles, [h.get_label() for h in handles], fontsize=9,
               loc="outside lower center", ncol=3, frameon=False)
    _save(fig, path)
    return True


def ratio_plot(rows: list[StepRow], attr: str, path: Path, title: str, xlabel: str,
               lines: Sequence[tuple[float, str, str]]) -> bool:
    """One bar per configuration of ``getattr(row, attr)``, coloured by backend, with reference
    lines ``(value, linestyle, label)``."""
    data = [(r, getattr(r, attr)) for r in rows]
    data = [(r, v) for r, v in data if not math.isnan(v)]
    if not data:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(data) + 1.8))
    ys = list(range(len(data)))
    from matplotlib.patches import Patch

    seen: dict[str, Any] = {}  # backend -> its legend entry (unhatched)
    used: set[str] = set()
    for y, (r, v) in zip(ys, data, strict=True):
        color = BACKEND_COLORS.get(r.backend, "#999999")
        seen.setdefault(r.backend, Patch(facecolor=color, label=r.backend))
        mark = r.mark(attr)
        bar = ax.barh(y, v, color=color)[0]
        if mark:  # an implausible figure: hatched, and marked as in the report's tables
            bar.set_hatch("///")
            bar.set_edgecolor("black")
            used.add(mark)
        ax.text(v, y, f" {v:.2f}×{mark}", va="center", fontsize=7,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.8})
    ax.set_yticks(ys, [f"{r.backend} {r.size} b{r.batch} {_short(r.dtype)}" for r, _ in data],
                  fontsize=8)
    ax.set_ylim(len(data) - 0.5, -0.5)  # first row on top
    for value, style, label in lines:
        ax.axvline(value, color="black", linestyle=style, linewidth=1, label=label)
    ax.set_xlim(0, max(max(v for _, v in data), max(v for v, _, _ in lines)) * 1.15)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*seen.values(), *handles, *_mark_legend(used)], fontsize=8,
              loc="center left",
              bbox_to_anchor=(1.0, 0.5), frameon=False)
    _save(fig, path)
    return True


def make_plots(steps: list[StepRow], epochs: list[EpochRow], out_dir: Path,
               target_floor: float, target_peer: float) -> dict[str, str]:
    """Write the PNGs under ``out_dir/plots``; returns name -> path relative to ``out_dir``.

    A plot with nothing to show is not written, and a stale one from an earlier run is removed.
    """
    plot_dir = out_dir / PLOT_DIR
    plot_dir.mkdir(parents=True, exist_ok=True)
    jobs = {
        "epoch": lambda p: epoch_plot(epochs, p),
        "ratio_floor": lambda p: ratio_plot(
            steps, "x_floor", p, "Step time over its GEMM floor, lower is better",
            "× floor (1 = only the matrix products)",
            [(1.0, "-", "1× = the GEMM floor"),
             (target_floor, "--", f"{target_floor}× (the epoch's target)")]),
        "ratio_pytorch": lambda p: ratio_plot(
            steps, "x_torch", p, "Speed relative to PyTorch, higher is better",
            "× PyTorch (PyTorch's step time / ours; above 1: faster than PyTorch)",
            [(1.0, "-", "1× = as fast as PyTorch"),
             (target_peer, "--", f"{target_peer}× (the epoch's target)")]),
        "step_ms": lambda p: step_time_plot(steps, p),
    }
    made: dict[str, str] = {}
    for name, job in jobs.items():
        path = plot_dir / f"{name}.png"
        if job(path):
            made[name] = f"{PLOT_DIR}/{name}.png"
        elif path.exists():
            path.unlink()
    return made
