"""Turn pytest-benchmark's JSON into ``REPORT.md`` and its plots (:mod:`benchmarks.plots`), both
made from the same rows (:mod:`benchmarks.rows`).

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

from .contest import BY_NAME, CONTESTANTS
from .measured import BELOW_FLOOR, EPOCH_WORKLOAD, WHAT_IS_MEASURED
from .peers import JAX_INSTALL
from .phases import PHASES, STEP
from .plots import make_plots
from .results import load
from .rows import (
    BELOW_MARK,
    BUSY_MARK,
    NAN,
    ROUNDS_DISAGREE,
    EpochRow,
    StepRow,
    median,
    round_spread,
)
from .rows import marks as _marks
from .rows import ratio as _ratio
from .sklearn_report import sklearn_section
from .workloads import (
    BACKEND_IDS,
    DROPOUT,
    DROPOUT_TARGET,
    QUICK_BATCH,
    QUICK_DTYPE,
    QUICK_SIZE,
    SIZES,
    TORCH_CPU_INSTALL,
)

#: The epoch targets, judged on the contest's fastest rounds: epoch within TARGET_FLOOR (at
#: worst MUST_FLOOR) of its GEMM floor; TARGET_PEER (at worst MUST_PEER) times faster than
#: PyTorch as users write it and than jitted JAX.
TARGET_FLOOR, MUST_FLOOR = 1.2, 1.3
TARGET_PEER, MUST_PEER = 1.5, 1.4
#: The CLI's epoch and the benchmark's must agree within this fraction.
CLI_AGREEMENT = 0.10
#: Every peer's epoch loss must agree with ours within this fraction (same initial weights,
#: same batches in the same order: only float32 rounding tells them apart).
LOSS_AGREEMENT = 0.01
BUSY_NOTE = (f"{BUSY_MARK} rounds disagree by more than {ROUNDS_DISAGREE}×: the machine was busy "
             "while this was measured, so the figure is not to be quoted; rerun on a quiet machine")
STEP_KINDS = ("forward", "backward", "step", "floor", "step-dropout", "step-graph")

#: Benchmarks whose pytest-benchmark time is not a figure of the report (they store theirs).
_NOT_TIMES = ("epoch-contest", "phases", "jax-steps", "sklearn-contest")


def _order(backend: str) -> int:
    return BACKEND_IDS.index(backend) if backend in BACKEND_IDS else len(BACKEND_IDS)


def _size_order(size: str) -> int:
    return list(SIZES).index(size) if size in SIZES else len(SIZES)


# --- reading -------------------------------------------------------------------------------


def summarize(data: dict[str, Any]) -> tuple[list[StepRow], list[EpochRow]]:
    """Per-step rows (sorted by backend, size, batch, dtype) and epoch rows, from the JSON."""
    steps: dict[tuple[str, str, int, str], StepRow] = {}
    peers: dict[tuple[str, str, int, str], tuple[float, float]] = {}
    epochs: dict[str, EpochRow] = {}
    epoch_peers: dict[str, tuple[float, float, float]] = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        kind = info.get("kind")
        if kind is None or kind in _NOT_TIMES:
            continue
        median = float(bench["stats"]["median"])
        fastest = float(bench["stats"].get("min", NAN))
        spread = round_spread(bench["stats"])
        config = (info["size"], int(info["batch"]), info["dtype"])
        if kind == "peer":
            peers[(info["device"], *config)] = (median, spread)
        elif kind in STEP_KINDS:
            key = (info["backend"], *config)
            row = steps.get(key)
            if row is None:
                row = steps[key] = StepRow(info["backend"], info["device"], *config,
                                           flops=int(info["flops"]))
            row.times[kind] = median
            row.spread[kind] = spread
        elif kind == "epoch-peer":
            epoch_peers[info["device"]] = (median, fastest, spread)
        elif kind in ("epoch", "epoch-floor"):
            row_e = epochs.get(info["backend"])
            if row_e is None:
                row_e = epochs[info["backend"]] = EpochRow(info["backend"], info["device"],
                                                           flops=int(info["flops"]))
            what = "epoch" if kind == "epoch" else "floor"
            setattr(row_e, what, median)
            row_e.best[what] = fastest
            row_e.spread[what] = spread
    for row in steps.values():
        row.peer, row.spread["peer"] = peers.get((row.device, row.size, row.batch, row.dtype),
                                                 (NAN, NAN))
    for row_e in epochs.values():
        row_e.peer, row_e.best["peer"], row_e.spread["peer"] = epoch_peers.get(
            row_e.device, (NAN, NAN, NAN))
    step_rows = sorted(steps.values(), key=lambda r: (_order(r.backend), _size_order(r.size),
                                                      r.batch, r.dtype))
    epoch_rows = sorted(epochs.values(), key=lambda r: _order(r.backend))
    return step_rows, epoch_rows


@dataclass
class ContestResult:
    """The interleaved epoch contest (:mod:`benchmarks.contest`): seconds per round of each
    contestant, and why a contestant has none."""

    seconds: dict[str, list[float]]
    missing: dict[str, str] = field(default_factory=dict)
    samples: int = 0
    floor_repeats: int = 1
    in_process: bool = False
    #: Mean training loss of each contestant's timed epoch, per round (NaN for the floors).
    loss: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return median(self.seconds.get(name, []))

    def fastest(self, name: str) -> float:
        return min(self.seconds.get(name, []), default=NAN)

    def time(self, name: str, how: str) -> float:
        return self.fastest(name) if how == "fastest" else self.median(name)

    @property
    def rounds(self) -> int:
        return max((len(v) for v in self.seconds.values()), default=0)

    def spread(self, name: str) -> float:
        """(slowest - fastest) / fastest over the rounds of ``name``."""
        values = self.seconds.get(name, [])
        return _ratio(max(values) - min(values), min(values)) if values else NAN

    def busy(self, name: str) -> bool:
        """Whether the rounds of ``name`` disagree by more than ROUNDS_DISAGREE."""
        return self.spread(name) + 1 > ROUNDS_DISAGREE

    def median_loss(self, name: str) -> float:
        values = [v for v in self.loss.get(name, []) if not math.isnan(v)]
        return median(values)


def contest_from(data: dict[str, Any]) -> ContestResult | None:
    """The contest of a run's JSON, ``None`` when the run had none."""
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if info.get("kind") == "epoch-contest" and "contest" in info:
            c = info["contest"]
            return ContestResult({k: [float(x) for x in v] for k, v in c["seconds"].items()},
                                 dict(c.get("missing", {})), int(c.get("samples", 0)),
                                 int(c.get("floor_repeats", 1)), bool(c.get("in_process")),
                                 {k: [float(x) for x in v]
                                  for k, v in c.get("loss", {}).items()})
    return None


