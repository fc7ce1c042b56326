"""What the machine can give a run: memory for the model, and CPU cores for BLAS threads."""

from __future__ import annotations

import os
import sys
from typing import Any

from .settings import UsageError

#: Optimizer state held per parameter, in parameter-sized vectors (Adam: m and v).
_STATE_VECTORS = {"SGD": 0, "Adam": 2, "AdamW": 2}
#: Batch-sized activation arrays kept per layer width: forward outputs, pre-activations,
#: their gradients and dropout masks (a generous bound).
_ACTIVATION_COPIES = 6
#: Rows ``evaluate`` works on at a time.
EVAL_ROWS = 4096


def model_bytes(sizes: list[int], itemsize: int, optimizer: str, momentum: bool,
                batch_size: int) -> int:
    """An upper estimate of the bytes a training run of an MLP with layer ``sizes`` needs:
    parameters, their gradients and the optimizer's state, plus activations for a batch."""
    params = sum((a + 1) * b for a, b in zip(sizes, sizes[1:], strict=False))
    vectors = 2 + _STATE_VECTORS[optimizer] + int(momentum)
    rows = max(batch_size, EVAL_ROWS)
    return itemsize * (vectors * params + _ACTIVATION_COPIES * rows * sum(sizes))


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or the physical
    memory where that is unknown; ``None`` where neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(settings: dict[str, Any], sizes: list[int], optimizer_class: str) -> None:
    """Refuse (UsageError) a model whose estimated footprint exceeds the available memory."""
    itemsize = 8 if settings["dtype"] == "float64" else 4
    need = model_bytes(sizes, itemsize, optimizer_class, settings["optimizer"] == "momentum",
                       settings["batch_size"])
    have = available_memory()
    if have is not None and need > have:
        raise UsageError(f"the model {'-'.join(map(str, sizes))} needs about {_size(need)} "
                         f"(parameters, gradients, optimizer state, activations) but only "
                         f"{_size(have)} of memory is available; choose a smaller --hidden "
                         "or --batch-size")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            break
        n /= 1000
    return f"{n:.3g} {unit}"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cap_threads(requested: int) -> int:
    """``requested`` BLAS threads, capped at the usable cores with a warning on stderr."""
    cores = usable_cores()
    if requested <= cores:
        return requested
    print(f"mlp: warning: --threads {requested}: only {cores} "
          f"core{'s' if cores != 1 else ''} usable here; using {cores}", file=sys.stderr)
    return cores
