"""The report's section on scikit-learn's ``MLPClassifier`` against ours
(:mod:`benchmarks.sklearn_contest`): seconds per epoch and test accuracy of each estimator on each
data set and dtype, the ratio scikit-learn / ours, and the target judged on them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .rows import NAN, marks, median, ratio
from .rows import ROUNDS_DISAGREE as _DISAGREE
from .sklearn_contest import DIGITS_TEST, LABELS, SKLEARN_INSTALL

#: Ours must be at least this many times faster per epoch than scikit-learn's estimator.
TARGET = 5.0
TARGET_TEXT = (f"≥ {TARGET:g} × faster per epoch than scikit-learn's MLPClassifier on the CPU "
               "(float64 and float32), at test accuracy within noise")
#: Two accuracies differ "within noise" when they are at most this many standard errors of
#: the difference of two accuracies on the same test set apart.
NOISE_SE = 2.0
WHY = ("Why this floor: both estimators do the same matrix products through the same BLAS "
       "(NumPy's), so the GEMMs cost both the same; the ratio measures everything outside "
       "them — batch gathering, activations, the loss, the Adam update, copies and Python per "
       "batch — which is what our network is built to make cheap.")
DATA_NAMES = {"mnist": "MNIST", "digits": "digits"}


@dataclass
class SklearnResult:
    """One run of the comparison, as stored in the benchmark's ``extra_info["sklearn"]``."""

    names: list[str]
    hidden: list[int]
    batch: int
    epochs: int
    rounds: int
    in_process: bool = False
    rows: dict[str, list[int]] = field(default_factory=dict)
    runs: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def values(self, data: str, dtype: str, name: str, key: str) -> list[Any]:
        return self.runs.get(data, {}).get(dtype, {}).get(name, {}).get(key, [])

    def median(self, data: str, dtype: str, name: str, key: str = "per_epoch") -> float:
        return median([float(v) for v in self.values(data, dtype, name, key)])

    def fastest(self, data: str, dtype: str, name: str) -> float:
        return min(map(float, self.values(data, dtype, name, "per_epoch")), default=NAN)

    def speedup(self, data: str, dtype: str, name: str = "ours") -> float:
        """scikit-learn's median seconds per epoch over ``name``'s (above 1: ours is faster)."""
        return ratio(self.median(data, dtype, "sklearn"), self.median(data, dtype, name))

    def busy(self, data: str, dtype: str, name: str) -> bool:
        """Whether the rounds' seconds per epoch disagree by more than ROUNDS_DISAGREE."""
        times = [float(v) for v in self.values(data, dtype, name, "per_epoch")]
        return bool(times) and ratio(max(times), min(times)) > _DISAGREE

    def configs(self) -> list[tuple[str, str]]:
        return [(data, dtype) for data, by_dtype in self.runs.items() for dtype in by_dtype]

    def noise(self, data: str, dtype: str) -> float:
        """The accuracy difference that is still noise on ``data``'s test set:
        :data:`NOISE_SE` standard errors of the difference of two accuracies."""
        p = (self.median(data, dtype, "sklearn", "accuracy")
             + self.median(data, dtype, "ours", "accuracy")) / 2
        n = self.rows.get(data, [0, 0])[1]
        return NOISE_SE * math.sqrt(2 * p * (1 - p) / n) if n else NAN


def sklearn_from(data: dict[str, Any]) -> list[SklearnResult]:
    """Every run of the comparison in a run's JSON (a CPU run, a GPU run with the CuPy row)."""
    found = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if info.get("kind") == "sklearn-contest" and "sklearn" in info:
            s = info["sklearn"]
            found.append(SklearnResult(
                list(s["names"]), [int(h) for h in s["hidden"]], int(s["batch"]),
                int(s["epochs"]), int(s["rounds"]), bool(s.get("in_process")),
                {k: [int(n) for n in v] for k, v in s.get("rows", {}).items()},
                s.get("runs", {}), dict(s.get("missing", {}))))
    return found


# --- formatting ----------------------------------------------------------------------------