def phases_from(data: dict[str, Any]) -> dict[str, float] | None:
    """Seconds per step of each phase (and of the whole step), ``None`` when not measured."""
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if info.get("kind") == "phases" and info.get("phases"):
            return {k: float(v) for k, v in info["phases"].items()}
    return None


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
    if names:
        gpu_text += f"; {gpu_software(gpu)}"
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


def _machine(data: dict[str, Any]) -> dict[str, Any]:
    """The machine description the suite stored with its results (:mod:`benchmarks.machine`)."""
    return data.get("machine_info", {}).get("mlp") or {}


def _gpu(data: dict[str, Any]) -> dict[str, Any]:
    return _machine(data).get("gpu") or {}


def _cuda_version(code: Any) -> str:
    """CUDA's integer version (``13000``) as ``13.0``."""
    return f"{int(code) // 1000}.{int(code) % 1000 // 10}" if code else "?"


def gpu_software(gpu: dict[str, Any]) -> str:
    """The GPU's driver, CUDA versions and TF32 setting, as the report's header states them."""
    parts = [f"driver {gpu.get('driver') or '?'}"]
    if "cuda_runtime" in gpu:
        parts.append(f"CUDA runtime {_cuda_version(gpu['cuda_runtime'])} (CuPy), driver API "
                     f"{_cuda_version(gpu.get('cuda_driver'))}")
    if gpu.get("torch_cuda"):
        parts.append(f"PyTorch built for CUDA {gpu['torch_cuda']}")
    parts.append(f"TF32 {tf32_text(gpu)}")
    return ", ".join(parts)


