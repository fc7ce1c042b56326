"""Turn pytest-benchmark's JSON into ``REPORT.md`` and PNG plots.

Usage: ``python -m benchmarks.report results.json [--out DIR]``. Every figure is the median
time of its benchmark; the report puts each step beside its floor (only the matrix products the
step needs, same backend, same run) and beside PyTorch doing the same step, as ratios:

* ``× floor = step / floor``: 1 is the best a step could do; lower is better.
* ``× PyTorch = PyTorch / step``: above 1 we are faster than the PyTorch peer.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .workloads import (
    BACKEND_IDS,
    EPOCH_SAMPLES,
    QUICK_BATCH,
    QUICK_DTYPE,
    QUICK_SIZE,
    SIZES,
    gflops,
)

#: The epoch must-targets: epoch time within this factor of its GEMM floor, and this many times
#: faster than the PyTorch peer.
TARGET_FLOOR = 1.5
TARGET_PEER = 1.5
#: The backend whose epoch the targets apply to.
HEADLINE_BACKEND = "numpy"
STEP_KINDS = ("forward", "backward", "step", "floor")
PLOT_DIR = "plots"

NAN = math.nan


@dataclass
class StepRow:
    """One configuration's per-step medians (seconds) and the matching PyTorch peer."""

    backend: str
    device: str
    size: str
    batch: int
    dtype: str
    flops: int
    times: dict[str, float] = field(default_factory=dict)
    peer: float = NAN

    @property
    def label(self) -> str:
        return f"{self.backend} {self.size} b{self.batch} {self.dtype.replace('float', 'f')}"

    def time(self, kind: str) -> float:
        return self.times.get(kind, NAN)

    @property
    def x_floor(self) -> float:
        """Step time over GEMM-floor time (1 is the floor; lower is better)."""
        return _ratio(self.time("step"), self.time("floor"))

    @property
    def x_torch(self) -> float:
        """PyTorch peer time over step time (above 1: we are faster)."""
        return _ratio(self.peer, self.time("step"))

    @property
    def gflops(self) -> float:
        """Achieved GFLOP/s of the step's matrix products."""
        return gflops(self.flops, self.time("step"))


@dataclass
class EpochRow:
    """One backend's epoch, its GEMM floor and the PyTorch peer's epoch (seconds)."""

    backend: str
    device: str
    flops: int
    epoch: float = NAN
    floor: float = NAN
    peer: float = NAN
    #: Fastest rounds (seconds), kind -> time: a check on the medians when the machine is noisy.
    best: dict[str, float] = field(default_factory=dict)

    @property
    def x_floor(self) -> float:
        return _ratio(self.epoch, self.floor)

    @property
    def x_floor_best(self) -> float:
        return _ratio(self.best.get("epoch", NAN), self.best.get("floor", NAN))

    @property
    def x_torch_best(self) -> float:
        return _ratio(self.best.get("peer", NAN), self.best.get("epoch", NAN))

    @property
    def x_torch(self) -> float:
        return _ratio(self.peer, self.epoch)

    @property
    def gflops(self) -> float:
        return gflops(self.flops, self.epoch)


def _ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b <= 0:
        return NAN
    return a / b


def _order(backend: str) -> int:
    return BACKEND_IDS.index(backend) if backend in BACKEND_IDS else len(BACKEND_IDS)


def _size_order(size: str) -> int:
    return list(SIZES).index(size) if size in SIZES else len(SIZES)


# --- reading -------------------------------------------------------------------------------


def load(path: str | Path) -> dict[str, Any]:
    """pytest-benchmark's JSON as a dict."""
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)


