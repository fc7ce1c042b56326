"""The counter-based uniforms of dropout masks drawn on a GPU, defined once: the CUDA source
the CuPy kernel compiles and a NumPy model of it, so the masks can be tested without a GPU.

Element ``i`` (flat, C order) of a draw from the 64-bit ``seed`` is the top 24 bits of
SplitMix64's output for ``seed + (i + 1) * φ`` (φ = 0x9E3779B97F4A7C15, the golden ratio in 64
bits), times 2⁻²⁴: a float32 in [0, 1), exact, with no generator state (each element is a
function of the seed and its index alone, so one kernel draws any shape).
"""

from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB

#: CUDA C for an elementwise kernel with the index ``i`` and an input ``uint64 seed``: the
#: element's uniform ``u`` (float32).
CUDA_SOURCE = f"""
unsigned long long z = seed + (unsigned long long)(i + 1) * {GOLDEN:#x}ULL;
z = (z ^ (z >> 30)) * {MIX1:#x}ULL;
z = (z ^ (z >> 27)) * {MIX2:#x}ULL;
z = z ^ (z >> 31);
u = (float)(z >> 40) * (1.0f / 16777216.0f);
"""


def uniforms(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """What the CUDA kernel draws from ``seed`` for ``shape``, computed with NumPy (float32)."""
    n = int(np.prod(shape, dtype=np.int64))
    with np.errstate(over="ignore"):  # the arithmetic is modulo 2**64, as in C
        z = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return u.reshape(shape)