def tf32_text(gpu: dict[str, Any]) -> str:
    """Whether float32 GPU matrix products used TF32 in the run."""
    return ("on (CUPY_TF32=1, and torch.backends.cuda.matmul.allow_tf32)" if gpu.get("tf32")
            else "off (float32 products in full float32; CUPY_TF32=1 turns it on)")


def _torch_version(data: dict[str, Any]) -> str | None:
    """PyTorch's version on the benchmarked machine, ``None`` when it was not installed."""
    return _machine(data).get("versions", {}).get("torch")


def missing_peer(torch_version: str | None) -> str:
    """Why the PyTorch peer has no numbers, and what to do about it."""
    if torch_version is None:
        return (f"PyTorch is not installed; install its CPU build with `{TORCH_CPU_INSTALL}` "
                "and rerun `mlp bench`")
    return f"the PyTorch peer (torch {torch_version}) was not part of this run"


def _below(ratio: float) -> str:
    """``ratio`` as ``1.23×``, marked ``‡`` when a time came out below its floor."""
    return _x(ratio) + (f" {BELOW_MARK}" if ratio < 1 else "")


def _marked(ratio: float, mark: str) -> str:
    return _x(ratio) + ("" if math.isnan(ratio) else mark)


def _below_note(ratios: Sequence[float]) -> list[str]:
    if not any(r < 1 for r in ratios):
        return []
    return [f"{BELOW_MARK} below its floor: {BELOW_FLOOR}", ""]


def _busy_note(busy: bool) -> list[str]:
    return [BUSY_NOTE + ".", ""] if busy else []


def epoch_section(epochs: list[EpochRow], plots: dict[str, str],
                  torch_version: str | None = None) -> str:
    """Every backend's epoch beside its floor and the PyTorch peer (uint8 gather + convert), all
    in the suite's process, one after the other (the headline's contest is the honest
    comparison; this table covers the backends the contest does not)."""
    lines = ["## Epoch of every backend, in the suite's process", ""]
    if not epochs:
        return "\n".join(lines + ["No in-suite epoch benchmarks in this run.", ""])
    lines += [f"{EPOCH_WORKLOAD}, through `mlp.train.Trainer`; epoch, floor and peer benchmarked "
              "one after the other in the suite's process, not interleaved.", ""]
    rows = [[r.backend, r.device, _num(r.epoch), _num(r.floor), _num(r.peer),
             *(_marked(getattr(r, a), r.mark(a)) for a in ("x_floor", "x_torch")),
             _num(r.gflops),
             *(_marked(getattr(r, a), r.mark(a)) for a in ("x_floor_best", "x_torch_best"))]
            for r in epochs]
    lines.append(_table(["Backend", "Device", "Epoch s", "GEMM floor s", "PyTorch (uint8) s",
                         "× floor", "× PyTorch", "GFLOP/s", "× floor (fastest rounds)",
                         "× PyTorch (fastest rounds)"], rows, right_from=2))
    lines += ["", "Medians; the last two columns compare the fastest round of each.", ""]
    if all(math.isnan(r.peer) for r in epochs):
        lines += [f"No PyTorch column: {missing_peer(torch_version)}.", ""]
    lines += _below_note([r.x_floor for r in epochs] + [r.x_floor_best for r in epochs])
    lines += _busy_note(any(r.busy("epoch", "floor", "peer") for r in epochs))
    if "epoch" in plots:
        lines += [f"![epoch times]({plots['epoch']})", ""]
    return "\n".join(lines)


def _verdict(value: float, target: float, must: float, higher: bool) -> str:
    def ok(limit: float) -> bool:
        return value >= limit if higher else value <= limit

    if ok(target):
        return "**met**"
    return "**target not met**, at-worst bound met" if ok(must) else "**not met**"


def _missing_contestant(name: str, contest: ContestResult | None,
                        torch_version: str | None) -> str:
    if contest is None:
        return "this run has no epoch contest (`mlp bench` and `mlp bench --quick` include it)"
    if name in contest.missing:
        return contest.missing[name]
    if name.startswith("torch"):
        return missing_peer(torch_version)
    if name == "jax":
        return f"JAX is not installed; install it with `{JAX_INSTALL}` and rerun `mlp bench`"
    return f"no {BY_NAME[name].label} in this run"


