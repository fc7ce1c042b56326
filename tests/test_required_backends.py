"""``MLP_REQUIRE_BACKENDS``: which skips the suite turns into failures, and the requirement of a
backend on a device."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import _requirement, requires_gpu, skip_is_failure

ROOT = Path(__file__).resolve().parents[1]


def test_entries_name_a_backend_and_optionally_its_device() -> None:
    assert _requirement("torch") == ("torch", None)
    assert _requirement(" torch:cuda ") == ("torch", "cuda")
    assert requires_gpu((("cupy", None),)) and requires_gpu((("torch", "cuda:0"),))
    assert requires_gpu((("jax", "gpu"),))
    assert not requires_gpu((("torch", None), ("numpy", "cpu"), ("array_api_strict", None)))


@pytest.mark.parametrize(("params", "gpu", "reason", "entries", "fails"), [
    ({"backend": "torch"}, False, "backend 'torch' needs", (("torch", None),), True),
    ({"backend": "torch"}, False, "backend 'torch' needs", (("jax", None),), False),
    # A cross-backend pair whose other, optional backend is the missing one stays a skip.
    ({"a": "torch", "b": "jax"}, False, "backend 'jax' needs", (("torch", None),), False),
    # gpu tests not parametrised by a backend: a failure wherever a GPU is required.
    ({}, True, "no CUDA device", (("cupy", None),), True),
    ({}, True, "no CUDA device", (("torch", "cuda"),), True),
    ({}, True, "no CUDA device", (("torch", None),), False),
    ({}, False, "needs hypothesis", (("cupy", None),), False),
])
def test_which_skips_are_failures(params, gpu, reason, entries, fails) -> None:
    assert (skip_is_failure(params, gpu, reason, entries) is not None) is fails


def _pytest(tmp_path: Path, required: str, test: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_case.py").write_text(test)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path)  # the suite's rules, on one test
    env = {**os.environ, "MLP_REQUIRE_BACKENDS": required}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", "test_case.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_required_device_the_backend_lacks_stops_the_run(tmp_path: Path) -> None:
    run = _pytest(tmp_path, "numpy:quantum", "def test_nothing():\n    pass\n")
    assert run.returncode != 0
    assert "MLP_REQUIRE_BACKENDS requires 'numpy' on 'quantum'" in run.stdout + run.stderr


def test_a_skipped_backend_test_fails_where_its_backend_is_required(tmp_path: Path) -> None:
    test = ("import pytest\n"
            "@pytest.mark.parametrize('name', ['numpy', 'array_api_strict'])\n"
            "def test_case(name):\n"
            "    pytest.skip(f'backend {name!r} is unavailable here')\n")
    run = _pytest(tmp_path, "array_api_strict,numpy:cpu", test)
    assert run.returncode != 0
    assert "2 failed" in run.stdout, run.stdout
    assert "backend 'array_api_strict' is required" in run.stdout
