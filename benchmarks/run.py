"""Run the benchmark suite and build its report: :func:`main` is the runner, :func:`command` the
command line ``mlp bench [options]`` (``python -m benchmarks [options]``).

pytest runs :mod:`benchmarks.test_bench` in a subprocess with pytest-benchmark, writing its JSON;
:mod:`benchmarks.report` then turns the JSON into ``REPORT.md`` and ``plots/*.png``. Everything
goes into one results folder (``--out``, default ``bench-results/`` in the current directory);
a report already there is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

from .plots import PLOT_DIR
from .workloads import BACKEND_IDS, QUICK_BATCH, QUICK_DTYPE, QUICK_SIZE, TORCH_CPU_INSTALL

SUITE_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = "bench-results"
REPORT = "REPORT.md"
PROG = "mlp bench"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Time forward, backward and training steps against their GEMM floor and "
                    "PyTorch, plus a full training epoch; write REPORT.md and PNG plots.",
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"only the {QUICK_SIZE} / batch {QUICK_BATCH} / {QUICK_DTYPE} rows "
                             "and the epoch benchmark")
    parser.add_argument("--backends", default=None, metavar="A,B",
                        help=f"comma-separated backends of: {', '.join(BACKEND_IDS)} "
                             "(default: all CPU ones, or all GPU ones with --gpu)")
    parser.add_argument("--gpu", action="store_true",
                        help="run the GPU benchmarks (CuPy, torch on CUDA) instead of the CPU ones")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"results folder for {REPORT}, {PLOT_DIR}/ and results.json "
                             f"(default: {DEFAULT_OUT}/ in the current directory)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the report and results already in DIR")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="pytest-benchmark JSON output (default: DIR/results.json)")
    parser.add_argument("--max-time", type=float, default=0.25, metavar="S",
                        help="seconds per benchmark after warm-up (default 0.25)")
    parser.add_argument("--min-rounds", type=int, default=5, metavar="N",
                        help="rounds per benchmark at least (default 5)")
    parser.add_argument("--epoch-rounds", type=int, default=3, metavar="N",
                        help="rounds of each epoch benchmark (default 3)")
    parser.add_argument("--sklearn-epochs", type=int, default=2, metavar="N",
                        help="epochs (max_iter) of each fit in the comparison with "
                             "scikit-learn's MLPClassifier (default 2; needs the sklearn extra, "
                             "-k sklearn runs it alone)")
    parser.add_argument("-k", dest="keyword", default=None, metavar="EXPR",
                        help="pytest -k expression to narrow the selection further")
    parser.add_argument("--note", default=None, metavar="TEXT",
                        help="a remark to print under the report's title (e.g. about the machine)")
    parser.add_argument("--scaling", action="store_true",
                        help="also measure data-parallel scaling: compute and allreduce time per "
                             "step for 1 and 2 MPI ranks, and the ring-allreduce model for P "
                             "machines (needs the mpi extra; writes DIR/scaling.md, .json, .png)")
    parser.add_argument("--report-only", action="store_true",
                        help="do not run anything: rebuild the report from the existing JSON")
    return parser


def marker_expression(quick: bool, gpu: bool, backends: str | None) -> str | None:
    """pytest ``-m`` expression of a selection. With ``--backends`` the backends decide between
    CPU and GPU; otherwise ``--gpu`` picks the GPU-marked benchmarks and the default the rest."""
    parts = []
    if quick:
        parts.append("quick")
    if not backends:
        parts.append("gpu" if gpu else "not gpu")
    return " and ".join(parts) or None


def pytest_command(args: argparse.Namespace, json_path: Path) -> list[str]:
    """The pytest command line of a run."""
    cmd = [
        sys.executable, "-m", "pytest", str(SUITE_DIR),
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        f"--benchmark-min-rounds={args.min_rounds}",
        f"--benchmark-max-time={args.max_time}",
        "--benchmark-warmup=on",
        "--benchmark-sort=name",
        "--benchmark-columns=min,median,iqr,rounds",
        f"--bench-epoch-rounds={args.epoch_rounds}",
        f"--bench-sklearn-epochs={args.sklearn_epochs}",
        "-p", "no:cacheprovider",
        "-q",
    ]
    expr = marker_expression(args.quick, args.gpu, args.backends)
    if expr:
        cmd += ["-m", expr]
    if args.backends:
        cmd += ["--bench-backends", args.backends]
    if args.keyword:
        cmd += ["-k", args.keyword]
    return cmd


def _describe(args: argparse.Namespace) -> str:
    what = ["quick selection" if args.quick else "full suite"]
    what.append(f"backends {args.backends}" if args.backends else ("GPU" if args.gpu else "CPU"))
    if args.keyword:
        what.append(f"-k {args.keyword!r}")
    return (f"Run: {', '.join(what)}; pytest-benchmark min rounds {args.min_rounds}, max time "
            f"{args.max_time} s, warm-up on; epoch rounds {args.epoch_rounds}; scikit-learn "
            f"comparison epochs {args.sklearn_epochs}.")


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def existing_results(out_dir: Path, json_path: Path, report_only: bool) -> list[Path]:
    """What a run would replace in ``out_dir``: the report, its plots and, unless the JSON is the
    run's input (``--report-only``), the JSON."""
    found = [out_dir / REPORT, out_dir / PLOT_DIR]
    if not report_only:
        found.append(json_path)
    return [p for p in found if p.exists()]


