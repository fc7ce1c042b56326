"""The CI's own switches and scripts: required backends never skip silently, and the GPU check
runs its CPU-side logic to a clear "no CUDA device" exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pytest(tmp_path: Path, env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """pytest in a subprocess with a broken ``torch`` first on the path."""
    broken = tmp_path / "broken"
    (broken / "torch").mkdir(parents=True)
    (broken / "torch" / "__init__.py").write_text("raise ImportError('a broken torch install')\n")
    env = {**os.environ, "PYTHONPATH": str(broken), **env_extra}
    env.pop("MLP_REQUIRE_BACKENDS", None)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_broken_optional_backend_only_skips_when_not_required(tmp_path: Path) -> None:
    run = _pytest(tmp_path, {}, "tests/test_losses.py", "-k", "torch", "-rs")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skipped" in run.stdout and "backend 'torch' needs" in run.stdout


def test_a_required_backend_that_cannot_import_fails_the_run(tmp_path: Path) -> None:
    run = _pytest(tmp_path, {"MLP_REQUIRE_BACKENDS": "torch"}, "tests/test_losses.py",
                  "-k", "torch")
    assert run.returncode != 0
    assert "MLP_REQUIRE_BACKENDS requires 'torch'" in run.stdout + run.stderr
    assert "a broken torch install" in run.stdout + run.stderr


def test_an_unknown_required_backend_is_a_usage_error(tmp_path: Path) -> None:
    run = _pytest(tmp_path, {"MLP_REQUIRE_BACKENDS": "tensorflow"}, "tests/test_losses.py")
    assert run.returncode != 0
    assert "unknown backend(s) ['tensorflow']" in run.stdout + run.stderr


def _gpu_check(cwd: Path, *args: str, env_extra: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, **(env_extra or {})}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_gpu_check_without_a_gpu_exits_3_and_writes_under_a_relative_out(tmp_path: Path) -> None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            pytest.skip("this machine has a CUDA device: the check would run the GPU steps")
    except Exception:  # noqa: BLE001 - no CuPy, or no driver: the case under test
        pass
    run = _gpu_check(tmp_path, "out")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "no CUDA device" in run.stdout
    out = tmp_path / "out"
    assert "backends:" in (out / "info.log").read_text()
    assert "no CUDA device" in (out / "summary.txt").read_text()


def test_gpu_check_installs_into_a_venv_that_sees_the_outer_environment(tmp_path: Path) -> None:
    """With a wheelhouse the check installs the project into OUT/venv. Run from a virtual
    environment (as on the GPU machines, whose python3 is one), the new venv must see that
    environment's packages: here the wheelhouse is empty, so the install only succeeds if
    NumPy, safetensors, ... are found through it. GPU_CHECK_INSTALL_ONLY stops after the
    install and ``mlp info``, so this runs on any machine."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the test suite is not running in a virtual environment")
    (tmp_path / "wheels").mkdir()
    run = _gpu_check(tmp_path, "out", "wheels", "--quick",
                     env_extra={"GPU_CHECK_INSTALL_ONLY": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "install: exit 0" in (tmp_path / "out" / "summary.txt").read_text()
    assert "backends:" in (tmp_path / "out" / "info.log").read_text()


def test_gpu_check_without_a_gpu_looks_for_one_before_installing_anything(tmp_path: Path
                                                                          ) -> None:
    """A wheelhouse built for another Python cannot be installed here; without a GPU the check
    must say so by its status 3, not fail in the install step."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            pytest.skip("this machine has a CUDA device: the check would run the GPU steps")
    except Exception:  # noqa: BLE001 - no CuPy, or no driver: the case under test
        pass
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "elsewhere-1.0-cp39-cp39-manylinux_2_17_x86_64.whl").write_bytes(b"not for here")
    run = _gpu_check(tmp_path, "out", "wheels")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "no CUDA device" in run.stdout
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "wheels:" not in summary and "install:" not in summary, summary
    assert not (tmp_path / "out" / "venv").exists()


def _two_cupy_installs(tmp_path: Path) -> Path:
    """A folder for PYTHONPATH in which two CuPy distributions appear installed."""
    site = tmp_path / "site"
    for name in ("cupy-cuda12x", "cupy-cuda13x"):
        info = site / f"{name.replace('-', '_')}-14.0.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 14.0.0\n")
    return site


def test_gpu_check_names_duplicate_cupy_installs(tmp_path: Path) -> None:
    site = _two_cupy_installs(tmp_path)
    run = _gpu_check(tmp_path, "out", env_extra={"PYTHONPATH": str(site)})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "several CuPy distributions are installed (cupy-cuda12x, cupy-cuda13x)" in run.stdout


def test_mlp_info_names_duplicate_cupy_installs(tmp_path: Path) -> None:
    site = _two_cupy_installs(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-m", "mlp", "info"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert ("warning: 2 CuPy distributions are installed (cupy-cuda12x, cupy-cuda13x)"
            in run.stdout)


def test_a_required_backend_paired_with_a_missing_optional_one_still_skips(tmp_path: Path
                                                                           ) -> None:
    """Cross-backend tests of a required backend skip, not fail, when the *other* backend of
    the pair is the one missing (here torch is required and the paired library is broken)."""
    pytest.importorskip("torch", reason="this case needs torch installed")
    broken = tmp_path / "broken-strict" / "array_api_strict"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('a broken install')\n")
    env = {**os.environ, "PYTHONPATH": str(broken.parent), "MLP_REQUIRE_BACKENDS": "torch"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_checkpoint.py", "-k", "cross_backend and torch", "-rs"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skipped" in run.stdout and "backend 'array_api_strict'" in run.stdout
    assert "a broken install" in run.stdout
