"""Data-parallel scaling: measured compute and allreduce time per step for P = 1, 2 on this
machine, and the ring-allreduce model for P machines.

``python -m benchmarks.scaling [--out DIR] [--seconds S]`` (needs the ``mpi`` extra) runs the
measurement in three arrangements — one process with one BLAS thread, one process with two,
two ranks under ``mpiexec -n 2`` with one thread each (one sum of the flat gradient per step,
and the overlapped variant that sums each layer's slice during backward) — for the networks
784-512-512-10 and 784-2048-2048-10 at global batch 128 and 1024 (float32, NumPy). It writes
``scaling.json``, ``scaling.md`` and ``scaling.png`` into ``DIR``.

The model: a ring allreduce moves ``2 (P-1)/P x 4 bytes x parameters`` per rank and step, so
with ``c`` the measured compute time per sample (one thread) and ``b`` the samples per rank,
``t(P) = c b + 2 (P-1)/P x 4 n / bandwidth`` and the weak-scaling efficiency is
``c b / t(P)``. Latency and the overlap of communication with backward are left out (the
model is the pessimistic, bandwidth-bound case).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NETWORKS = ([784, 512, 512, 10], [784, 2048, 2048, 10])
BATCHES = (128, 1024)
LINKS_GBIT = (1, 10, 100)
RANKS = (2, 4, 8, 16, 32, 64)
PER_RANK_BATCH = 128  # the model table's weak-scaling batch per rank


# --- measuring (runs in each process) ------------------------------------------------------


class _TimedComm:
    """A communicator that adds up the seconds spent in gradient sums."""

    def __init__(self, comm: Any) -> None:
        self._comm, self.seconds = comm, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._comm, name)

    def allreduce_(self, x: Any) -> Any:
        start = time.perf_counter()
        out = self._comm.allreduce_(x)
        self.seconds += time.perf_counter() - start
        return out

    def iallreduce_(self, x: Any) -> Any:
        start = time.perf_counter()
        request = self._comm.iallreduce_(x)
        self.seconds += time.perf_counter() - start
        timed = self

        class Timed:
            def wait(self) -> None:
                start = time.perf_counter()
                request.wait()
                timed.seconds += time.perf_counter() - start

        return Timed()


def measure(threads: int, distributed: bool, overlap: bool, seconds: float) -> list[dict]:
    """Per network and global batch: ms per step, of which in the gradient sum."""
    import numpy as np

    from backends import get
    from mlp import MLP, Adam

    backend = get("numpy")
    backend.set_threads(threads)
    backend.ops.threads = threads
    dist = comm = None
    if distributed:
        from mlp.distributed import Distributed

        probe = Distributed()
        comm = _TimedComm(probe.comm)
        dist = Distributed(comm, overlap=overlap)
    size = dist.size if dist else 1
    rows = []
    for sizes in NETWORKS:
        for batch in BATCHES:
            model = MLP(sizes, optimizer=Adam(1e-4), seed=0)
            lo, hi = dist.shard(batch) if dist else (0, batch)
            rng = np.random.default_rng(0)
            x = model.backend.asarray(rng.random((hi - lo, sizes[0])), model.dtype)
            y = model.backend.asarray(rng.integers(0, sizes[-1], hi - lo))

            def step(model=model, x=x, y=y, batch=batch) -> None:
                if dist is None:
                    model.train_step(x, y)
                else:
                    dist.train_step(model, x, y, batch, seed=0)

            for _ in range(2):
                step()
            steps, start = 0, time.perf_counter()
            if comm is not None:
                comm.seconds = 0.0
            # The same number of steps on every rank: rank 0's clock decides.
            while True:
                step()
                steps += 1
                done = time.perf_counter() - start >= seconds or steps >= 200
                if dist is not None:
                    done = dist.max(int(done)) > 0
                if done:
                    break
            total = (time.perf_counter() - start) / steps
            reduce = comm.seconds / steps if comm is not None else 0.0
            rows.append({"sizes": sizes, "batch": batch, "ranks": size, "threads": threads,
                         "overlap": overlap, "parameters": model.store.size, "steps": steps,
                         "step_ms": 1e3 * total, "allreduce_ms": 1e3 * reduce,
                         "compute_ms": 1e3 * (total - reduce)})
    return rows if dist is None or dist.is_root else []


# --- running the arrangements --------------------------------------------------------------


def _worker(args: list[str], ranks: int) -> list[dict]:
    command = [sys.executable, "-m", "benchmarks.scaling", "--worker", *args]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec") or shutil.which(
            "mpiexec", path=str(Path(sys.executable).parent))
        if mpiexec is None:
            raise SystemExit('benchmarks.scaling: no mpiexec: pip install ".[mpi]"')
        command = [mpiexec, "-n", str(ranks), *command]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCAL"))}
    run = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if run.returncode != 0:
        raise SystemExit(f"benchmarks.scaling: {' '.join(command)} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run_all(seconds: float) -> list[dict]:
    s = ["--seconds", str(seconds)]
    return [*_worker(["--threads", "1", *s], 1), *_worker(["--threads", "2", *s], 1),
            *_worker(["--threads", "1", "--distributed", *s], 2),
            *_worker(["--threads", "1", "--distributed", "--overlap", *s], 2)]


# --- the model ---------------------------------------------------------------------------


def ring_seconds(parameters: int, ranks: int, gbit: float) -> float:
    """Seconds a bandwidth-bound ring allreduce of float32 ``parameters`` takes."""
    return 2 * (ranks - 1) / ranks * 4 * parameters / (gbit * 1e9 / 8)


def efficiency(sample_s: float, per_rank: int, parameters: int, ranks: int,
               gbit: float) -> float:
    compute = sample_s * per_rank
    return compute / (compute + ring_seconds(parameters, ranks, gbit))


def min_batch_90(sample_s: float, parameters: int, gbit: float) -> int:
    """Samples per rank from which efficiency stays >= 90 % for every P (the ring's cost
    grows towards ``8 n / bandwidth``): ``c b >= 9 x that``."""
    import math

    return math.ceil(9 * 8 * parameters / (gbit * 1e9 / 8) / sample_s)


def sample_seconds(rows: list[dict], sizes: list[int]) -> float:
    """Compute seconds per sample of one process, one thread, at the largest batch."""
    row = next(r for r in rows if r["sizes"] == sizes and r["ranks"] == 1
               and r["threads"] == 1 and r["batch"] == max(BATCHES))
    return row["compute_ms"] / 1e3 / row["batch"]


# --- the report --------------------------------------------------------------------------


def _name(sizes: list[int]) -> str:
    return "-".join(map(str, sizes))


def markdown(rows: list[dict]) -> str:
    lines = ["### Measured on this machine (indicative: shared, busy cores)", "",
             "| network | batch | arrangement | step ms | compute ms | allreduce ms | "
             "allreduce share |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        how = (f"{r['ranks']} ranks x 1 thread" + (", overlapped" if r["overlap"] else "")
               if r["ranks"] > 1 else f"1 process x {r['threads']} thread(s)")
        share = r["allreduce_ms"] / r["step_ms"]
        lines.append(f"| {_name(r['sizes'])} | {r['batch']} | {how} | {r['step_ms']:.2f} | "
                     f"{r['compute_ms']:.2f} | {r['allreduce_ms']:.2f} | {100 * share:.0f} % |")
    lines += ["", f"### Ring-allreduce model: efficiency at {PER_RANK_BATCH} samples per rank",
              "", "| network | link | " + " | ".join(f"P={p}" for p in RANKS)
              + " | samples per rank for >= 90 % |",
              "|---|---|" + "---:|" * (len(RANKS) + 1)]
    for sizes in NETWORKS:
        c = sample_seconds(rows, sizes)
        n = next(r["parameters"] for r in rows if r["sizes"] == sizes)
        for gbit in LINKS_GBIT:
            cells = []
            for p in RANKS:
                t = c * PER_RANK_BATCH + ring_seconds(n, p, gbit)
                e = efficiency(c, PER_RANK_BATCH, n, p, gbit)
                cells.append(f"{100 * e:.0f} % ({1e3 * t:.1f} ms)")
            lines.append(f"| {_name(sizes)} | {gbit} Gb/s | " + " | ".join(cells)
                         + f" | {min_batch_90(c, n, gbit):,} |")
        lines.append(f"| {_name(sizes)} | compute {1e6 * c:.1f} µs/sample, {n:,} parameters "
                     "|" + " |" * (len(RANKS) + 1))
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks = list(range(2, max(RANKS) + 1))
    fig, axes = plt.subplots(1, len(NETWORKS), figsize=(11, 4.2), sharey=True)
    for ax, sizes in zip(axes, NETWORKS, strict=True):
        c = sample_seconds(rows, sizes)
        n = next(r["parameters"] for r in rows if r["sizes"] == sizes)
        for i, gbit in enumerate(LINKS_GBIT):
            for per_rank, style in ((PER_RANK_BATCH, "-"), (1024, "--")):
                ax.plot(ranks, [100 * efficiency(c, per_rank, n, p, gbit) for p in ranks],
                        style, color=f"C{i}", label=f"{gbit} Gb/s, {per_rank} per rank")
        ax.axhline(90, color="grey", lw=0.8, ls=":")
        ax.text(ranks[-1], 91, "90 %", ha="right", color="grey", fontsize=8)
        ax.set(title=f"{_name(sizes)} ({n / 1e6:.1f} M parameters)", xlabel="ranks P",
               xlim=(0, ranks[-1] + 1), ylim=(0, 102))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("predicted scaling efficiency (%)")
    axes[-1].legend(fontsize=7, loc="center right", bbox_to_anchor=(1.0, 0.42))
    fig.suptitle("Data-parallel SGD, ring allreduce of the float32 gradient "
                 "(measured compute per sample, bandwidth-bound)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench-results", help="folder for the results")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per measurement")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--overlap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        rows = measure(args.threads, args.distributed, args.overlap, args.seconds)
        if rows:
            print(json.dumps(rows))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = run_all(args.seconds)
    (out / "scaling.json").write_text(json.dumps(rows, indent=1))
    (out / "scaling.md").write_text(markdown(rows))
    plot(rows, out / "scaling.png")
    print(markdown(rows))
    print(f"written to {out}/scaling.md, scaling.json and scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
