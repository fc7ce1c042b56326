"""The benchmark suite (pytest-benchmark): run it with ``mlp bench`` or ``python -m benchmarks``.

Per configuration (backend × model size × batch × dtype) it times ``forward``, ``backward``,
``step``, ``floor`` and the PyTorch ``peer``; then one full epoch, its floor and the peer's epoch
in the suite's process; the headline contest (:mod:`benchmarks.contest`: every contestant in its
own process, in interleaved rounds); the per-phase breakdown of one step
(:mod:`benchmarks.phases`); and scikit-learn's ``MLPClassifier`` against ours
(:mod:`benchmarks.sklearn_contest`, needs the ``sklearn`` extra; ``-k sklearn`` runs it alone).
:data:`benchmarks.measured.WHAT_IS_MEASURED` says exactly what each one measures.

``--bench-smoke`` (see :mod:`benchmarks.conftest`) keeps the smallest configurations and a short
epoch: with ``--benchmark-disable`` it checks that every workload runs, as the test suite does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy
import pytest

import backends
from backends import BackendError
from mlp import MLP, Adam
from mlp.steps import choose
from mlp.train import DeviceData, Trainer

from .contest import FLOOR_REPEATS, WARMUP_SAMPLES, WARMUP_SEED, Contest
from .phases import breakdown
from .sklearn_contest import CPU_NAMES, DATASETS, GPU_NAMES, SKLEARN_INSTALL, SklearnContest
from .workloads import (
    BENCH_LR,
    DROPOUT,
    EPOCH_BACKENDS,
    EPOCH_LR,
    EPOCH_SAMPLES,
    QUICK_BATCH,
    QUICK_DTYPE,
    QUICK_SIZE,
    SIZES,
    SMOKE_EPOCH_SAMPLES,
    SPECS,
    BackendSpec,
    Config,
    EpochFloor,
    GemmFloor,
    PeerConfig,
    TorchPeer,
    apply_tf32,
    configs,
    epoch_data,
    epoch_flops,
    initial_params,
    peer_configs,
    permutation,
    step_flops,
)

# --- parametrisation -----------------------------------------------------------------------


def _marks(spec: BackendSpec | None = None, device: str | None = None,
           quick: bool = False, epoch: bool = False) -> list[Any]:
    marks: list[Any] = []
    if spec is not None:
        marks.append(pytest.mark.bench_target(backend=spec.id))
        gpu = spec.gpu
    else:
        marks.append(pytest.mark.bench_target(device=device))
        gpu = device == "cuda"
    if gpu:
        marks.append(pytest.mark.gpu)
    if quick:
        marks.append(pytest.mark.quick)
    if epoch:
        marks.append(pytest.mark.epoch)
    return marks


def _config_params(gpu_only: bool = False) -> Iterator[Any]:
    for cfg in configs():
        if gpu_only and not cfg.spec.gpu:
            continue
        yield pytest.param(cfg, id=cfg.id, marks=_marks(cfg.spec, quick=cfg.quick))


def _peer_params() -> Iterator[Any]:
    for cfg in peer_configs():
        yield pytest.param(cfg, id=cfg.id, marks=_marks(device=cfg.device, quick=cfg.quick))


def _epoch_params() -> Iterator[Any]:
    for name in EPOCH_BACKENDS:
        spec = SPECS[name]
        yield pytest.param(spec, id=spec.id, marks=_marks(spec, quick=True, epoch=True))


def _epoch_peer_params() -> Iterator[Any]:
    for device in ("cpu", "cuda"):
        yield pytest.param(device, id=f"torch.nn-{device}",
                           marks=_marks(device=device, quick=True, epoch=True))


# --- fixtures ------------------------------------------------------------------------------


@dataclass
class Case:
    """A model with one batch on its backend, ready to time."""

    config: Config
    model: MLP
    x: Any
    y: Any
    sync: Callable[[], None]


def _backend(spec: BackendSpec) -> backends.Backend:
    try:
        backend = backends.get(spec.backend, spec.device)
    except BackendError as exc:
        pytest.skip(f"backend {spec.id} unavailable: {exc}")
    apply_tf32()
    return backend


def _model(spec: BackendSpec, sizes: tuple[int, ...], dtype: str, lr: float,
           dropout: float = 0.0, cuda_graph: bool = False) -> MLP:
    backend = _backend(spec)
    if cuda_graph and backend.capture_unsupported:
        pytest.skip(f"backend {spec.id}: {backend.capture_unsupported}")
    try:
        model = MLP(list(sizes), backend=backend, dtype=dtype, optimizer=Adam(lr), seed=0,
                    dropout=dropout)
        choose(model, cuda_graph=cuda_graph)  # compiled where the backend compiles (JAX)
        return model
    except BackendError as exc:
        pytest.skip(f"backend {spec.id} cannot run {dtype}: {exc}")


@pytest.fixture(params=list(_config_params()))
def case(request: pytest.FixtureRequest) -> Case:
    return _case(request.param)


@pytest.fixture(params=list(_config_params(gpu_only=True)))
def gpu_case(request: pytest.FixtureRequest) -> Case:
    """A GPU configuration's case, its model's step captured as a CUDA graph."""
    return _case(request.param, cuda_graph=True)


def _case(cfg: Config, cuda_graph: bool = False) -> Case:
    model = _model(cfg.spec, cfg.sizes, cfg.dtype, BENCH_LR, cuda_graph=cuda_graph)
    rng = numpy.random.default_rng(1)
    x = model.backend.asarray(rng.random((cfg.batch, cfg.sizes[0])), cfg.dtype)
    y = model.backend.asarray(rng.integers(0, cfg.sizes[-1], cfg.batch))
    return Case(cfg, model, x, y, model.backend.synchronize)


def _torch_device(kind: str) -> Any:
    torch = pytest.importorskip("torch", reason="the PyTorch peer needs torch")
    if kind == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    return torch.device(kind)


def _record(benchmark: Any, kind: str, backend: str, device: str, size: str, batch: int,
            dtype: str, flops: int, **extra: Any) -> None:
    prefix = "epoch " if kind.startswith("epoch") else ""
    benchmark.group = f"{prefix}{size} b{batch} {dtype}"
    benchmark.extra_info.update(kind=kind, backend=backend, device=device, size=size,
                                batch=batch, dtype=dtype, flops=flops, **extra)


def _record_case(benchmark: Any, case: Case, kind: str) -> None:
    cfg = case.config
    _record(benchmark, kind, cfg.spec.id, cfg.spec.device_kind, cfg.size, cfg.batch, cfg.dtype,
            step_flops(cfg.sizes, cfg.batch))


# --- per-step benchmarks -------------------------------------------------------------------


def test_forward(benchmark: Any, case: Case) -> None:
    layers, x, sync = case.model.layers, case.x, case.sync

    def run() -> None:
        layers.forward(x, train=True)
        sync()

    _record_case(benchmark, case, "forward")
    benchmark(run)


def test_backward(benchmark: Any, case: Case) -> None:
    model, sync = case.model, case.sync
    model.loss.forward(model.layers.forward(case.x, train=True), case.y)

    def run() -> None:
        model.layers.backward(model.loss.backward())
        sync()

    _record_case(benchmark, case, "backward")
    benchmark(run)


def _bench_steps(benchmark: Any, case: Case, model: MLP, kind: str) -> None:
    """Time ``model.train_step`` on the case's batch, synchronised, recorded as ``kind``."""
    x, y, sync = case.x, case.y, case.sync

    def run() -> None:
        model.train_step(x, y)
        sync()

    _record_case(benchmark, case, kind)
    benchmark(run)


