"""The headline: one training epoch of every contestant, in interleaved rounds.

Each round runs every contestant once, :data:`CONTESTANTS` (ours, the CLI, the GEMM floor, the
floor in the suite's own process, then the peers) rotated by one place per round; each
contestant except the in-suite floor runs in a fresh process of its own (``python -m
benchmarks.contest NAME``), which loads the same MNIST training set, warms up on a short epoch
and prints one JSON line with the seconds and the mean loss of one timed epoch. Every peer
starts from our initial weights and trains on our batches in our order (the permutations are
drawn before any timing), so its epoch loss checks that it trains the same network. The CLI
contestant is ``mlp train`` on the same data, timed from outside its process: the wall-clock
time of ``--epochs 2`` less that of ``--epochs 1``.
:data:`benchmarks.measured.WHAT_IS_MEASURED` describes each contestant.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy

from .workloads import (
    EPOCH_LR,
    EPOCH_SAMPLES,
    QUICK_BATCH,
    QUICK_DTYPE,
    QUICK_SIZE,
    SIZES,
    EpochFloor,
    epoch_data,
    initial_params,
    permutation,
)

#: Samples of the warm-up epoch each process runs before its timed one: both batch shapes.
WARMUP_SAMPLES = 16 * QUICK_BATCH + EPOCH_SAMPLES % QUICK_BATCH
#: Floor epochs per round; the round's floor is the fastest of them (a lower bound).
FLOOR_REPEATS = 3
#: Exit status of a contestant whose library is not installed (its reason on stderr).
UNAVAILABLE = 3
#: The CLI needs a full-size data set; in a smoke run it trains this tiny network on it instead.
SMOKE_CLI = ["--hidden", "16", "--batch-size", "6000"]


@dataclass(frozen=True)
class Contestant:
    """One entry of the contest: ``name`` (JSON key), ``label`` (report text), ``role``
    (``ours``, ``cli``, ``floor`` or ``peer``) and whether it runs in the suite's own process."""

    name: str
    label: str
    role: str
    in_suite: bool = False


CONTESTANTS: tuple[Contestant, ...] = (
    Contestant("ours", "ours: mlp.train.Trainer, numpy", "ours"),
    Contestant("cli", "ours: mlp train, 2nd epoch timed from outside", "cli"),
    Contestant("floor", "GEMM floor, own process", "floor"),
    Contestant("floor-in-suite", "GEMM floor, in the suite's process", "floor", in_suite=True),
    Contestant("torch-users", "PyTorch as users write it (float32 set, X[idx])", "peer"),
    Contestant("torch-uint8", "PyTorch doing our work (uint8 gather + convert)", "peer"),
    Contestant("jax", "JAX, jitted train step", "peer"),
)
BY_NAME = {c.name: c for c in CONTESTANTS}


class Unavailable(Exception):
    """A contestant's library is not installed; the message says how to install it."""