def contest_targets(contest: ContestResult | None, torch_version: str | None = None) -> list[str]:
    """The headline's target lines, judged on the fastest rounds (medians beside them)."""
    lines = []
    floor_what = (f"epoch ≤ {TARGET_FLOOR} × the GEMM floor (at worst {MUST_FLOOR} ×)", "floor",
                  TARGET_FLOOR, MUST_FLOOR, False)
    peers = [(f"≥ {TARGET_PEER} × faster than {BY_NAME[name].label} (at worst {MUST_PEER} ×)",
              name, TARGET_PEER, MUST_PEER, True) for name in ("torch-users", "jax")]
    for text, name, target, must, higher in [floor_what, *peers]:
        ours = contest.fastest("ours") if contest else NAN
        theirs = contest.fastest(name) if contest else NAN
        value = _ratio(ours, theirs) if name == "floor" else _ratio(theirs, ours)
        if math.isnan(value):
            reason = _missing_contestant("ours" if contest and math.isnan(ours) else name,
                                         contest, torch_version)
            lines.append(f"- {text}: not measured — {reason}")
            continue
        median = (_ratio(contest.median("ours"), contest.median(name)) if name == "floor"
                  else _ratio(contest.median(name), contest.median("ours")))
        mark = _marks(contest.busy("ours") or contest.busy(name),
                      name == "floor" and value < 1)
        lines.append(f"- {text}: {_verdict(value, target, must, higher)} — {_x(value)}{mark} in "
                     f"the fastest rounds ({_x(median)} median)")
    return lines


def cli_check(contest: ContestResult) -> str:
    """Whether the CLI's epoch (``seconds`` of ``--metrics``) and the benchmark's agree."""
    cli = [_ratio(contest.time("cli", how), contest.time("ours", how))
           for how in ("median", "fastest")]
    if any(math.isnan(v) for v in cli):
        return "- CLI check: not measured (this run has no CLI or no benchmark epoch)."
    worst = max(abs(v - 1) for v in cli)
    verdict = (f"**agree** within {CLI_AGREEMENT:.0%}" if worst <= CLI_AGREEMENT
               else f"**do not agree** within {CLI_AGREEMENT:.0%}")
    return (f"- CLI check: `mlp train`'s second epoch, timed from outside its process, took "
            f"{_num(contest.median('cli'))} s (median; fastest {_num(contest.fastest('cli'))} s) "
            f"against the benchmark's {_num(contest.median('ours'))} s "
            f"({_num(contest.fastest('ours'))} s): CLI / benchmark = {_x(cli[0])} median, "
            f"{_x(cli[1])} fastest — they {verdict}.")


def loss_check(contest: ContestResult) -> str:
    """Whether every peer trained the same network as ours: from our initial weights, on our
    batches in our order, its epoch loss must equal ours within LOSS_AGREEMENT in every round."""
    ours = contest.loss.get("ours", [])
    gaps = {}
    for c in CONTESTANTS:
        pairs = [(a, b) for a, b in zip(contest.loss.get(c.name, []), ours, strict=False)
                 if not (math.isnan(a) or math.isnan(b))]
        if c.role == "peer" and pairs:
            gaps[c.name] = max(abs(_ratio(a, b) - 1) for a, b in pairs)
    if not gaps:
        return "- Loss check: not measured (this run has no peer or no loss of our epoch)."
    name = max(gaps, key=lambda k: gaps[k])
    far = [BY_NAME[k].label for k, gap in gaps.items() if not gap <= LOSS_AGREEMENT]
    verdict = (f"every peer **trains the same network** (within {LOSS_AGREEMENT:.0%})" if not far
               else f"**{'; '.join(far)} did not train the same network** (more than "
                    f"{LOSS_AGREEMENT:.0%} from ours)")
    return (f"- Loss check: the peers started from our initial weights and trained on our "
            f"batches in our order; their epoch losses differ from ours by at most "
            f"{gaps[name]:.3%} in a round ({BY_NAME[name].label}): {verdict}. The CLI's loss is "
            "its own run's second epoch.")


