"""What the benchmark suite times: configurations, FLOP counts, the GEMM floor and the PyTorch peer.

Everything here is plain Python so that the suite (``test_bench.py``), the report and the tests
share one definition of a configuration and of its arithmetic; the prose description of each
benchmark is :data:`benchmarks.measured.WHAT_IS_MEASURED`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy

# --- configurations ------------------------------------------------------------------------

#: Model sizes, smallest first; the first is the original notebook's network.
SIZES: dict[str, tuple[int, ...]] = {
    "784-100-10": (784, 100, 10),
    "784-512-512-10": (784, 512, 512, 10),
    "784-2048-2048-10": (784, 2048, 2048, 10),
    "784-4096-4096-10": (784, 4096, 4096, 10),
}
SMALLEST = "784-100-10"
#: The sizes of each device kind: a GPU needs wide layers before the matrix products dominate.
CPU_SIZES = ("784-100-10", "784-512-512-10", "784-2048-2048-10")
GPU_SIZES = ("784-512-512-10", "784-2048-2048-10", "784-4096-4096-10")
#: The configuration of the ``--quick`` run and of the epoch headline.
QUICK_SIZE, QUICK_BATCH, QUICK_DTYPE = "784-512-512-10", 128, "float32"
CPU_BATCHES = (128, 1024)
GPU_BATCHES = (128, 1024, 8192)
DTYPES = ("float32", "float64")
#: Fixed-batch benchmarks repeat one batch thousands of times; a small learning rate keeps the
#: network from memorising it (a memorised batch drives gradients towards subnormal numbers,
#: which are slow on CPUs and would time something no real run does). The update's cost does not
#: depend on the learning rate.
BENCH_LR = 1e-4
#: Dropout rate of the dropout step benchmark (the best preset's).
DROPOUT = 0.2
#: A dropout step may cost at most this many times the same step without dropout.
DROPOUT_TARGET = 1.2

#: The epoch benchmark: a full epoch of the MNIST training set.
EPOCH_SAMPLES = 60_000
EPOCH_LR = 1e-3
#: The short epoch of a smoke run (``--bench-smoke``): both batch shapes of a real epoch, 3 steps.
SMOKE_EPOCH_SAMPLES = 2 * QUICK_BATCH + EPOCH_SAMPLES % QUICK_BATCH


@dataclass(frozen=True)
class BackendSpec:
    """One backend as the suite names it.

    Attributes:
        id: the name in test ids, ``--backends`` and the report (``"torch-cuda"``).
        backend: the registry name for :func:`backends.get`.
        device: the device argument for :func:`backends.get`.
        gpu: runs on a CUDA GPU (carries the ``gpu`` marker).
        smoke: run only at the smallest size and batch (a check that it works, not a timing).
    """

    id: str
    backend: str
    device: str | None
    gpu: bool = False
    smoke: bool = False

    @property
    def device_kind(self) -> str:
        """``"cuda"`` or ``"cpu"``: which PyTorch peer this backend is compared with."""
        return "cuda" if self.gpu else "cpu"


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("numpy", "numpy", None),
    BackendSpec("torch", "torch", "cpu"),
    BackendSpec("array_api_strict", "array_api_strict", None, smoke=True),
    BackendSpec("cupy", "cupy", None, gpu=True),
    BackendSpec("torch-cuda", "torch", "cuda", gpu=True),
)
BACKEND_IDS = tuple(spec.id for spec in BACKENDS)
SPECS = {spec.id: spec for spec in BACKENDS}
#: Backends of the epoch benchmark (our code; the floor runs on the same backend).
EPOCH_BACKENDS = ("numpy", "torch", "cupy", "torch-cuda")


class _Shape:
    """What the workloads share: the model widths and whether it is the quick selection."""

    size: str
    batch: int
    dtype: str

    @property
    def sizes(self) -> tuple[int, ...]:
        return SIZES[self.size]

    @property
    def quick(self) -> bool:
        return (self.size, self.batch, self.dtype) == (QUICK_SIZE, QUICK_BATCH, QUICK_DTYPE)


@dataclass(frozen=True)
class Config(_Shape):
    """One benchmark configuration: backend, model size, batch and dtype."""

    spec: BackendSpec
    size: str
    batch: int
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.spec.id}-{self.size}-b{self.batch}-{self.dtype}"


def configs() -> list[Config]:
    """Every (backend, size, batch, dtype) the per-step benchmarks cover."""
    out = []
    for spec in BACKENDS:
        if spec.smoke:
            out += [Config(spec, SMALLEST, CPU_BATCHES[0], dtype) for dtype in DTYPES]
            continue
        batches, sizes = (GPU_BATCHES, GPU_SIZES) if spec.gpu else (CPU_BATCHES, CPU_SIZES)
        out += [Config(spec, size, batch, dtype)
                for size in sizes for batch in batches for dtype in DTYPES]
    return out


@dataclass(frozen=True)
class PeerConfig(_Shape):
    """A PyTorch-peer configuration: device kind (``"cpu"``/``"cuda"``), size, batch, dtype."""

    device: str
    size: str
    batch: int
    dtype: str

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"

    @property
    def id(self) -> str:
        return f"torch.nn-{self.device}-{self.size}-b{self.batch}-{self.dtype}"


def peer_configs() -> list[PeerConfig]:
    """The peer for every (device, size, batch, dtype) that a non-smoke backend covers."""
    out = []
    for device, batches, sizes in (("cpu", CPU_BATCHES, CPU_SIZES),
                                   ("cuda", GPU_BATCHES, GPU_SIZES)):
        out += [PeerConfig(device, size, batch, dtype)
                for size in sizes for batch in batches for dtype in DTYPES]
    return out


def tf32() -> bool:
    """Whether float32 matrix products on a GPU may use TF32 tensor cores: CuPy's own switch,
    ``CUPY_TF32=1``, which the suite applies to PyTorch as well (:func:`apply_tf32`)."""
    return os.environ.get("CUPY_TF32", "0") == "1"


def apply_tf32() -> None:
    """Give PyTorch's CUDA matrix products the TF32 setting of :func:`tf32` (when loaded)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "backends"):
        torch.backends.cuda.matmul.allow_tf32 = tf32()


