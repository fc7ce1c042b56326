"""``mlp info``: versions, backends with their devices and dtypes, whether the Numba kernels
are active, BLAS thread pools. Every line fits 100 columns; a broken optional library is one
line naming it (its import has a deadline, see :mod:`backends.imports`)."""

from __future__ import annotations

import argparse
import os
import platform
import textwrap
import warnings

import backends
from backends import kernels as numba_kernels

from .. import __version__
from .resources import usable_cores

#: The widest line ``mlp info`` prints.
WIDTH = 100


def _show(text: str, indent: int = 2, hang: int = 4) -> None:
    """``text`` wrapped to :data:`WIDTH` columns, continuation lines indented by ``hang``."""
    print(textwrap.fill(text, WIDTH, initial_indent=" " * indent,
                        subsequent_indent=" " * (indent + hang), break_long_words=True,
                        break_on_hyphens=False))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _device_name(device: str) -> str:
    """``CPU_DEVICE`` for array-api-strict's ``array_api_strict.Device('CPU_DEVICE')``."""
    return device.split("'")[1] if device.count("'") == 2 else device


def cmd_info(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_info

    _show(f"array-api-mlp {__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs ({usable_cores()} usable)", indent=0)
    try:
        import array_api_compat

        _show(f"array-api-compat {array_api_compat.__version__}", indent=0)
    except ImportError:  # pragma: no cover - a dependency
        pass
    with warnings.catch_warnings():  # a Numba that cannot load: said by the line below
        warnings.simplefilter("ignore", RuntimeWarning)
        kernels = numba_kernels.status()
    print("backends:")
    print(f"  {'name':<17} {'version':<14} {'device':<24} dtypes")
    for entry in backends.available():
        if entry["ok"]:
            print(f"  {entry['name']:<17} {_short(entry['version'], 14):<14} "
                  f"{_short(_device_name(entry['device']), 24):<24} "
                  f"{', '.join(entry['dtypes'])}")
        else:
            _show(f"{entry['name']:<17} unavailable: {entry['error']}", hang=18)
    cupies = backends.cupy_distributions()
    if len(cupies) > 1:
        _show(f"warning: {len(cupies)} CuPy distributions are installed ({', '.join(cupies)}), "
              "which overwrite each other: pip uninstall all but the one matching the CUDA "
              "version (nvidia-smi)")
    _show(f"Numba kernels (NumPy, PyTorch CPU): {kernels}", indent=0)
    print("BLAS / OpenMP thread pools:")
    pools = threadpool_info()
    if not pools:
        print("  none found")
    for pool in pools:
        name = " ".join(str(part) for part in (pool.get("internal_api"), pool.get("version")
                                               or pool.get("prefix")) if part)
        layer = pool.get("threading_layer")
        _show(f"{name}{f' ({layer})' if layer else ''}: {pool.get('num_threads')} threads")
    return 0
