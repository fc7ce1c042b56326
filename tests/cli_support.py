"""Helpers shared by the command-line tests: a small fake dataset and a sealed environment."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 IDX file's bytes (magic 0x08, then the dimensions, then the data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return head + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_fake_fashion(folder: Path) -> Path:
    """Fashion-MNIST-shaped raw IDX files with a learnable pattern (class c brightens rows
    2c+4 and 2c+5 of a noisy image) and 10 % of the labels replaced at random, so accuracy
    stays below 100 %. Written once per test run and reused."""
    done = folder / "complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        classes = rng.integers(0, 10, n)
        images = rng.integers(0, 64, (n, 28, 28)).astype(np.uint8)
        for c in range(10):
            images[classes == c, 2 * c + 4 : 2 * c + 6, :] += 150
        noisy = rng.random(n) < 0.1
        classes[noisy] = rng.integers(0, 10, int(noisy.sum()))
        labels = classes.astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
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