def floor_checks(contest: ContestResult) -> list[str]:
    """A line for every comparison in which our epoch came out below its floor, with the
    reason, and the in-suite floor against the own-process one."""
    lines = []
    for how in ("fastest", "median"):
        ours, floor = contest.time("ours", how), contest.time("floor", how)
        if not math.isnan(ours) and not math.isnan(floor) and ours < floor:
            gap = _ratio(floor - ours, floor)
            spread = contest.spread("floor")
            cause = (f"the floor's own rounds spread by {spread:.0%}, more than the "
                     f"{gap:.0%} gap: the machine was busy, rerun on a quiet one"
                     if spread > gap else BELOW_FLOOR)
            lines.append(f"- **Our epoch is below its floor** ({how}: {_num(ours)} s against "
                         f"{_num(floor)} s). Why: {cause}")
    own, suite = contest.fastest("floor"), contest.fastest("floor-in-suite")
    if not (math.isnan(own) or math.isnan(suite)):
        lines.append(f"- The same floor run in the suite's process took {_num(suite)} s "
                     f"(fastest), {_x(_ratio(suite, own))} the own-process floor: the report "
                     "uses the own-process one (see *What is measured*).")
    return lines


def contest_section(contest: ContestResult | None, torch_version: str | None = None) -> str:
    """The headline: the interleaved epoch contest, its targets and its checks."""
    lines = ["## Headline: one training epoch, interleaved rounds", "",
             f"{EPOCH_WORKLOAD}. Every contestant in a fresh process of its own (but the "
             "in-suite floor), in rounds that run each once in the order below; see *What is "
             "measured*.", "", "Targets (numpy, fastest rounds):", "",
             *contest_targets(contest, torch_version), ""]
    if contest is None:
        return "\n".join(lines)
    if contest.in_process:
        lines += ["This was a smoke run (every contestant in one process, a tiny epoch): the "
                  "figures check that the workloads run, they are not timings.", ""]
    rows = []
    for c in CONTESTANTS:
        if c.name in contest.seconds:
            mark = _marks(contest.busy(c.name), False)
            rows.append([c.label, _num(contest.median(c.name)) + mark,
                         _num(contest.fastest(c.name)) + mark,
                         str(len(contest.seconds[c.name])),
                         _loss(contest.median_loss(c.name)),
                         _x(_ratio(contest.median(c.name), contest.median("ours"))),
                         _x(_ratio(contest.fastest(c.name), contest.fastest("ours")))])
        else:
            reason = _missing_contestant(c.name, contest, torch_version)
            rows.append([c.label, "—", "—", "0", "—", "—", f"not measured: {reason}"])
    lines.append(_table(["Contestant", "Median s", "Fastest s", "Rounds", "Epoch loss (median)",
                         "÷ ours (median)", "÷ ours (fastest)"], rows, right_from=1))
    lines += ["", f"{contest.rounds} rounds, the contestants' order rotating from round to "
              f"round; the floor of a round is the fastest of {contest.floor_repeats} floor "
              "epochs. \"÷ ours\" is the contestant's time over our epoch's: above 1 it is "
              "slower than ours.", "", cli_check(contest), loss_check(contest),
              *floor_checks(contest), ""]
    lines += _busy_note(any(contest.busy(c.name) for c in CONTESTANTS))
    return "\n".join(lines)


def _loss(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.4f}"


def phases_section(phases: dict[str, float] | None) -> str:
    """Where one numpy step's time goes, phase by phase."""
    lines = ["## Where a step's time goes", ""]
    if not phases:
        return "\n".join(lines + ["No per-phase breakdown in this run.", ""])
    total = sum(phases.get(name, 0.0) for name in PHASES)
    rows = [[name, _ms(phases.get(name, NAN)), f"{_ratio(phases.get(name, NAN), total):.0%}"]
            for name in PHASES]
    rows.append(["sum of the phases", _ms(total), "100%"])
    whole = phases.get(STEP, NAN)
    rows.append([STEP, _ms(whole), f"{_ratio(whole, total):.0%}"])
    lines += [f"numpy, {QUICK_SIZE}, batch {QUICK_BATCH}, {QUICK_DTYPE}: one step written out "
              "phase by phase with the model's own parameters, operations, loss and optimizer, "
              "each phase timed inside real steps (see *What is measured*).", "",
              _table(["Phase", "ms per step", "share"], rows, right_from=1), ""]
    gemms = (PHASES[1], PHASES[4])
    gemm = sum(phases.get(name, 0.0) for name in gemms)
    others = sorted((n for n in PHASES if n not in gemms), key=lambda n: -phases.get(n, 0.0))
    share = [f"{name} ({_ratio(phases.get(name, 0.0), total):.0%})" for name in others[:2]]
    lines += [f"The matrix products take {_ratio(gemm, total):.0%} of the phased step; the "
              f"largest other phases are {share[0]} and {share[1]}.", ""]
    return "\n".join(lines)


