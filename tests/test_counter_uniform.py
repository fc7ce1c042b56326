"""The counter-based uniforms of GPU dropout masks: the NumPy model against SplitMix64
written with Python integers, its distribution, and on a GPU against CuPy's kernel, bit for
bit."""

from __future__ import annotations

import numpy as np
import pytest

from backends.counter_uniform import uniforms

MASK = (1 << 64) - 1


def splitmix(seed: int, i: int) -> float:
    """Element ``i``'s uniform, with Python's integers (a second, independent writing)."""
    z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return (z >> 40) / 2**24


@pytest.mark.parametrize("seed", [0, 1, 2**63 - 1, 0x0123456789ABCDEF])
def test_the_numpy_model_is_splitmix64(seed):
    u = uniforms(seed, (3, 7))
    assert u.dtype == np.float32 and u.shape == (3, 7)
    assert u.reshape(-1).tolist() == [splitmix(seed, i) for i in range(21)]


def test_the_uniforms_are_uniform_and_the_masks_keep_their_share():
    u = uniforms(12345, (1000, 1000))
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(float(u.mean()) - 0.5) < 1e-3
    for rate in (0.1, 0.5, 0.9):
        assert abs(float(np.mean(u >= rate)) - (1 - rate)) < 2e-3
    assert not np.array_equal(uniforms(1, (100,)), uniforms(2, (100,)))


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(128, 512), (7, 3), (1,)])
def test_cupys_kernel_draws_what_the_model_says(shape, get_backend):
    backend = get_backend("cupy")
    seed = int(np.random.default_rng(5).integers(0, 2**63))  # what device_uniform takes
    drawn = backend.device_uniform(np.random.default_rng(5), shape)
    np.testing.assert_array_equal(backend.to_numpy(drawn), uniforms(seed, shape))
