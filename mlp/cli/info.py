"""``mlp info``: versions, backends with their devices and dtypes, BLAS thread pools."""

from __future__ import annotations

import argparse
import os
import platform

import backends

from .. import __version__
from .resources import usable_cores


def cmd_info(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_info

    print(f"array-api-mlp {__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs ({usable_cores()} usable)")
    try:
        import array_api_compat

        print(f"array-api-compat {array_api_compat.__version__}")
    except ImportError:  # pragma: no cover - a dependency
        pass
    print("backends:")
    for entry in backends.available():
        if entry["ok"]:
            print(f"  {entry['name']:<17} {entry['version']:<14} device {entry['device']:<40} "
                  f"dtypes {', '.join(entry['dtypes'])}")
        else:
            print(f"  {entry['name']:<17} unavailable: {entry['error']}")
    cupies = backends.cupy_distributions()
    if len(cupies) > 1:
        print(f"  warning: {len(cupies)} CuPy distributions are installed ({', '.join(cupies)}), "
              "which overwrite each other: pip uninstall all but the one matching the CUDA "
              "version (nvidia-smi)")
    print("BLAS / OpenMP thread pools:")
    pools = threadpool_info()
    if not pools:
        print("  none found")
    for pool in pools:
        print(f"  {pool.get('internal_api')} {pool.get('version')} "
              f"({pool.get('threading_layer', '')}): {pool.get('num_threads')} threads")
    return 0