def _results_folder(out_dir: Path) -> None:
    """Create ``out_dir``; a folder made here ignores itself in git, like a virtual environment."""
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        (out_dir / ".gitignore").write_text("# written by mlp bench\n*\n", encoding="utf-8")


def command(argv: list[str]) -> int:
    """The command line ``mlp bench ARGS`` (``python -m benchmarks ARGS``): :func:`main`, where
    ``--report-only`` also means ``--overwrite``: the report is rebuilt from the results in
    ``--out``, so replacing it is what was asked for."""
    args, _ = build_parser().parse_known_args(argv)  # a bad option is main's to report
    if args.report_only and not args.overwrite:
        argv = [*argv, "--overwrite"]
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    """The runner: run the suite, build the report. The exit status is pytest's (0 when all
    passed), 2 for a bad option or a report that ``--overwrite`` would be needed to replace."""
    args = build_parser().parse_args(argv)
    out_dir = Path(args.out)
    json_path = Path(args.json) if args.json else out_dir / "results.json"
    if not args.overwrite and (found := existing_results(out_dir, json_path, args.report_only)):
        return _error(f"{found[0]} exists: pass --overwrite to replace it, or choose another --out")
    if importlib.util.find_spec("pytest_benchmark") is None:
        return _error("the benchmarks need pytest-benchmark: pip install \".[bench]\"")
    _results_folder(out_dir)
    rc = 0
    if not args.report_only:
        if importlib.util.find_spec("torch") is None:
            print(f"note: PyTorch is not installed, so the report has no PyTorch peer; "
                  f"install its CPU build with: {TORCH_CPU_INSTALL}", flush=True)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.unlink(missing_ok=True)  # never report a previous run's numbers as this one's
        cmd = pytest_command(args, json_path.resolve())
        print("running:", shlex.join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=SUITE_DIR.parent)
        if rc != 0:
            print(f"pytest exited with status {rc}", file=sys.stderr)
    if not json_path.exists():
        print(f"no benchmark results at {json_path}: nothing to report", file=sys.stderr)
        return rc or 1
    from .report import build_report, busy_warning
    from .results import ResultsError, load

    notes = [] if args.report_only else [_describe(args)]
    if args.note:
        notes.insert(0, args.note)
    note = "\n\n".join(notes) or None
    try:
        report = build_report(json_path, out_dir, note=note)
    except ResultsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return rc or 1
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # deeper than the checks go
        print(f"{PROG}: error: {json_path}: not results of mlp bench: {exc!r:.200}",
              file=sys.stderr)
        return rc or 1
    warning = busy_warning(load(json_path))
    if warning:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    print(f"report: {report}")
    print(f"plots:  {report.parent / PLOT_DIR}")
    print(f"data:   {json_path}")
    if args.scaling and not args.report_only:
        from .scaling import main as scaling_main

        rc = scaling_main(["--out", str(out_dir)]) or rc
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
