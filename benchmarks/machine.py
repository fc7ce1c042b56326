"""A description of the machine a benchmark ran on: CPU, cores, BLAS threads, GPU, versions.

:func:`collect` runs inside the benchmark session (pytest-benchmark stores the result in its
JSON under ``machine_info["mlp"]``), so a report built elsewhere still names the right machine.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

from .workloads import tf32

PACKAGES = ("numpy", "array-api-compat", "array-api-strict", "torch", "cupy", "scikit-learn",
            "pytest-benchmark")
_CUPY_DISTS = ("cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x")


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, else :mod:`platform`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str | None:
    names = _CUPY_DISTS if dist == "cupy" else (dist,)
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def blas_info() -> list[dict[str, Any]]:
    """Thread pools of the loaded native libraries (BLAS, OpenMP) via threadpoolctl; file paths
    are dropped, they name nothing useful off this machine."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer",
            "architecture")
    pools = []
    for pool in threadpool_info():
        entry = {k: pool[k] for k in keep if pool.get(k) is not None}
        entry["library"] = os.path.basename(str(pool.get("filepath", "")))
        pools.append(entry)
    return pools


def gpu_info() -> dict[str, Any]:
    """Names of visible CUDA devices per library (empty without a GPU)."""
    gpus: dict[str, Any] = {}
    if "torch" in sys.modules or _version("torch"):
        try:
            import torch

            if torch.cuda.is_available():
                gpus["torch"] = [torch.cuda.get_device_name(i)
                                 for i in range(torch.cuda.device_count())]
                gpus["torch_cuda"] = torch.version.cuda
        except Exception:  # noqa: BLE001 - a broken CUDA install must not stop the report
            pass
    if _version("cupy"):
        try:
            import cupy

            count = cupy.cuda.runtime.getDeviceCount()
            gpus["cupy"] = [cupy.cuda.runtime.getDeviceProperties(i)["name"].decode()
                            for i in range(count)]
            gpus["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
            gpus["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        except Exception:  # noqa: BLE001 - no driver, no device: simply no GPU
            pass
    if gpus:
        gpus["driver"] = _nvidia_driver()
        gpus["tf32"] = tf32()
    return gpus


def _nvidia_driver() -> str | None:
    """The NVIDIA driver's version from ``nvidia-smi``, ``None`` where it cannot be read."""
    try:
        run = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout.split("\n")[0].strip() or None


def collect() -> dict[str, Any]:
    """Everything the report's header shows, as JSON-able data."""
    import numpy  # noqa: F401 - loaded so that its BLAS shows up in the thread pools

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "versions": {name: v for name in PACKAGES if (v := _version(name))},
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    info["blas"] = blas_info()
    info["gpu"] = gpu_info()
    return info