def summarize(data: dict[str, Any]) -> tuple[list[StepRow], list[EpochRow]]:
    """Per-step rows (sorted by backend, size, batch, dtype) and epoch rows, from the JSON."""
    steps: dict[tuple[str, str, int, str], StepRow] = {}
    peers: dict[tuple[str, str, int, str], float] = {}
    epochs: dict[str, EpochRow] = {}
    epoch_peers: dict[str, tuple[float, float]] = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        kind = info.get("kind")
        if kind is None:
            continue
        median = float(bench["stats"]["median"])
        fastest = float(bench["stats"].get("min", NAN))
        config = (info["size"], int(info["batch"]), info["dtype"])
        if kind == "peer":
            peers[(info["device"], *config)] = median
        elif kind in STEP_KINDS:
            key = (info["backend"], *config)
            row = steps.get(key)
            if row is None:
                row = steps[key] = StepRow(info["backend"], info["device"], *config,
                                           flops=int(info["flops"]))
            row.times[kind] = median
        elif kind == "epoch-peer":
            epoch_peers[info["device"]] = (median, fastest)
        elif kind in ("epoch", "epoch-floor"):
            row_e = epochs.get(info["backend"])
            if row_e is None:
                row_e = epochs[info["backend"]] = EpochRow(info["backend"], info["device"],
                                                           flops=int(info["flops"]))
            if kind == "epoch":
                row_e.epoch = median
                row_e.best["epoch"] = fastest
            else:
                row_e.floor = median
                row_e.best["floor"] = fastest
    for row in steps.values():
        row.peer = peers.get((row.device, row.size, row.batch, row.dtype), NAN)
    for row_e in epochs.values():
        row_e.peer, row_e.best["peer"] = epoch_peers.get(row_e.device, (NAN, NAN))
    step_rows = sorted(steps.values(), key=lambda r: (_order(r.backend), _size_order(r.size),
                                                      r.batch, r.dtype))
    epoch_rows = sorted(epochs.values(), key=lambda r: _order(r.backend))
    return step_rows, epoch_rows


# --- formatting ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return _num(seconds * 1e3)