#: Our compiled JAX step may take at most this many times the JAX-written peer's.
JAX_TARGET = 1.1


def jax_section(data: dict[str, Any]) -> str:
    """Our step on JAX, eager and compiled, beside the jitted ``jax.grad`` peer."""
    lines = ["## Our step on JAX", ""]
    found = [b for b in data.get("benchmarks", [])
             if b.get("extra_info", {}).get("kind") == "jax-steps"
             and b["extra_info"].get("jax")]
    if not found:
        return "\n".join(lines + ["Not measured: JAX is not installed (`pip install jax`).", ""])
    info = found[0]["extra_info"]
    r = info["jax"]
    verdict = "met" if r["jit_x_peer"] <= JAX_TARGET else "**not met**"
    lines += [f"{info['size']}, batch {info['batch']}, {info['dtype']}, Adam: seconds per step "
              "of our hand-written step on the jax backend, eager and compiled into one "
              "`jax.jit` function, and of a JAX-written peer (the same network, `jax.grad` "
              "and Adam in one jitted step), from the same weights on the same batch, the "
              "compiled step and the peer in interleaved rounds (fastest round).", "",
              _table(["Eager ms", "Compiled ms", "jax.grad peer ms", "compiled ÷ peer",
                      "eager ÷ peer"],
                     [[_ms(r["eager"]), _ms(r["jit"]), _ms(r["peer"]), _x(r["jit_x_peer"]),
                       _x(r["eager_x_peer"])]]), "",
              f"Target: compiled ≤ {JAX_TARGET} × the peer: {verdict}.", ""]
    return "\n".join(lines)


def dropout_section(rows: list[StepRow]) -> list[str]:
    """Each configuration's step with dropout over the same step without, against the target."""
    measured_rows = [r for r in rows if not math.isnan(_ratio(r.time("step-dropout"),
                                                              r.time("step")))]
    if not measured_rows:
        return []
    table = []
    for r in measured_rows:
        ratio = _ratio(r.time("step-dropout"), r.time("step"))
        verdict = "met" if ratio <= DROPOUT_TARGET else "**not met**"
        table.append([r.backend, r.size, str(r.batch), r.dtype, _ms(r.time("step-dropout")),
                      _x(ratio), verdict])
    return ["### Dropout", "",
            f"A step with dropout {DROPOUT} after each hidden layer over the same step without "
            f"(target ≤ {DROPOUT_TARGET} ×):", "",
            _table(["Backend", "Model", "Batch", "Dtype", "Dropout step ms", "÷ step",
                    "target"], table, right_from=2), ""]


def _graph_floor(r: StepRow) -> str:
    ratio = _ratio(r.time("step-graph"), r.time("floor"))
    return _marked(ratio, _marks(r.busy("step-graph", "floor"), ratio < 1))


def graph_section(rows: list[StepRow]) -> list[str]:
    """The step captured as a CUDA graph against the eager step and PyTorch's eager step."""
    measured = [r for r in rows if not math.isnan(r.time("step-graph"))]
    if not measured:
        return []
    table = [[r.backend, r.size, str(r.batch), r.dtype, _ms(r.time("step-graph")),
              _ms(r.time("step")), _x(_ratio(r.time("step"), r.time("step-graph"))),
              _x(_ratio(r.peer, r.time("step-graph"))), _graph_floor(r)]
             for r in measured]
    return ["### The step as a CUDA graph", "",
            "`--cuda-graph`: the same step (same numbers) captured once and replayed per batch; "
            "× eager and × PyTorch are speed-ups (higher is faster).", "",
            _table(["Backend", "Model", "Batch", "Dtype", "Graph step ms", "Eager step ms",
                    "× eager", "× PyTorch eager", "× floor"], table, right_from=2), ""]