def test_step(benchmark: Any, case: Case) -> None:
    _bench_steps(benchmark, case, case.model, "step")


def test_step_dropout(benchmark: Any, case: Case) -> None:
    """The same step with dropout (rate :data:`DROPOUT`) after each hidden layer."""
    cfg = case.config
    model = _model(cfg.spec, cfg.sizes, cfg.dtype, BENCH_LR, dropout=DROPOUT)
    _bench_steps(benchmark, case, model, "step-dropout")


def test_step_graph(benchmark: Any, gpu_case: Case) -> None:
    """The same step captured as a CUDA graph and replayed (GPU backends that capture)."""
    gpu_case.model.train_step(gpu_case.x, gpu_case.y)  # the first update runs eagerly
    _bench_steps(benchmark, gpu_case, gpu_case.model, "step-graph")  # the second captures


def test_floor(benchmark: Any, case: Case) -> None:
    cfg = case.config
    floor = GemmFloor(case.model.backend, cfg.sizes, cfg.batch, cfg.dtype)
    sync = case.sync

    def run() -> None:
        floor()
        sync()

    _record_case(benchmark, case, "floor")
    benchmark(run)


@pytest.mark.parametrize("cfg", list(_peer_params()))
def test_peer(benchmark: Any, cfg: PeerConfig) -> None:
    peer = TorchPeer(cfg.sizes, cfg.dtype, _torch_device(cfg.device), lr=BENCH_LR)
    x, y = peer.batch(cfg.batch, cfg.sizes[0], cfg.sizes[-1], seed=1)

    def run() -> None:
        peer.step(x, y)
        peer.synchronize()

    _record(benchmark, "peer", "torch.nn", cfg.device, cfg.size, cfg.batch, cfg.dtype,
            step_flops(cfg.sizes, cfg.batch))
    benchmark(run)