def _num(v: float) -> str:
    if math.isnan(v):
        return "—"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _x(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.2f}×"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 0) -> str:
    align = ["---:" if i >= right_from else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine_section(data: dict[str, Any]) -> str:
    """The report's header: CPU, cores, BLAS threads, GPU, versions, date."""
    info = data.get("machine_info", {}).get("mlp")
    source = "benchmark run"
    if info is None:
        from .machine import collect

        info = collect()
        source = "report time: the JSON has no machine description"
    cores = f"{info.get('cores', '?')} logical"
    if info.get("usable_cores") not in (None, info.get("cores")):
        cores += f", {info['usable_cores']} usable"
    pools = []
    for pool in info.get("blas", []):
        name = pool.get("internal_api", "?")
        version = f" {pool['version']}" if pool.get("version") else ""
        arch = f" ({pool['architecture']})" if pool.get("architecture") else ""
        lib = f" [{pool['library']}]" if pool.get("library") else ""
        pools.append(f"{name}{version}{arch}{lib}: {pool.get('num_threads', '?')} threads")
    gpu = info.get("gpu") or {}
    names = sorted({n for key in ("torch", "cupy") for n in gpu.get(key, [])})
    gpu_text = ", ".join(names) if names else "none"
    versions = info.get("versions", {})
    version_text = ", ".join([f"Python {info.get('python', '?')}"]
                             + [f"{k} {v}" for k, v in versions.items()])
    rows = [
        ["CPU", f"{info.get('cpu', '?')} ({cores} cores)"],
        ["BLAS / OpenMP", "; ".join(pools) or "unknown"],
        ["PyTorch threads", str(info.get("torch_threads", "—"))],
        ["GPU", gpu_text],
        ["Platform", str(info.get("platform", "?"))],
        ["Versions", version_text],
        ["Date", f"{info.get('date') or str(data.get('datetime', '?'))[:16]} ({source})"],
    ]
    return "## Machine\n\n" + "\n".join(f"- **{name}**: {value}" for name, value in rows)


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def epoch_section(epochs: list[EpochRow], plots: dict[str, str]) -> str:
    """The headline: one epoch against its GEMM floor and against PyTorch."""
    lines = ["## Headline: one training epoch", ""]
    lines.append(
        f"{QUICK_SIZE}, batch {QUICK_BATCH}, {QUICK_DTYPE}, Adam, one epoch over "
        f"{EPOCH_SAMPLES} random uint8 images (784 pixels) with int64 labels, through "
        "`mlp.train.Trainer` (batches gathered from the uint8 set and converted to float on "
        "the device; no test set)."
    )
    head = next((r for r in epochs if r.backend == HEADLINE_BACKEND), None)
    floor_ok = None if head is None or math.isnan(head.x_floor) else head.x_floor <= TARGET_FLOOR
    peer_ok = None if head is None or math.isnan(head.x_torch) else head.x_torch >= TARGET_PEER
    lines += [
        "",
        f"Must-targets ({HEADLINE_BACKEND}):",
        "",
        f"- epoch ≤ {TARGET_FLOOR} × its GEMM floor: {_verdict(floor_ok)}"
        + (f" — {_x(head.x_floor)} floor" if floor_ok is not None else ""),
        f"- ≥ {TARGET_PEER} × faster than the PyTorch peer: {_verdict(peer_ok)}"
        + (f" — {_x(head.x_torch)} PyTorch's speed" if peer_ok is not None else ""),
        "",
    ]
    if epochs:
        rows = [[r.backend, r.device, _num(r.epoch), _num(r.floor), _num(r.peer),
                 _x(r.x_floor), _x(r.x_torch), _num(r.gflops), _x(r.x_floor_best),
                 _x(r.x_torch_best)] for r in epochs]
        lines.append(_table(["Backend", "Device", "Epoch s", "GEMM floor s", "PyTorch s",
                             "× floor", "× PyTorch", "GFLOP/s", "× floor (fastest rounds)",
                             "× PyTorch (fastest rounds)"], rows, right_from=2))
        lines += ["", "Times and the targets use medians; the last two columns compare the "
                      "fastest round of each, a check on how much a busy machine moved them.", ""]
    if "epoch" in plots:
        lines += [f"![epoch times]({plots['epoch']})", ""]
    return "\n".join(lines)


def step_section(rows: list[StepRow], plots: dict[str, str]) -> str:
    """The per-configuration table and its plots."""
    lines = ["## Per step", ""]
    if not rows:
        return "\n".join(lines + ["No per-step benchmarks in this run.", ""])
    table = [[r.backend, r.size, str(r.batch), r.dtype, _ms(r.time("forward")),
              _ms(r.time("backward")), _ms(r.time("step")), _ms(r.time("floor")), _ms(r.peer),
              _num(r.gflops), _x(r.x_floor), _x(r.x_torch)] for r in rows]
    lines.append(_table(["Backend", "Model", "Batch", "Dtype", "Forward ms", "Backward ms",
                         "Step ms", "Floor ms", "PyTorch ms", "Step GFLOP/s", "× floor",
                         "× PyTorch"], table, right_from=2))
    lines.append("")
    for key, alt in (("ratio_floor", "step time over GEMM floor"),
                     ("ratio_pytorch", "speed relative to PyTorch"),
                     ("step_ms", "milliseconds per step")):
        if key in plots:
            lines += [f"![{alt}]({plots[key]})", ""]
    return "\n".join(lines)


MEASURES = f"""## What is measured

Each figure is the median of its benchmark's rounds (pytest-benchmark). Ratios compare numbers
from the same run on the same machine.

- **Forward**: `model.layers.forward(x, train=True)`, the buffered internal pass of a step.
- **Backward**: the loss gradient (`loss.backward()`) and `model.layers.backward(...)`, repeated
  on one forward pass and loss computed once before timing (backward only reads what forward
  stored, so every repetition does the same work).
- **Step**: `model.train_step(x, y)` with Adam: forward, loss, backward and the update.
- **Floor**: only the matrix products one step needs — `x @ W` per layer, `h.T @ g` per layer and
  `g @ W.T` for every layer but the first — same shapes, dtype and backend, into preallocated
  `out=` buffers where the library has them (NumPy, CuPy, PyTorch): the best case.
- **PyTorch**: the same network as `torch.nn.Sequential(Linear, ReLU, …)` with autograd,
  `torch.optim.Adam` (foreach default), `CrossEntropyLoss` and `zero_grad(set_to_none=True)`, same
  shapes, dtype and device: what a user would write instead.
- **Step GFLOP/s**: FLOPs of the step's matrix products (`2·N·Σ in·out` forward, twice that
  backward less the first layer's `dX`) over the step time.
- **× floor** = step / floor (1 is the floor; lower is better). **× PyTorch** = PyTorch / ours
  (above 1: we are faster).
- **Epoch**: one full epoch of `mlp.train.Trainer` ({EPOCH_SAMPLES} samples: 468 batches of
  {QUICK_BATCH} and one of 96), its GEMM floor (the same 469 steps of matrix products only) and the
  PyTorch peer's epoch (batches gathered from a uint8 tensor by a random permutation and converted
  to float / 255, loss and accuracy summed on the device). Both keep the data on the device and
  leave its transfer out of the timing.
- GPU timings synchronise the device inside the timed function.
- Fixed-batch benchmarks use a learning rate of 1e-4 so that repeating one batch thousands of times
  does not memorise it (the cost of an update does not depend on the learning rate).

Reproduce with `mlp bench` (CPU suite), `mlp bench --quick` (the 784-512-512-10 / batch 128 /
float32 rows and the epoch), `mlp bench --gpu` (the GPU suite), or `python -m benchmarks --help`.
"""


def render(data: dict[str, Any], steps: list[StepRow], epochs: list[EpochRow],
           plots: dict[str, str], note: str | None = None) -> str:
    """The whole Markdown report."""
    parts = ["# array-api-mlp benchmark report", ""]
    if note:
        parts += [note, ""]
    parts += [machine_section(data), "", epoch_section(epochs, plots), step_section(steps, plots),
              MEASURES]
    return "\n".join(parts)


# --- plots ---------------------------------------------------------------------------------

_COLORS = {"numpy": "#4c72b0", "torch": "#dd8452", "array_api_strict": "#8c8c8c",
           "cupy": "#55a868", "torch-cuda": "#c44e52", "torch.nn": "#937860"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ratio_plot(rows: list[StepRow], attr: str, path: Path, title: str, xlabel: str,
                lines: Sequence[tuple[float, str]]) -> bool:
    plt = _pyplot()
    data = [(r.label, getattr(r, attr), r.backend) for r in rows]
    data = [d for d in data if not math.isnan(d[1])]
    if not data:
        return False
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(data) + 1.5))
    ys = range(len(data))
    ax.barh(list(ys), [d[1] for d in data], color=[_COLORS.get(d[2], "#999999") for d in data])
    ax.set_yticks(list(ys), [d[0] for d in data], fontsize=8)
    ax.set_ylim(len(data) - 0.5, -0.5)  # first row on top
    for value, style in lines:
        ax.axvline(value, color="black", linestyle=style, linewidth=1)
    for y, d in zip(ys, data, strict=True):
        ax.text(d[1], y, f" {d[1]:.2f}×", va="center", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.set_xlim(0, max(max(d[1] for d in data), max(v for v, _ in lines)) * 1.15)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def _step_ms_plot(rows: list[StepRow], path: Path) -> bool:
    plt = _pyplot()
    rows = [r for r in rows if not math.isnan(r.time("step"))]
    if not rows:
        return False
    series = [("step (ours)", [r.time("step") for r in rows], "#4c72b0"),
              ("GEMM floor", [r.time("floor") for r in rows], "#8c8c8c"),
              ("PyTorch", [r.peer for r in rows], "#dd8452")]
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) + 1.5))
    h = 0.27
    for i, (name, values, color) in enumerate(series):
        ys = [j + (i - 1) * h for j in range(len(rows))]
        ax.barh(ys, [v * 1e3 if not math.isnan(v) else 0 for v in values], height=h,
                color=color, label=name)
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    times = [v * 1e3 for _, values, _ in series for v in values if v > 0]
    few_decades = max(times) / min(times) < 30
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g") if few_decades else NullFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("milliseconds per step (median, log scale)")
    ax.set_title("Time per training step")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def _epoch_plot(epochs: list[EpochRow], path: Path) -> bool:
    plt = _pyplot()
    if not epochs:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.27
    series = [("ours", [r.epoch for r in epochs], "#4c72b0"),
              ("GEMM floor", [r.floor for r in epochs], "#8c8c8c"),
              ("PyTorch", [r.peer for r in epochs], "#dd8452")]
    for i, (name, values, color) in enumerate(series):
        xs = [j + (i - 1) * width for j in range(len(epochs))]
        heights = [0 if math.isnan(v) else v for v in values]
        bars = ax.bar(xs, heights, width=width, color=color, label=name)
        for bar, v in zip(bars, values, strict=True):
            if not math.isnan(v):
                ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.2f}", ha="center",
                        va="bottom", fontsize=7)
    labels = [f"{r.backend}\n{_x(r.x_floor)} floor, {_x(r.x_torch)} PyTorch" for r in epochs]
    ax.set_xticks(range(len(epochs)), labels, fontsize=8)
    ax.set_ylabel("seconds per epoch (median)")
    ax.set_title(f"One epoch: {QUICK_SIZE}, batch {QUICK_BATCH}, {QUICK_DTYPE}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def make_plots(steps: list[StepRow], epochs: list[EpochRow], out_dir: Path) -> dict[str, str]:
    """Write the PNGs under ``out_dir/plots``; returns name -> path relative to ``out_dir``."""
    plot_dir = out_dir / PLOT_DIR
    plot_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    jobs = {
        "epoch": lambda p: _epoch_plot(epochs, p),
        "ratio_floor": lambda p: _ratio_plot(
            steps, "x_floor", p, "Step time / GEMM floor (lower is better)",
            "× floor (1 = only the matrix products)", [(1.0, "-"), (TARGET_FLOOR, "--")]),
        "ratio_pytorch": lambda p: _ratio_plot(
            steps, "x_torch", p, "PyTorch step time / our step time (higher is better)",
            "× PyTorch (above 1: faster than PyTorch)", [(1.0, "-"), (TARGET_PEER, "--")]),
        "step_ms": lambda p: _step_ms_plot(steps, p),
    }
    for name, job in jobs.items():
        path = plot_dir / f"{name}.png"
        if job(path):
            made[name] = f"{PLOT_DIR}/{name}.png"
        elif path.exists():
            path.unlink()  # a stale plot from an earlier run must not be shown
    return made


# --- entry points --------------------------------------------------------------------------


def build_report(json_path: str | Path, out_dir: str | Path, note: str | None = None) -> Path:
    """Read ``json_path``, write ``out_dir/REPORT.md`` and ``out_dir/plots/*.png``; returns
    the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load(json_path)
    steps, epochs = summarize(data)
    plots = make_plots(steps, epochs, out)
    report = out / "REPORT.md"
    report.write_text(render(data, steps, epochs, plots, note), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                     description="Build REPORT.md and plots from the JSON of "
                                                 "pytest-benchmark (--benchmark-json).")
    parser.add_argument("json", help="pytest-benchmark JSON file")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent),
                        help="directory for REPORT.md and plots/ (default: benchmarks/)")
    parser.add_argument("--note", default=None, help="a line to put under the title")
    args = parser.parse_args(argv)
    print(f"report written to {build_report(args.json, args.out, args.note)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