def _num(v: float) -> str:
    if math.isnan(v):
        return "—"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 1 \
        else f"{v:.3f}"


def _x(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.2f}×"


def _pct(v: float) -> str:
    return "—" if math.isnan(v) else f"{100 * v:.2f} %"


def _config(data: str, dtype: str) -> str:
    return f"{DATA_NAMES.get(data, data)} {dtype}"


def _table(result: SklearnResult) -> list[str]:
    lines = ["| Data set | Dtype | Estimator | s / epoch (median) | Fastest s / epoch | "
             "Test accuracy (median) | scikit-learn ÷ this | Rounds |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for data, dtype in result.configs():
        for name in result.names:
            times = result.values(data, dtype, name, "per_epoch")
            if not times:
                continue
            mark = marks(result.busy(data, dtype, name), False)
            lines.append(
                f"| {DATA_NAMES.get(data, data)} | {dtype} | {LABELS.get(name, name)} | "
                f"{_num(result.median(data, dtype, name))}{mark} | "
                f"{_num(result.fastest(data, dtype, name))}{mark} | "
                f"{_pct(result.median(data, dtype, name, 'accuracy'))} | "
                f"{_x(result.speedup(data, dtype, name))} | {len(times)} |")
    return lines


# --- checks and the target -----------------------------------------------------------------


def accuracy_gaps(result: SklearnResult) -> dict[tuple[str, str], tuple[float, float]]:
    """Per data set and dtype: |ours - scikit-learn| median test accuracy, and the noise."""
    return {(data, dtype): (abs(result.median(data, dtype, "ours", "accuracy")
                                - result.median(data, dtype, "sklearn", "accuracy")),
                            result.noise(data, dtype))
            for data, dtype in result.configs()}


def target_line(result: SklearnResult) -> str:
    """The target, whether it is met, and the ratio of every data set and dtype measured."""
    ratios = {c: result.speedup(*c) for c in result.configs()}
    ratios = {c: v for c, v in ratios.items() if not math.isnan(v)}
    if not ratios:
        reason = "; ".join(result.missing.values()) or "no fit of both estimators in this run"
        return f"- Target: {TARGET_TEXT}: not measured — {reason}."
    gaps = accuracy_gaps(result)
    noisy = [c for c, (gap, noise) in gaps.items() if c in ratios and not gap <= noise]
    fast = all(v >= TARGET for v in ratios.values())
    dtypes = {dtype for _, dtype in ratios}
    verdict = "**met**" if fast and not noisy and dtypes >= {"float64", "float32"} \
        else "**not met**"
    measured = ", ".join(f"{_config(*c)} {_x(v)}" for c, v in ratios.items())
    why = [] if fast else [f"below {TARGET:g} × on "
                           + ", ".join(_config(*c) for c, v in ratios.items() if v < TARGET)]
    if noisy:
        why.append("accuracy beyond noise on " + ", ".join(_config(*c) for c in noisy))
    if not dtypes >= {"float64", "float32"}:
        why.append("not measured in both dtypes")
    because = f" ({'; '.join(why)})" if why else ""
    return (f"- Target: {TARGET_TEXT}: {verdict}{because} — scikit-learn ÷ ours, median "
            f"seconds per epoch: {measured}.")


def _widths(shapes: Sequence[Sequence[int]]) -> str:
    """``784-512-512-10`` from the shapes of ``coefs_``."""
    return "-".join([str(shapes[0][0]), *(str(s[1]) for s in shapes)])


def checks(result: SklearnResult) -> list[str]:
    """Whether both estimators trained the same network for every epoch, and their accuracy."""
    networks: dict[str, set[str]] = {}
    short, changed = set(), set()
    for data, dtype in result.configs():
        for name in result.names:
            for shapes in result.values(data, dtype, name, "shapes"):
                networks.setdefault(data, set()).add(_widths(shapes))
            if any(n != result.epochs for n in result.values(data, dtype, name, "n_iter")):
                short.add(LABELS.get(name, name))
            if any(d != dtype for d in result.values(data, dtype, name, "dtype")):
                changed.add(LABELS.get(name, name))
    same = all(len(n) == 1 for n in networks.values())
    found = "; ".join(f"{DATA_NAMES.get(d, d)} {', '.join(sorted(n))}"
                      for d, n in networks.items())
    lines = [f"- Same network: {'**not** ' if not same else ''}every fit of every estimator "
             f"ended with weights of the same shapes ({found}); "
             + (f"every fit ran {result.epochs} epoch{'s' if result.epochs > 1 else ''}"
                if not short
                else f"**{', '.join(sorted(short))} stopped before {result.epochs} epochs**")
             + "; " + ("each kept the dtype it was given." if not changed
                       else f"**{', '.join(sorted(changed))} changed the dtype**.")]
    gaps = ", ".join(f"{_config(*c)} {100 * gap:.2f} against {100 * noise:.2f}"
                     for c, (gap, noise) in accuracy_gaps(result).items())
    lines.append(f"- Test accuracy, |ours − scikit-learn| against the noise ({NOISE_SE:g} "
                 "standard errors of the difference of two accuracies on the test set), in "
                 f"points: {gaps}.")
    return lines


def _data_sets(result: SklearnResult) -> str:
    parts = []
    for data, (train, test) in result.rows.items():
        how = ("the copy shipped with the package, its own test set, pixels / 255"
               if data == "mnist" else f"`sklearn.datasets.load_digits`, stratified "
               f"{1 - DIGITS_TEST:.0%} / {DIGITS_TEST:.0%} split, pixels / 16")
        parts.append(f"{DATA_NAMES.get(data, data)} ({train} training / {test} test rows; {how})")
    return "; ".join(parts)


def sklearn_section(data: dict[str, Any]) -> str:
    """The comparison with scikit-learn's estimator, its target and its checks; a note when
    the run has none (scikit-learn not installed, or not selected)."""
    lines = ["## scikit-learn's MLPClassifier against ours", ""]
    results = sklearn_from(data)
    if not results:
        versions = data.get("machine_info", {}).get("mlp", {}).get("versions", {})
        why = (f"scikit-learn is not installed; it is an optional extra: `{SKLEARN_INSTALL}`, "
               "then rerun `mlp bench`" if "scikit-learn" not in versions
               else "the comparison was not part of this run (`mlp bench` includes it; "
                    "`mlp bench -k sklearn` runs it alone)")
        return "\n".join(lines + [f"- Target: {TARGET_TEXT}: not measured — {why}.", ""])
    for result in results:
        gpu = "ours-cupy" in result.names
        where = "the suite's process" if result.in_process else "a fresh process"
        settings = (f"hidden_layer_sizes={tuple(result.hidden)}, solver='adam', "
                    f"batch_size={result.batch}, max_iter={result.epochs} with tol=0 (every "
                    "epoch runs), the same random_state")
        lines += [f"### {'GPU run (CuPy row)' if gpu else 'CPU run'}", "",
                  f"`sklearn.neural_network.MLPClassifier` and `mlp.sklearn.MLPClassifier` with "
                  f"the same settings ({settings}) on {_data_sets(result)}. {result.rounds} "
                  f"interleaved rounds, each fit in {where}, the order rotating; seconds per "
                  "epoch = the fit's wall-clock time / `n_iter_`, medians over the rounds (see "
                  "*What is measured*).", ""]
        if result.in_process:
            lines += ["This was a smoke run (every fit in one process, tiny sizes): the figures "
                      "check that the comparison runs, they are not timings.", ""]
        lines += [target_line(result), *checks(result)]
        lines += [f"- {LABELS[n]}: not measured — {why}" for n, why in result.missing.items()]
        lines += ["", *_table(result), "", WHY, ""]
        if any(result.busy(d, t, n) for d, t in result.configs() for n in result.names):
            lines += [f"† the rounds disagree by more than {_DISAGREE}×: the machine was busy.",
                      ""]
    return "\n".join(lines)
