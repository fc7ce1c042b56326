"""Turn pytest-benchmark's JSON into ``REPORT.md`` and its plots (:mod:`benchmarks.plots`).

``mlp bench --report-only --json results.json --out DIR`` rebuilds it from a JSON. The report
puts each step beside its floor and beside PyTorch doing the same step, as ratios; its last
section, :data:`benchmarks.measured.WHAT_IS_MEASURED`, says what each number measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .measured import EPOCH_WORKLOAD, WHAT_IS_MEASURED
from .plots import make_plots
from .workloads import BACKEND_IDS, SIZES, TORCH_CPU_INSTALL, gflops

#: The epoch must-targets: epoch time within this factor of its GEMM floor, and this many times
#: faster than the PyTorch peer.
TARGET_FLOOR = 1.5
TARGET_PEER = 1.5
#: The backend whose epoch the targets apply to.
HEADLINE_BACKEND = "numpy"
STEP_KINDS = ("forward", "backward", "step", "floor")

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


def _torch_version(data: dict[str, Any]) -> str | None:
    """PyTorch's version on the benchmarked machine, ``None`` when it was not installed."""
    return data.get("machine_info", {}).get("mlp", {}).get("versions", {}).get("torch")


def missing_peer(torch_version: str | None) -> str:
    """Why the PyTorch peer has no numbers, and what to do about it."""
    if torch_version is None:
        return (f"PyTorch is not installed; install its CPU build with `{TORCH_CPU_INSTALL}` "
                "and rerun `mlp bench`")
    return f"the PyTorch peer (torch {torch_version}) was not part of this run"


def _target(text: str, ratio: float, ok: bool, what: str, reason: str) -> str:
    if math.isnan(ratio):
        return f"- {text}: not measured — {reason}"
    return f"- {text}: {'**met**' if ok else '**not met**'} — {_x(ratio)} {what}"


def epoch_section(epochs: list[EpochRow], plots: dict[str, str],
                  torch_version: str | None = None) -> str:
    """The headline: one epoch against its GEMM floor and against PyTorch; a target that could
    not be judged says why."""
    lines = ["## Headline: one training epoch", "",
             f"{EPOCH_WORKLOAD}, through `mlp.train.Trainer` (see *What is measured*).", ""]
    head = next((r for r in epochs if r.backend == HEADLINE_BACKEND), None)
    if head is None:
        head = EpochRow(HEADLINE_BACKEND, "cpu", flops=0)
        no_epoch = (f"this run has no {HEADLINE_BACKEND} epoch (`mlp bench` and "
                    "`mlp bench --quick` include it)")
        floor_reason = peer_reason = no_epoch
    else:
        floor_reason = "this run has no GEMM-floor epoch"
        peer_reason = missing_peer(torch_version)
    lines += [
        f"Must-targets ({HEADLINE_BACKEND}):",
        "",
        _target(f"epoch ≤ {TARGET_FLOOR} × its GEMM floor", head.x_floor,
                head.x_floor <= TARGET_FLOOR, "floor", floor_reason),
        _target(f"≥ {TARGET_PEER} × faster than the PyTorch peer", head.x_torch,
                head.x_torch >= TARGET_PEER, "PyTorch's speed", peer_reason),
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


def step_section(rows: list[StepRow], plots: dict[str, str],
                 torch_version: str | None = None) -> str:
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
    if all(math.isnan(r.peer) for r in rows):
        lines += [f"No PyTorch column: {missing_peer(torch_version)}.", ""]
    for key, alt in (("ratio_floor", "step time over GEMM floor"),
                     ("ratio_pytorch", "speed relative to PyTorch"),
                     ("step_ms", "milliseconds per step")):
        if key in plots:
            lines += [f"![{alt}]({plots[key]})", ""]
    return "\n".join(lines)


def render(data: dict[str, Any], steps: list[StepRow], epochs: list[EpochRow],
           plots: dict[str, str], note: str | None = None) -> str:
    """The whole Markdown report."""
    parts = ["# array-api-mlp benchmark report", ""]
    if note:
        parts += [note, ""]
    torch_version = _torch_version(data)
    parts += [machine_section(data), "", epoch_section(epochs, plots, torch_version),
              step_section(steps, plots, torch_version), WHAT_IS_MEASURED]
    return "\n".join(parts)


# --- entry points --------------------------------------------------------------------------


def build_report(json_path: str | Path, out_dir: str | Path, note: str | None = None) -> Path:
    """Read ``json_path``, write ``out_dir/REPORT.md`` and ``out_dir/plots/*.png``; returns
    the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load(json_path)
    steps, epochs = summarize(data)
    plots = make_plots(steps, epochs, out, TARGET_FLOOR, TARGET_PEER)
    report = out / "REPORT.md"
    report.write_text(render(data, steps, epochs, plots, note), encoding="utf-8")
    return report

