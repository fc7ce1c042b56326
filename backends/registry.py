"""Factories for the supported array libraries; each imports its library lazily."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from . import counter_uniform
from .base import DTYPES, Backend
from .errors import BackendError
from .imports import BrokenImport, load
from .inplace_ops import InplaceOps
from .ops import GenericOps

INSTALL_HINT = {
    "numpy": 'pip install .',
    "cupy": 'pip install ".[cuda12]" or ".[cuda13]", matching the '
            "CUDA version nvidia-smi shows (never both)",
    # PyPI's Linux torch wheels bundle CUDA (several GB); PyTorch's CPU index has the small ones.
    "torch": "pip install torch --index-url https://download.pytorch.org/whl/cpu (CPU only), "
             'or pip install ".[torch]" for the CUDA build',
    "array_api_strict": 'pip install ".[test]"',
    "jax": 'pip install ".[jax]"',
}


def _import(module: str, backend: str) -> Any:
    try:
        return load(module)
    except BrokenImport as exc:
        raise BackendError(f"backend {backend!r} cannot be used: {exc}; reinstall it with: "
                           f"{INSTALL_HINT[backend]}") from None
    except ImportError as exc:
        raise BackendError(
            f"backend {backend!r} needs {module!r}, which is not installed ({exc}); "
            f"install it with: {INSTALL_HINT[backend]}"
        ) from None


def _supported_dtypes(xp: Any, device: Any) -> tuple[str, ...]:
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:
        return DTYPES
    try:
        have = info().dtypes(device=device, kind="real floating")
    except Exception:  # noqa: BLE001 - an older library without the inspection API
        return DTYPES
    return tuple(name for name in DTYPES if name in have)


def _numpy(device: Any) -> Backend:
    from array_api_compat import numpy as xp

    if device not in (None, "cpu"):
        raise BackendError(f"backend 'numpy' runs on device 'cpu' only, not {device!r}")
    return Backend(
        "numpy",
        xp,
        "cpu",
        InplaceOps(xp, numpy, "cpu", kernels=True),
        version=numpy.__version__,
    )


def _cupy(device: Any) -> Backend:
    cupy = _import("cupy", "cupy")
    from array_api_compat import cupy as xp

    from .cupy_ops import CupyOps

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError and driver errors alike
        raise BackendError(
            f"backend 'cupy' found no usable CUDA GPU ({exc}); use --backend numpy, "
            "or check the NVIDIA driver and that the cupy-cuda package matches its CUDA version"
        ) from None
    index = _device_index(device, "cupy")
    if not 0 <= index < count:
        raise BackendError(f"backend 'cupy' sees {count} GPU(s); device {index} does not exist")
    dev = cupy.cuda.Device(index)
    ops = CupyOps(xp, cupy, dev)
    return Backend(
        "cupy",
        xp,
        dev,
        ops,
        to_numpy=cupy.asnumpy,
        synchronize=dev.synchronize,
        version=cupy.__version__,
        is_host=False,
        # A fresh Device object per entry: its stack of previous devices is then never shared
        # between threads or nested entries.
        activate=lambda: cupy.cuda.Device(index),
        uniform=_cupy_uniform(cupy),
        capture=_cupy_capture(cupy),
        # CuPy refuses its own cuBLAS calls while a stream captures: the step's products must
        # be the direct ones (backends.cublas).
        capture_check=lambda: None if ops.direct_gemm() is not None else (
            f"the direct cuBLAS matrix products are unavailable ({ops.gemm_failure}), and CuPy "
            "does not allow its own inside a CUDA graph capture; use --backend torch "
            "--device cuda"),
    )


def _cupy_capture(cupy: Any) -> Callable[[Callable[[], Any]], tuple[Callable[[], None], Any]]:
    """CUDA graphs of CuPy work (see :meth:`Backend.capture`): ``fn`` runs once on a
    non-blocking stream of its own (every kernel compiled, every temporary allocated), then is
    captured on that stream. Both run inside a memory pool private to the graph and kept alive
    with it, so no memory the graph uses is handed to other work, and the capture allocates
    nothing new."""

    def capture(fn: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
        pool = cupy.cuda.MemoryPool()
        stream = cupy.cuda.Stream(non_blocking=True)
        current = cupy.cuda.get_current_stream()
        stream.wait_event(current.record())
        with cupy.cuda.using_allocator(pool.malloc), stream:
            fn()
            stream.synchronize()
            stream.begin_capture(getattr(cupy.cuda.runtime, "streamCaptureModeRelaxed", 2))
            try:
                result = fn()
            finally:
                graph = stream.end_capture()
        stream.synchronize()

        def replay() -> None:
            queued = cupy.cuda.get_current_stream()
            stream.wait_event(queued.record())
            graph.launch(stream)
            queued.wait_event(stream.record())

        replay.keep = (pool, stream, graph)  # type: ignore[attr-defined]
        return replay, result

    return capture


def _cupy_uniform(cupy: Any) -> Callable[[int, tuple[int, ...]], Any]:
    """Float32 uniforms in [0, 1) from the counter-based generator of
    :mod:`backends.counter_uniform`, in one kernel and with no generator state to reseed
    (cuRAND's reseeding costs a setup pass per call)."""
    kernel = cupy.ElementwiseKernel("uint64 seed", "float32 u", counter_uniform.CUDA_SOURCE,
                                    "mlp_uniform")

    def uniform(seed: int, shape: tuple[int, ...]) -> Any:
        out = cupy.empty(shape, dtype=cupy.float32)
        kernel(cupy.uint64(seed), out)
        return out

    return uniform


def _device_index(device: Any, backend: str) -> int:
    """The GPU index of ``device``: ``None``, an int or an object with ``__int__`` (a
    ``cupy.cuda.Device``), or a string ``"1"``, ``"cuda"``, ``"cuda:1"``."""
    if device is None:
        return 0
    if not isinstance(device, str | bool | float):
        try:
            return int(device)
        except (TypeError, ValueError):
            pass
    text = str(device)
    if text.startswith("cuda:"):
        text = text[5:]
    elif text == "cuda":
        return 0
    try:
        return int(text)
    except ValueError:
        raise BackendError(
            f"backend {backend!r}: device {device!r} is not a GPU index such as 0 or 'cuda:1'"
        ) from None


def _torch(device: Any) -> Backend:
    torch = _import("torch", "torch")
    from array_api_compat import torch as xp

    from .torch_ops import TorchOps

    try:
        dev = torch.device(device or "cpu")
    except RuntimeError as exc:
        raise BackendError(f"backend 'torch': bad device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(
            f"backend 'torch' found no CUDA device (this PyTorch {torch.__version__} is built "
            f"for CUDA {torch.version.cuda}): use --device cpu, or check the NVIDIA driver"
            if getattr(getattr(torch, "version", None), "cuda", None) else
            f"backend 'torch' has no CUDA device here: this PyTorch {torch.__version__} is a "
            "CPU-only build; use --device cpu, or install a CUDA build of PyTorch"
        )
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise BackendError(f"backend 'torch': {dev} does not exist")
    dtypes = DTYPES if dev.type != "mps" else ("float32",)

    def to_numpy(x: Any) -> numpy.ndarray:
        return x.detach().cpu().numpy()

    sync: Callable[[], None] | None = None
    activate: Callable[[], Any] | None = None
    uniform: Callable[[int, tuple[int, ...]], Any] | None = None
    capture: Callable[[Callable[[], Any]], tuple[Callable[[], None], Any]] | None = None
    if dev.type == "cuda":
        def sync() -> None:
            torch.cuda.synchronize(dev)

        def activate() -> Any:
            return torch.cuda.device(dev)

        generator = torch.Generator(device=dev)

        def capture(fn: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                result = fn()
            return graph.replay, result

        def uniform(seed: int, shape: tuple[int, ...]) -> Any:
            generator.manual_seed(seed)
            return torch.rand(shape, generator=generator, device=dev, dtype=torch.float32)

    return Backend(
        "torch",
        xp,
        dev,
        # In place on the CPU; on CUDA the portable expressions (what the GPU tests cover).
        TorchOps(xp, torch, dev) if dev.type == "cpu" else GenericOps(xp, dev),
        dtypes=dtypes,
        to_numpy=to_numpy,
        synchronize=sync,
        version=torch.__version__,
        is_host=dev.type == "cpu",
        set_threads=torch.set_num_threads,
        activate=activate,
        uniform=uniform,
        capture=capture,
    )


def _strict(device: Any) -> Backend:
    xp = _import("array_api_strict", "array_api_strict")
    info = xp.__array_namespace_info__()
    if device is None:
        dev = info.default_device()
    else:
        dev = next((d for d in info.devices() if d == device or _strict_name(d) == device), None)
        if dev is None:
            raise BackendError(
                f"backend 'array_api_strict' has no device {device!r}; "
                f"choose one of {', '.join(_strict_name(d) for d in info.devices())}"
            )
    return Backend(
        "array_api_strict",
        xp,
        dev,
        GenericOps(xp, dev),
        dtypes=_supported_dtypes(xp, dev),
        to_numpy=lambda x: _strict_to_numpy(x, info.default_device()),
        version=xp.__version__,
    )


def _strict_to_numpy(x: Any, default: Any) -> numpy.ndarray:
    """An array-api-strict array on the host: read where NumPy can read it, else moved to the
    default device first (array-api-strict's ``to_device`` needs NumPy 2)."""
    try:
        return numpy.from_dlpack(x)
    except (BufferError, RuntimeError, ValueError):
        return numpy.from_dlpack(x.to_device(default))


def _strict_name(device: Any) -> str:
    text = repr(device)
    return text.split("'")[1] if "'" in text else text


def _jax(device: Any) -> Backend:
    from .jax_backend import create

    return create(_import("jax", "jax"), device)


FACTORIES: dict[str, Callable[[Any], Backend]] = {
    "numpy": _numpy,
    "cupy": _cupy,
    "torch": _torch,
    "array_api_strict": _strict,
    "jax": _jax,
}
