"""Helpers shared by the command-line tests: MNIST as raw files and a sealed environment."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from mlp import data


def idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 IDX file's bytes (magic 0x08, then the dimensions, then the data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return head + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_real_mnist_raw(folder: Path) -> Path:
    """The MNIST files shipped with the package, decompressed into ``folder`` (raw IDX files,
    which the loader verifies by the SHA-256 of their content like any other copy). Written
    once per test run and reused."""
    done = folder / "complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shipped = data.embedded_path("mnist")
    assert shipped is not None
    for name in data.FILES.values():
        (folder / name).write_bytes(gzip.decompress((shipped / f"{name}.gz").read_bytes()))
    done.write_text("ok")
    return folder


def clean_env(tmp: Path, data_dir: str | None = None) -> dict[str, str]:
    """The environment for a subprocess: no data folder unless given, an empty cache and a
    download URL that cannot work, so nothing is ever fetched from the network."""
    env = dict(os.environ)
    env.pop("MLP_DATA_DIR", None)
    if data_dir is not None:
        env["MLP_DATA_DIR"] = data_dir
    env["MLP_CACHE_DIR"] = str(tmp / "mlp-cache")
    env["MLP_DATA_URL"] = "file:///nonexistent/{name}/"
    return env