# --- the epoch (headline) ------------------------------------------------------------------


def _epoch_samples(config: pytest.Config) -> int:
    """Samples of an epoch: a full MNIST-sized one, or a short one with ``--bench-smoke``."""
    return SMOKE_EPOCH_SAMPLES if config.getoption("--bench-smoke") else EPOCH_SAMPLES


@pytest.fixture(scope="module")
def epoch_host(request: pytest.FixtureRequest) -> tuple[numpy.ndarray, numpy.ndarray]:
    """60000 random uint8 images (784 pixels) and int64 labels, on the host (fewer when smoke)."""
    return epoch_data(_epoch_samples(request.config))


def _rounds(request: pytest.FixtureRequest) -> int:
    return max(1, int(request.config.getoption("--bench-epoch-rounds")))


def _record_epoch(benchmark: Any, kind: str, backend: str, device: str, samples: int,
                  **extra: Any) -> None:
    sizes = SIZES[QUICK_SIZE]
    _record(benchmark, kind, backend, device, QUICK_SIZE, QUICK_BATCH, QUICK_DTYPE,
            epoch_flops(sizes, samples, QUICK_BATCH), samples=samples,
            steps=-(-samples // QUICK_BATCH), **extra)


@pytest.mark.parametrize("spec", list(_epoch_params()))
def test_epoch(benchmark: Any, spec: BackendSpec, epoch_host: tuple[Any, Any],
               request: pytest.FixtureRequest) -> None:
    """One epoch of :class:`mlp.train.Trainer` (Adam, batch 128, no test set)."""
    images, labels = epoch_host
    model = _model(spec, SIZES[QUICK_SIZE], QUICK_DTYPE, EPOCH_LR)
    warm = DeviceData(model, images[:WARMUP_SAMPLES], labels[:WARMUP_SAMPLES])
    Trainer(model, warm, None, batch_size=QUICK_BATCH, epochs=1, seed=WARMUP_SEED).fit()
    data = DeviceData(model, images, labels)
    seeds = iter(range(100, 10_000))

    def setup() -> tuple[tuple[Trainer], dict[str, Any]]:
        trainer = Trainer(model, data, None, batch_size=QUICK_BATCH, epochs=1, seed=next(seeds))
        return (trainer,), {}

    _record_epoch(benchmark, "epoch", spec.id, spec.device_kind, len(labels))
    history = benchmark.pedantic(lambda trainer: trainer.fit(), setup=setup,
                                 rounds=_rounds(request), iterations=1)
    benchmark.extra_info["train_loss"] = history[-1]["train_loss"]


@pytest.mark.parametrize("spec", list(_epoch_params()))
def test_epoch_floor(benchmark: Any, spec: BackendSpec, request: pytest.FixtureRequest) -> None:
    """The matrix products of the same epoch: 468 steps of batch 128 and one of 96."""
    backend = _backend(spec)
    samples = _epoch_samples(request.config)
    floor = EpochFloor(backend, SIZES[QUICK_SIZE], samples, QUICK_BATCH, QUICK_DTYPE)
    for one in floor.floors.values():  # warm up both shapes
        for _ in range(8):
            one()
    sync = backend.synchronize

    def run() -> None:
        floor()
        sync()

    _record_epoch(benchmark, "epoch-floor", spec.id, spec.device_kind, samples)
    benchmark.pedantic(run, rounds=_rounds(request), iterations=1)


@pytest.mark.parametrize("device", list(_epoch_peer_params()))
def test_epoch_peer(benchmark: Any, device: str, epoch_host: tuple[Any, Any],
                    request: pytest.FixtureRequest) -> None:
    """The same epoch in idiomatic PyTorch, from a uint8 tensor on the device."""
    dev = _torch_device(device)
    import torch

    peer = TorchPeer(SIZES[QUICK_SIZE], QUICK_DTYPE, dev, lr=EPOCH_LR, params=initial_params())
    images = torch.from_numpy(epoch_host[0]).to(dev)
    labels = torch.from_numpy(epoch_host[1]).to(dev)
    warm = torch.from_numpy(permutation(WARMUP_SEED, len(labels[:WARMUP_SAMPLES]))).to(dev)
    peer.epoch(images[:WARMUP_SAMPLES], labels[:WARMUP_SAMPLES], QUICK_BATCH, warm)
    seeds = iter(range(100, 10_000))

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        # the permutation of each round, drawn outside the timing (as the trainer's is)
        return (torch.from_numpy(permutation(next(seeds), len(labels))).to(dev),), {}

    def run(perm: Any) -> tuple[float, int]:
        result = peer.epoch(images, labels, QUICK_BATCH, perm)
        peer.synchronize()
        return result

    _record_epoch(benchmark, "epoch-peer", "torch.nn", device, len(labels))
    loss, _ = benchmark.pedantic(run, setup=setup, rounds=_rounds(request), iterations=1)
    benchmark.extra_info["train_loss"] = loss



# --- the headline contest and the per-phase breakdown -------------------------------------


@pytest.mark.quick
@pytest.mark.epoch
@pytest.mark.bench_target(backend="numpy")
def test_epoch_contest(benchmark: Any, request: pytest.FixtureRequest) -> None:
    """Interleaved rounds of ours, the CLI, the floor (own process and in-suite) and the peers;
    each round is one pytest-benchmark round, the per-contestant times go in ``extra_info``."""
    smoke = request.config.getoption("--bench-smoke")
    contest = Contest(samples=_epoch_samples(request.config), smoke=smoke,
                      repeats=1 if smoke else FLOOR_REPEATS, in_process=smoke)
    _record_epoch(benchmark, "epoch-contest", "numpy", "cpu", contest.samples)
    try:
        benchmark.pedantic(contest.run_round, rounds=_rounds(request), iterations=1)
    finally:
        contest.close()
    benchmark.extra_info["contest"] = contest.to_json()


@pytest.mark.quick
@pytest.mark.bench_target(backend="numpy")
def test_phases(benchmark: Any, epoch_host: tuple[Any, Any],
                request: pytest.FixtureRequest) -> None:
    """Seconds per step of each phase of a numpy step (784-512-512-10, batch 128, float32)."""
    smoke = request.config.getoption("--bench-smoke")
    model = _model(SPECS["numpy"], SIZES[QUICK_SIZE], QUICK_DTYPE, EPOCH_LR)
    data = DeviceData(model, *epoch_host)
    result: dict[str, float] = {}

    def run() -> None:
        result.update(breakdown(model, data.x, data.y, QUICK_BATCH, steps=2 if smoke else 100,
                                blocks=1 if smoke else 5))

    _record(benchmark, "phases", "numpy", "cpu", QUICK_SIZE, QUICK_BATCH, QUICK_DTYPE,
            step_flops(SIZES[QUICK_SIZE], QUICK_BATCH))
    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["phases"] = result


@pytest.mark.quick
@pytest.mark.bench_target(backend="numpy")
def test_jax_steps(benchmark: Any, request: pytest.FixtureRequest) -> None:
    """Our step on JAX, eager and compiled by ``jax.jit``, beside the JAX-written peer (a
    jitted ``jax.grad`` step), interleaved, same weights and batch."""
    pytest.importorskip("jax", reason="the JAX rows need jax (pip install jax)")
    from .jax_peer import measure

    smoke = request.config.getoption("--bench-smoke")
    size = "784-100-10" if smoke else QUICK_SIZE
    result: dict[str, float] = {}

    def run() -> None:
        result.update(measure(size, QUICK_BATCH, QUICK_DTYPE, rounds=2 if smoke else 15,
                              steps=2 if smoke else 10, warmup=1 if smoke else 5))

    _record(benchmark, "jax-steps", "jax", "cpu", size, QUICK_BATCH, QUICK_DTYPE,
            step_flops(SIZES[size], QUICK_BATCH))
    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["jax"] = result


# --- scikit-learn's MLPClassifier against ours --------------------------------------------


def _sklearn_contest(benchmark: Any, request: pytest.FixtureRequest, names: tuple[str, ...],
                     backend: str, device: str, datasets: tuple[str, ...] = DATASETS) -> None:
    """Interleaved rounds of ``names`` (:mod:`benchmarks.sklearn_contest`); each round is one
    pytest-benchmark round, the per-fit figures go in ``extra_info["sklearn"]``."""
    pytest.importorskip("sklearn", reason=f"the comparison needs scikit-learn: {SKLEARN_INSTALL}")
    smoke = request.config.getoption("--bench-smoke")
    epochs = max(1, int(request.config.getoption("--bench-sklearn-epochs")))
    contest = (SklearnContest(names, datasets, hidden=(16,), epochs=1, samples=300,
                              in_process=True)
               if smoke else SklearnContest(names, datasets, epochs=epochs))
    benchmark.group = "sklearn MLPClassifier"
    benchmark.extra_info.update(kind="sklearn-contest", backend=backend, device=device)
    benchmark.pedantic(contest.run_round, rounds=_rounds(request), iterations=1)
    benchmark.extra_info["sklearn"] = contest.to_json()


@pytest.mark.bench_target(backend="numpy")
def test_sklearn_contest(benchmark: Any, request: pytest.FixtureRequest) -> None:
    """scikit-learn's ``MLPClassifier`` against ours on NumPy: MNIST and digits, float64 and
    float32, the same settings, interleaved rounds."""
    _sklearn_contest(benchmark, request, CPU_NAMES, "numpy", "cpu")


@pytest.mark.gpu
@pytest.mark.bench_target(backend="cupy")
def test_sklearn_contest_cupy(benchmark: Any, request: pytest.FixtureRequest) -> None:
    """The same comparison on MNIST with a row of ours on CuPy beside it (a GPU with CuPy
    only)."""
    _backend(SPECS["cupy"])  # skips without CuPy or a GPU
    _sklearn_contest(benchmark, request, GPU_NAMES, "cupy", "cuda", datasets=("mnist",))