# --- arithmetic ----------------------------------------------------------------------------


def layer_shapes(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``(n_in, n_out)`` of every linear layer."""
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def forward_flops(sizes: Sequence[int], batch: int) -> int:
    """Floating-point operations of the forward matrix products: ``2 N sum(in * out)``."""
    return 2 * batch * sum(a * b for a, b in layer_shapes(sizes))


def step_flops(sizes: Sequence[int], batch: int) -> int:
    """FLOPs of one training step's matrix products: the forward pass, plus a backward pass of
    twice that (``dW`` and ``dX`` per layer) less the first layer's ``dX``, which nobody needs."""
    fwd = forward_flops(sizes, batch)
    first_dx = 2 * batch * sizes[0] * sizes[1]
    return fwd + 2 * fwd - first_dx


def epoch_batches(n: int, batch: int) -> list[int]:
    """Batch sizes of one epoch over ``n`` samples (the last one may be smaller)."""
    return [min(batch, n - start) for start in range(0, n, batch)]


def epoch_flops(sizes: Sequence[int], n: int, batch: int) -> int:
    """FLOPs of the matrix products of one epoch."""
    return sum(step_flops(sizes, b) for b in epoch_batches(n, batch))


# --- the GEMM floor ------------------------------------------------------------------------


def _matmul_out(backend: Any) -> Callable[[Any, Any, Any], Any]:
    """``mm(a, b, out)``: the library's matrix product into ``out`` where it has ``out=``."""
    if backend.name == "numpy":
        return lambda a, b, out: numpy.matmul(a, b, out=out)
    if backend.name == "cupy":
        import cupy

        return lambda a, b, out: cupy.matmul(a, b, out=out)
    if backend.name == "torch":
        import torch

        return lambda a, b, out: torch.matmul(a, b, out=out)
    return lambda a, b, out: a @ b


class GemmFloor:
    """Only the matrix products of one training step, on ``backend``, shapes of ``sizes`` and
    ``batch``, in ``dtype``; call it to run them once (without synchronising).

    Inputs are independent random arrays (not chained through the layers), so values stay in a
    normal range however often it runs; outputs go into preallocated buffers where possible.
    """

    def __init__(self, backend: Any, sizes: Sequence[int], batch: int, dtype: str,
                 seed: int = 0) -> None:
        rng = numpy.random.default_rng(seed)

        def rand(*shape: int) -> Any:
            return backend.asarray(rng.standard_normal(shape) * 0.1, dtype)

        def empty(*shape: int) -> Any:
            return backend.zeros(shape, dtype)

        self.mm = _matmul_out(backend)
        self.layers = []
        for i, (n_in, n_out) in enumerate(layer_shapes(sizes)):
            self.layers.append({
                "h": rand(batch, n_in),  # the layer's input
                "w": rand(n_in, n_out),
                "g": rand(batch, n_out),  # the gradient arriving from above
                "y": empty(batch, n_out),
                "dw": empty(n_in, n_out),
                "dx": empty(batch, n_in) if i > 0 else None,
            })
        self.flops = step_flops(sizes, batch)

    def __call__(self) -> None:
        mm = self.mm
        for layer in self.layers:
            mm(layer["h"], layer["w"], layer["y"])
        for layer in reversed(self.layers):
            mm(layer["h"].T, layer["g"], layer["dw"])
            if layer["dx"] is not None:
                mm(layer["g"], layer["w"].T, layer["dx"])


class EpochFloor:
    """The matrix products of a whole epoch: one :class:`GemmFloor` per distinct batch size."""

    def __init__(self, backend: Any, sizes: Sequence[int], n: int, batch: int,
                 dtype: str) -> None:
        self.batches = epoch_batches(n, batch)
        self.floors = {b: GemmFloor(backend, sizes, b, dtype) for b in sorted(set(self.batches))}
        self.flops = epoch_flops(sizes, n, batch)

    def __call__(self) -> None:
        floors = self.floors
        for b in self.batches:
            floors[b]()


# --- the PyTorch peer ----------------------------------------------------------------------


#: How a CPU user installs the PyTorch peer (the CPU-only wheel; PyPI's default is a CUDA build).
TORCH_CPU_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


class TorchPeer:
    """The same MLP written the idiomatic PyTorch way (``nn.Sequential``, autograd, Adam).

    ``params`` (host arrays by name, as ``MLP.state_dict()`` gives them: ``"0.W"`` of shape
    ``(in, out)``, ``"0.b"``, ``"2.W"``, ...) sets the initial weights, so the peer and our model
    can start from the same point; without it PyTorch initialises them (seeded by ``seed``).
    """

    def __init__(self, sizes: Sequence[int], dtype: str, device: Any, lr: float = BENCH_LR,
                 seed: int = 0, params: dict[str, numpy.ndarray] | None = None) -> None:
        import torch
        from torch import nn

        apply_tf32()
        self.torch = torch
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        torch.manual_seed(seed)
        layers: list[Any] = []
        shapes = layer_shapes(sizes)
        for i, (n_in, n_out) in enumerate(shapes):
            linear = nn.Linear(n_in, n_out)
            if params is not None:
                with torch.no_grad():
                    linear.weight.copy_(torch.as_tensor(numpy.asarray(params[f"{2 * i}.W"]).T))
                    linear.bias.copy_(torch.as_tensor(numpy.asarray(params[f"{2 * i}.b"])))
            layers.append(linear)
            if i < len(shapes) - 1:
                layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers).to(device=self.device, dtype=self.dtype)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.loss_fn = nn.CrossEntropyLoss()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def batch(self, batch: int, n_features: int, n_classes: int, seed: int = 0) -> tuple[Any, Any]:
        """A random float batch and integer labels on the peer's device."""
        rng = numpy.random.default_rng(seed)
        x = self.torch.as_tensor(rng.random((batch, n_features)), dtype=self.dtype,
                                 device=self.device)
        y = self.torch.as_tensor(rng.integers(0, n_classes, batch), device=self.device)
        return x, y

    def step(self, x: Any, y: Any) -> Any:
        """One training step; returns the loss tensor (before the update)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss

    def epoch(self, images: Any, labels: Any, batch: int, perm: Any) -> tuple[float, int]:
        """One shuffled epoch over uint8 ``images (N, D)`` and int64 ``labels (N,)`` already on
        the device: gather each batch by ``perm`` (an int64 tensor on the device, drawn by the
        caller, outside any timing), convert it to float / 255, step (:meth:`train`). Returns
        ``(mean loss, correct)``."""
        n = images.shape[0]
        return self.train(((images[idx].to(self.dtype) / 255.0, labels[idx])
                           for idx in (perm[i : i + batch] for i in range(0, n, batch))), n)

    def train(self, batches: Iterable[tuple[Any, Any]], n: int) -> tuple[float, int]:
        """A training step on each ``(x, y)`` of ``batches`` (``n`` samples in all). Like
        :class:`mlp.train.Trainer` it keeps the summed loss and the number of correct
        predictions on the device, read once at the end. Returns ``(mean loss, correct)``."""
        torch = self.torch
        loss_sum = torch.zeros((), dtype=self.dtype, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for xb, yb in batches:
            self.optimizer.zero_grad(set_to_none=True)
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * yb.shape[0]
            correct += (out.argmax(dim=1) == yb).sum()
        return loss_sum.item() / n, int(correct.item())


def permutation(seed: int, n: int) -> numpy.ndarray:
    """The permutation :class:`mlp.train.Trainer` draws for its first epoch with ``seed``: the
    order every contestant of the epoch contest trains in."""
    return numpy.random.default_rng(seed).permutation(n)


def initial_params(size: str = QUICK_SIZE, dtype: str = QUICK_DTYPE) -> dict[str, numpy.ndarray]:
    """The initial weights of our model (``MLP(..., seed=0)``) by name: every peer starts there."""
    from mlp import MLP

    return MLP(list(SIZES[size]), dtype=dtype, seed=0).state_dict()


def epoch_data(n: int = EPOCH_SAMPLES) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The first ``n`` MNIST training images ``(n, 784)`` uint8 and labels ``(n,)`` int64, from
    the copy shipped with the package: the data ``mlp train`` trains on."""
    from mlp import data

    mnist = data.load("mnist", split="train")
    return mnist.x_train[:n], mnist.y_train[:n]


def gflops(flops: float, seconds: float) -> float:
    """Achieved GFLOP/s, NaN for a missing or zero time."""
    if not seconds or math.isnan(seconds):
        return math.nan
    return flops / seconds / 1e9