def step_section(rows: list[StepRow], plots: dict[str, str],
                 torch_version: str | None = None, tf32: bool = False) -> str:
    """The per-configuration table and its plots; GPU float32 rows say whether TF32 was on."""
    lines = ["## Per step", ""]
    if not rows:
        return "\n".join(lines + ["No per-step benchmarks in this run.", ""])
    def dtype(r: StepRow) -> str:
        gpu32 = r.device == "cuda" and r.dtype == "float32"
        return f"{r.dtype}, TF32 {'on' if tf32 else 'off'}" if gpu32 else r.dtype

    table = [[r.backend, r.size, str(r.batch), dtype(r), _ms(r.time("forward")),
              _ms(r.time("backward")), _ms(r.time("step")), _ms(r.time("floor")), _ms(r.peer),
              _num(r.gflops), _marked(r.x_floor, r.mark("x_floor")),
              _marked(r.x_torch, r.mark("x_torch"))] for r in rows]
    lines.append(_table(["Backend", "Model", "Batch", "Dtype", "Forward ms", "Backward ms",
                         "Step ms", "Floor ms", "PyTorch ms", "Step GFLOP/s", "× floor",
                         "× PyTorch"], table, right_from=2))
    lines.append("")
    if all(math.isnan(r.peer) for r in rows):
        lines += [f"No PyTorch column: {missing_peer(torch_version)}.", ""]
    lines += _below_note([r.x_floor for r in rows])
    lines += _busy_note(any(r.busy("step", "floor", "peer") for r in rows))
    lines += dropout_section(rows)
    lines += graph_section(rows)
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
    warning = busy_warning(data)
    if warning:
        parts += [f"**Warning: {warning}**", ""]
    if note:
        parts += [note, ""]
    torch_version = _torch_version(data)
    parts += [machine_section(data), ""]
    if not (steps and all(r.device == "cuda" for r in steps)):
        # The headline contest, the breakdown and JAX are CPU benchmarks: a GPU run has none.
        parts += [contest_section(contest_from(data), torch_version),
                  phases_section(phases_from(data)), jax_section(data)]
    parts += [sklearn_section(data), epoch_section(epochs, plots, torch_version),
              step_section(steps, plots, torch_version, tf32=bool(_gpu(data).get("tf32"))),
              WHAT_IS_MEASURED]
    return "\n".join(parts)


def busy_warning(data: dict[str, Any]) -> str | None:
    """One sentence saying that the machine was busy during the run (``None`` when nothing
    says so): how many figures' rounds disagree by more than ROUNDS_DISAGREE and how many
    times came out below their floor. ``mlp bench`` prints it; the report opens with it."""
    steps, epochs = summarize(data)
    contest = contest_from(data)
    busy = sum(round_spread(b.get("stats", {})) > ROUNDS_DISAGREE
               for b in data.get("benchmarks", [])
               if b.get("extra_info", {}).get("kind") not in (None, *_NOT_TIMES))
    below = sum(r.x_floor < 1 for r in steps) + sum(
        r.x_floor < 1 or r.x_floor_best < 1 for r in epochs)
    if contest is not None:
        busy += sum(contest.busy(c.name) for c in CONTESTANTS)
        below += any(contest.time("ours", how) < contest.time("floor", how)
                     for how in ("fastest", "median"))
    if not busy and not below:
        return None
    what = []
    if busy:
        what.append(f"the rounds of {busy} time{'s' if busy > 1 else ''} disagree by more than "
                    f"{ROUNDS_DISAGREE}× ({BUSY_MARK})")
    if below:
        what.append(f"{below} time{'s' if below > 1 else ''} came out below "
                    f"{'their floors' if below > 1 else 'its floor'} ({BELOW_MARK})")
    return (f"the machine was busy during this run: {' and '.join(what)}; rerun on a quiet "
            "machine before quoting these figures")


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