def run_child(cmd: list[str], cwd: Any, timeout: float, what: str) -> dict[str, Any]:
    """Run a contestant's process ``cmd`` and return the JSON of its last output line.

    Raises:
        Unavailable: it exited with :data:`UNAVAILABLE` (its reason is its last stderr line).
        RuntimeError: it failed otherwise (``what`` names it, with the end of its output).
    """
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode == UNAVAILABLE:
        raise Unavailable(done.stderr.strip().splitlines()[-1])
    if done.returncode != 0:
        raise RuntimeError(f"contestant {what} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the contestants, each in its own process -----------------------------------------------


#: Shuffling seed of every contestant's warm-up epoch (the timed epoch's is the round's).
WARMUP_SEED = 1


def _permutations(seed: int, n: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The warm-up's and the timed epoch's permutations: the ones our trainer draws, so every
    peer trains on our batches in our order (drawn here, outside every timed region)."""
    return permutation(WARMUP_SEED, min(WARMUP_SAMPLES, n)), permutation(seed, n)


def _ours(images: numpy.ndarray, labels: numpy.ndarray, seed: int) -> tuple[float, float]:
    from mlp import MLP, Adam
    from mlp.train import DeviceData, Trainer

    model = MLP(list(SIZES[QUICK_SIZE]), dtype=QUICK_DTYPE, optimizer=Adam(EPOCH_LR), seed=0)
    warm = DeviceData(model, images[:WARMUP_SAMPLES], labels[:WARMUP_SAMPLES])
    Trainer(model, warm, None, batch_size=QUICK_BATCH, epochs=1, seed=WARMUP_SEED).fit()
    data = DeviceData(model, images, labels)
    last = Trainer(model, data, None, batch_size=QUICK_BATCH, epochs=1, seed=seed).fit()[-1]
    return last["seconds"], last["train_loss"]


def floor_epoch(n: int, repeats: int) -> float:
    """Fastest of ``repeats`` GEMM-floor epochs over ``n`` samples (numpy), after a warm-up."""
    import backends

    floor = EpochFloor(backends.get("numpy"), SIZES[QUICK_SIZE], n, QUICK_BATCH, QUICK_DTYPE)
    for one in floor.floors.values():
        for _ in range(8):
            one()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        floor()
        times.append(time.perf_counter() - start)
    return min(times)


def _torch(images: numpy.ndarray, labels: numpy.ndarray, seed: int, users: bool) -> tuple[
        float, float]:
    try:
        import torch
    except ImportError:
        from .workloads import TORCH_CPU_INSTALL

        raise Unavailable(f"PyTorch is not installed: {TORCH_CPU_INSTALL}") from None
    from .peers import torch_uint8_epoch, torch_users_epoch
    from .workloads import TorchPeer

    peer = TorchPeer(SIZES[QUICK_SIZE], QUICK_DTYPE, "cpu", lr=EPOCH_LR, params=initial_params())
    y = torch.from_numpy(labels)
    if users:
        x = torch.from_numpy(images).to(torch.float32) / 255.0  # the whole set, once
        epoch: Callable[..., tuple[float, float]] = torch_users_epoch
    else:
        x = torch.from_numpy(images)
        epoch = torch_uint8_epoch
    warm, perm = (torch.from_numpy(p) for p in _permutations(seed, len(labels)))
    epoch(peer, x[:WARMUP_SAMPLES], y[:WARMUP_SAMPLES], QUICK_BATCH, warm)
    return epoch(peer, x, y, QUICK_BATCH, perm)


def _jax(images: numpy.ndarray, labels: numpy.ndarray, seed: int) -> tuple[float, float]:
    from .peers import JAX_INSTALL

    try:
        import jax.numpy as jnp
    except ImportError:
        raise Unavailable(f"JAX is not installed: {JAX_INSTALL}") from None
    from .jax_peer import JaxPeer

    peer = JaxPeer(SIZES[QUICK_SIZE], QUICK_DTYPE, lr=EPOCH_LR, params=initial_params())
    x = jnp.asarray(images, jnp.float32) / 255.0  # the whole set, once
    y = jnp.asarray(labels, jnp.int32)
    warm, perm = _permutations(seed, len(labels))
    peer.epoch(x[:WARMUP_SAMPLES], y[:WARMUP_SAMPLES], QUICK_BATCH, warm)
    return peer.epoch(x, y, QUICK_BATCH, perm)


def run_contestant(name: str, samples: int, seed: int, repeats: int) -> dict[str, float]:
    """Time ``name`` (not the CLI) in this process: ``{"seconds": ..., "loss": ...}``."""
    images, labels = epoch_data(samples)
    if name == "ours":
        seconds, loss = _ours(images, labels, seed)
    elif name == "floor":
        seconds, loss = floor_epoch(samples, repeats), math.nan
    elif name in ("torch-users", "torch-uint8"):
        seconds, loss = _torch(images, labels, seed, users=name == "torch-users")
    elif name == "jax":
        seconds, loss = _jax(images, labels, seed)
    else:
        raise ValueError(f"unknown contestant {name!r}")
    return {"seconds": seconds, "loss": loss}


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.contest NAME``: one contestant's timed epoch as a JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.contest")
    parser.add_argument("name", choices=[c.name for c in CONTESTANTS if c.role != "cli"])
    parser.add_argument("--samples", type=int, default=EPOCH_SAMPLES)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=FLOOR_REPEATS)
    args = parser.parse_args(argv)
    try:
        result = run_contestant(args.name, args.samples, args.seed, args.repeats)
    except Unavailable as exc:
        print(exc, file=sys.stderr)
        return UNAVAILABLE
    print(json.dumps(result))
    return 0


# --- the rounds ----------------------------------------------------------------------------


def cli_command(metrics: Path, seed: int, smoke: bool, epochs: int = 2) -> list[str]:
    """``mlp train`` for ``epochs`` epochs of the contest's workload on the shipped MNIST, the
    data every contestant trains on (:func:`benchmarks.workloads.epoch_data`)."""
    cmd = [sys.executable, "-m", "mlp", "train", "--dataset", "mnist", "--epochs", str(epochs),
           "--backend", "numpy",
           "--dtype", QUICK_DTYPE, "--hidden", ",".join(map(str, SIZES[QUICK_SIZE][1:-1])),
           "--batch-size", str(QUICK_BATCH), "--optimizer", "adam", "--lr", str(EPOCH_LR),
           "--schedule", "constant", "--seed", str(seed), "--metrics", str(metrics),
           "--overwrite", "--quiet"]
    return cmd + SMOKE_CLI if smoke else cmd


@dataclass
class Contest:
    """Interleaved rounds of :data:`CONTESTANTS` over ``samples`` samples.

    ``seconds[name]`` and ``loss[name]`` list one value per round; ``missing[name]`` says why a
    contestant has none (its library is not installed). ``in_process`` runs every contestant
    but the CLI in this process (a smoke run's check that they work, not a timing).
    """

    samples: int = EPOCH_SAMPLES
    smoke: bool = False
    repeats: int = FLOOR_REPEATS
    in_process: bool = False
    seconds: dict[str, list[float]] = field(default_factory=dict)
    loss: dict[str, list[float]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    cwd: Path = Path(__file__).resolve().parent.parent

    def __post_init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mlp-bench-")
        self._dir = Path(self._tmp.name)
        self._floor: EpochFloor | None = None
        self._round = 0

    def close(self) -> None:
        self._tmp.cleanup()

    def _child(self, name: str, seed: int) -> dict[str, float]:
        if self.in_process:
            return run_contestant(name, self.samples, seed, self.repeats)
        cmd = [sys.executable, "-m", "benchmarks.contest", name, "--samples", str(self.samples),
               "--seed", str(seed), "--repeats", str(self.repeats)]
        return run_child(cmd, self.cwd, 900, name)

    def _cli(self, seed: int) -> dict[str, float]:
        """The CLI timed from outside: the wall-clock time of ``mlp train --epochs 2`` less that
        of the same command with ``--epochs 1`` (one more epoch as its user waits for it, the
        test-set evaluation after it included); its loss is the second epoch's."""
        walls = []
        for epochs in (1, 2):
            metrics = self._dir / f"metrics-{epochs}.jsonl"
            cmd = cli_command(metrics, seed, self.smoke, epochs)
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=self.cwd, capture_output=True, text=True,
                                  timeout=900)
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise RuntimeError(f"mlp train failed ({done.returncode}):\n"
                                   f"{done.stderr[-3000:]}")
        last = json.loads(metrics.read_text(encoding="utf-8").splitlines()[-1])
        return {"seconds": walls[1] - walls[0], "loss": last["train_loss"]}

    def _in_suite_floor(self) -> dict[str, float]:
        """The floor in this (the suite's) process, built once and kept between rounds."""
        import backends

        if self._floor is None:
            self._floor = EpochFloor(backends.get("numpy"), SIZES[QUICK_SIZE], self.samples,
                                     QUICK_BATCH, QUICK_DTYPE)
            for one in self._floor.floors.values():
                for _ in range(8):
                    one()
        times = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            self._floor()
            times.append(time.perf_counter() - start)
        return {"seconds": min(times), "loss": math.nan}

    def order(self, round_index: int) -> tuple[Contestant, ...]:
        """The contestants of round ``round_index``: :data:`CONTESTANTS` rotated by one place
        per round, so that no contestant always runs first or after the same neighbour."""
        k = round_index % len(CONTESTANTS)
        return CONTESTANTS[k:] + CONTESTANTS[:k]

    def run_round(self) -> None:
        """Every available contestant once, in this round's order (:meth:`order`)."""
        seed = 100 + self._round
        order = self.order(self._round)
        self._round += 1
        for c in order:
            if c.name in self.missing:
                continue
            try:
                if c.in_suite:
                    result = self._in_suite_floor()
                elif c.role == "cli":
                    result = self._cli(seed)
                else:
                    result = self._child(c.name, seed)
            except Unavailable as exc:
                self.missing[c.name] = str(exc)
                continue
            self.seconds.setdefault(c.name, []).append(float(result["seconds"]))
            self.loss.setdefault(c.name, []).append(float(result["loss"]))

    def to_json(self) -> dict[str, Any]:
        """What the report reads (stored in the benchmark's ``extra_info["contest"]``)."""
        return {"samples": self.samples, "floor_repeats": self.repeats, "smoke": self.smoke,
                "in_process": self.in_process,
                "seconds": self.seconds, "loss": self.loss, "missing": self.missing}


if __name__ == "__main__":
    raise SystemExit(main())
