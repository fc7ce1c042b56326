"""The backend edge: registry, errors that say what to do, host transfer, dtypes, seeded random
numbers, and the array operations (portable and in place)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import backends
from backends import Backend, BackendError, GenericOps
from backends import kernels as numba_kernels
from backends.cupy_ops import CupyOps
from backends.inplace_ops import InplaceOps
from backends.registry import INSTALL_HINT, _import
from backends.torch_ops import TorchOps


def test_available_lists_every_backend_with_ok_or_error():
    listed = {entry["name"]: entry for entry in backends.available()}
    assert set(listed) == {"numpy", "cupy", "torch", "array_api_strict", "jax"}
    assert listed["numpy"]["ok"] is True
    for name, entry in listed.items():
        if entry["ok"]:
            assert "error" not in entry
            assert set(entry["dtypes"]) <= {"float32", "float64"} and entry["dtypes"], name
            assert entry["version"], name
        else:
            assert entry["error"] and "install" in entry["error"] + entry["hint"], name


def test_unknown_backend_names_the_choices():
    with pytest.raises(BackendError, match="unknown backend 'tensorflow'.*numpy.*torch"):
        backends.get("tensorflow")


def test_missing_library_says_what_to_install():
    with pytest.raises(BackendError, match=r"not installed.*pip install") as info:
        _import("a_library_that_is_not_there", "cupy")
    assert INSTALL_HINT["cupy"] in str(info.value)
    assert info.value.__cause__ is None  # one clear error, not a chained traceback


def test_install_hints_work_as_printed():
    """The CuPy extras name the CUDA version; a CPU user gets PyTorch's CPU-only wheel index."""
    assert '".[cuda12]"' in INSTALL_HINT["cupy"]
    assert '".[cuda13]"' in INSTALL_HINT["cupy"]
    assert "--index-url https://download.pytorch.org/whl/cpu" in INSTALL_HINT["torch"]
    extras = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'cuda12 = ["cupy-cuda12x' in extras and 'cuda13 = ["cupy-cuda13x' in extras


def test_get_caches_and_passes_backends_through(numpy_backend):
    assert backends.get("numpy") is numpy_backend
    assert backends.get(numpy_backend) is numpy_backend
    assert backends.get("numpy", "cpu") is backends.get("numpy", "cpu")


def test_bad_devices_are_clear_errors():
    with pytest.raises(BackendError, match="cpu"):
        backends.get("numpy", "cuda:0")
    pytest.importorskip("array_api_strict")
    with pytest.raises(BackendError, match="no device 'gpu9'.*no_float64"):
        backends.get("array_api_strict", "gpu9")


def test_torch_without_cuda_is_a_clear_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so torch on 'cuda' is not an error here")
    with pytest.raises(BackendError, match="CUDA"):
        backends.get("torch", "cuda")


def test_device_without_float64():
    pytest.importorskip("array_api_strict")
    b = backends.get("array_api_strict", "no_float64")
    assert b.dtypes == ("float32",)
    with pytest.raises(BackendError, match="has no float64.*float32"):
        b.dtype("float64")
    # Host float64 data is cast before it reaches the device.
    x = b.asarray(np.array([0.1, 0.2]), "float32")
    assert x.dtype == b.xp.float32
    np.testing.assert_array_equal(b.to_numpy(x), np.array([0.1, 0.2], dtype=np.float32))
    w = b.normal(b.rng(0), (3, 2), 1.0, "float32")
    assert w.dtype == b.xp.float32 and tuple(w.shape) == (3, 2)


def test_dtypes(backend):
    for name in backend.dtypes:
        dtype = backend.dtype(name)
        assert backend.dtype(dtype) is dtype
        assert backend.dtype_name(dtype) == name
        assert backend.zeros((2, 3), name).dtype == dtype
    with pytest.raises(BackendError, match="float16.*float32"):
        backend.dtype("float16")
    with pytest.raises(BackendError):
        backend.dtype_name(backend.xp.int64)


def test_asarray_round_trip(backend):
    host = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    dtype = backend.dtypes[-1]
    x = backend.asarray(host, dtype)
    assert x.dtype == backend.dtype(dtype) and tuple(x.shape) == (3, 4)
    np.testing.assert_array_equal(backend.to_numpy(x), host.astype(dtype))
    # Non-contiguous host arrays, nested lists and integer labels.
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray(host.T, dtype)),
                                  host.T.astype(dtype))
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray([[1.5, 2.5]], "float32")),
                                  [[1.5, 2.5]])
    labels = backend.asarray(np.array([3, 1, 2]))
    np.testing.assert_array_equal(backend.to_numpy(labels), [3, 1, 2])
    f32 = backend.asarray(host, "float32")
    assert f32.dtype == backend.dtype("float32")
    np.testing.assert_array_equal(backend.to_numpy(f32), host.astype(np.float32))
    backend.synchronize()


def test_random_numbers_are_the_same_on_every_backend(backend, numpy_backend):
    dtype = backend.dtypes[-1]
    ref_normal = numpy_backend.normal(numpy_backend.rng(5), (4, 3), 0.5, dtype)
    np.testing.assert_array_equal(backend.to_numpy(backend.normal(backend.rng(5), (4, 3), 0.5,
                                                                  dtype)), ref_normal)
    # The host generator's float64 draws, scaled then cast: exactly numpy's numbers.
    expected = (np.random.default_rng(5).standard_normal((4, 3)) * 0.5).astype(dtype)
    np.testing.assert_array_equal(ref_normal, expected)
    assert np.std(numpy_backend.to_numpy(
        numpy_backend.normal(numpy_backend.rng(0), (20000,), 0.5, "float64"))) == pytest.approx(
            0.5, rel=0.02)
    perm = backend.permutation(backend.rng(1), 10)
    np.testing.assert_array_equal(np.sort(perm), np.arange(10))
    np.testing.assert_array_equal(perm, np.random.default_rng(1).permutation(10))


# --- operations ------------------------------------------------------------------------------


def _op_inputs(backend, dtype):
    r = np.random.default_rng(0)
    a = r.normal(size=(5, 4))
    a[0, 0] = 0.0  # exactly at the ReLU kink: the gradient there is 0
    return {
        "a": a, "w": r.normal(size=(4, 3)), "bias": r.normal(size=3), "g": r.normal(size=(5, 4)),
        "idx": np.array([4, 0, 2, 2]), "pixels": r.integers(0, 256, size=(5, 4), dtype=np.uint8),
    }


def _expected_ops(h):
    return {
        "matmul": h["a"] @ h["w"],
        "add": h["a"] @ h["w"] + h["bias"],
        "relu": np.maximum(h["a"], 0.0),
        "relu_grad": np.where(np.maximum(h["a"], 0.0) > 0, h["g"], 0.0),
        "sum_rows": h["g"].sum(axis=0),
        "take_rows": h["a"][h["idx"]],
        "to_float": h["pixels"] / 255.0,
    }


def _run_ops(ops, b, h, dtype, out=None):
    out = out or {}
    a, w, g = (b.asarray(h[k], dtype) for k in ("a", "w", "g"))
    y = ops.relu(a, out=out.get("relu"))
    return {
        "matmul": ops.matmul(a, w, out=out.get("matmul")),
        "add": ops.add(a @ w, b.asarray(h["bias"], dtype), out=out.get("add")),
        "relu": y,
        "relu_grad": ops.relu_grad(g, y, out=out.get("relu_grad")),
        "sum_rows": ops.sum_rows(g, out=out.get("sum_rows")),
        "take_rows": ops.take_rows(a, b.asarray(h["idx"]), out=out.get("take_rows")),
        "to_float": ops.to_float(b.asarray(h["pixels"]), 1 / 255.0, b.dtype(dtype),
                                 out=out.get("to_float")),
    }


def test_backend_ops_values(backend, assert_matches_reference):
    dtype = backend.dtypes[-1]
    h = _op_inputs(backend, dtype)
    expected = _expected_ops(h)
    for name, got in _run_ops(backend.ops, backend, h, dtype).items():
        assert got.dtype == backend.dtype(dtype), name
        assert_matches_reference(np.asarray(backend.to_numpy(got), dtype=np.float64),
                                 expected[name], dtype, name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inplace_ops_equal_generic_ops_and_write_into_out(dtype, numpy_backend):
    xp = numpy_backend.xp
    fast, generic = InplaceOps(xp, np), GenericOps(xp)
    assert fast.inplace and not generic.inplace
    assert generic.buffer((2, 2), dtype) is None
    h = _op_inputs(numpy_backend, dtype)
    reference = _run_ops(generic, numpy_backend, h, dtype)
    allocated = _run_ops(fast, numpy_backend, h, dtype)
    out = {name: fast.buffer(tuple(ref.shape), np.dtype(dtype)) for name, ref in reference.items()}
    written = _run_ops(fast, numpy_backend, h, dtype, out=out)
    for name, ref in reference.items():
        np.testing.assert_array_equal(allocated[name], ref, err_msg=name)
        np.testing.assert_array_equal(written[name], ref, err_msg=name)
        assert written[name] is out[name], f"{name} did not write into out="


def test_custom_backend_object_is_usable():
    """A ``Backend`` assembled by hand (as a plugin would) works through ``backends.get``."""
    from array_api_compat import numpy as xp

    b = Backend("mine", xp, "cpu", GenericOps(xp, "cpu"), dtypes=("float64",))
    assert backends.get(b) is b
    assert repr(b) == "Backend('mine', device='cpu')"
    with pytest.raises(BackendError, match="float32"):
        b.dtype("float32")
    np.testing.assert_array_equal(b.to_numpy(b.zeros((2,), "float64")), [0.0, 0.0])


def test_host_copies_are_the_callers(backend):
    x = backend.asarray(np.arange(6, dtype=np.float64).reshape(2, 3) / 4, backend.dtypes[-1])
    copy = backend.to_host_copy(x)
    assert isinstance(copy, np.ndarray) and copy.flags.writeable and copy.flags.c_contiguous
    copy[...] = -1.0
    assert float(backend.to_numpy(x)[0, 1]) == 0.25  # the device array did not change


def test_asarray_copy_gives_a_fresh_writable_array(numpy_backend):
    host = np.arange(6, dtype=np.float32).reshape(3, 2).T
    host.flags.writeable = False
    x = numpy_backend.asarray(host, "float32", copy=True)
    assert x.flags.writeable and x.flags.c_contiguous and not np.shares_memory(x, host)
    np.testing.assert_array_equal(x, host)
    same = np.ones(3, dtype=np.float32)
    assert numpy_backend.asarray(same, "float32") is same  # no copy unless asked


def test_with_ops_is_a_new_backend_on_the_same_device(backend):
    generic = GenericOps(backend.xp, backend.device)
    portable = backend.with_ops(generic)
    assert portable is not backend and portable.ops is generic and backend.ops is not generic
    for attribute in ("name", "xp", "device", "dtypes", "version", "is_host"):
        assert getattr(portable, attribute) == getattr(backend, attribute), attribute
    x = portable.asarray([[1.0, 2.0]], backend.dtypes[-1])
    np.testing.assert_array_equal(portable.to_numpy(x), [[1.0, 2.0]])


def test_is_host_says_where_arrays_live(backend):
    assert backend.is_host == (backend.name != "cupy")


def test_set_threads_limits_the_blas_pools(numpy_backend):
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits():  # restores the limits afterwards
        numpy_backend.set_threads(1)
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())


def test_set_threads_reaches_torch():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        backends.get("torch").set_threads(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


OVERRIDING = [InplaceOps, CupyOps, TorchOps]


@pytest.mark.parametrize("cls", OVERRIDING, ids=lambda c: c.__name__)
def test_every_override_keeps_the_generic_signature(cls):
    """Thinc's ops-consistency check: a fast path is a drop-in for the portable method, with
    the same parameters, defaults and annotations (so callers need not know which they got)."""
    import inspect

    overrides = [name for name, member in vars(cls).items()
                 if callable(member) and not name.startswith("_") and hasattr(GenericOps, name)]
    assert overrides, f"{cls.__name__} overrides nothing"
    for name in overrides:
        mine, generic = inspect.signature(getattr(cls, name)), inspect.signature(
            getattr(GenericOps, name))
        assert mine == generic, f"{cls.__name__}.{name}{mine} != GenericOps.{name}{generic}"
        assert all(p.annotation is not inspect.Parameter.empty
                   for p in mine.parameters.values() if p.name != "self"), name
        assert mine.return_annotation is not inspect.Signature.empty, name


# --- the Numba kernels' cache ------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent

#: One Adam step of a small model on the NumPy backend (compiling the Numba loops if present).
TRAIN_STEP = """
import numpy as np, mlp
from backends import kernels
model = mlp.MLP([6, 5, 3], seed=0)
x = np.random.default_rng(0).random((8, 6)).astype(np.float32)
loss = model.train_step(x, np.arange(8) % 3)
assert np.isfinite(float(loss)), loss
print("kernels", model.backend.ops.kernels is not None, "cache", kernels.cache_dir())
"""


def _numba_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")} if folder.exists() \
        else set()


def _env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(changes)
    return env


def test_kernels_run_uncached_when_no_cache_folder_is_writable(tmp_path):
    pytest.importorskip("numba", reason="the Numba kernels need numba", exc_type=ImportError)
    unwritable = "/dev/null/nowhere"  # below a file: no process, root included, can create it
    before = _numba_files(ROOT / "backends")
    result = subprocess.run([sys.executable, "-c", TRAIN_STEP], capture_output=True, text=True,
                            env=_env(HOME=unwritable, XDG_CACHE_HOME=unwritable), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["kernels", "True", "cache", "None"]
    assert _numba_files(ROOT / "backends") == before  # nothing beside the sources


def test_kernels_cache_into_the_user_cache_folder(tmp_path):
    pytest.importorskip("numba", reason="the Numba kernels need numba", exc_type=ImportError)
    before = _numba_files(ROOT / "backends")
    result = subprocess.run([sys.executable, "-c", TRAIN_STEP], capture_output=True, text=True,
                            env=_env(XDG_CACHE_HOME=str(tmp_path / "cache")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cached = _numba_files(tmp_path / "cache")
    assert cached and all("array-api-mlp" in p.parts for p in cached), cached
    assert _numba_files(ROOT / "backends") == before


def test_install_train_then_reinstall_editable_keeps_working(tmp_path):
    """Install the package (not editable), train a step, reinstall it editable, run ``mlp
    info``: the first install's Numba kernel cache must not shadow the editable sources."""
    pytest.importorskip("numba", reason="the Numba kernels need numba", exc_type=ImportError)
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".ci-venv", ".nox", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache", ".hypothesis", ".benchmarks", ".ruff_cache", "runs"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies come from this environment; the package itself is installed anew.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = _env(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"))

    def pip_install(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                        "--no-deps", "--no-build-isolation", "--no-index", *args],
                       check=True, capture_output=True, env=env, cwd=tmp_path)

    pip_install(str(src))
    step = subprocess.run([str(python), "-c", TRAIN_STEP], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert step.returncode == 0, step.stderr
    assert "kernels True" in step.stdout
    assert not _numba_files(site / "backends"), "the kernel cache went into site-packages"

    pip_install("-e", str(src))
    info = subprocess.run([str(venv / "bin" / "mlp"), "info"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "numpy" in info.stdout
    where = subprocess.run([str(python), "-c", "import backends; print(backends.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert Path(where.stdout.strip()).is_relative_to(src)


def _file_size_limit(limit: int) -> Callable[[], None]:
    """For ``preexec_fn``: no file of the process grows past ``limit`` bytes (``EFBIG``, as a
    full disk or a quota would refuse the write), and the signal that would kill it ignored."""
    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_failing_cache_write_compiles_the_kernels_uncached_with_one_warning(tmp_path):
    pytest.importorskip("numba", reason="the Numba kernels need numba", exc_type=ImportError)
    cache = tmp_path / "numba-cache"
    result = subprocess.run([sys.executable, "-c", TRAIN_STEP], capture_output=True, text=True,
                            env=_env(NUMBA_CACHE_DIR=str(cache)), cwd=tmp_path, timeout=300,
                            preexec_fn=_file_size_limit(100))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["kernels", "True", "cache", str(cache)]
    assert "Traceback" not in result.stderr
    warned = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert len(warned) == 1, result.stderr
    assert f"{cache}: the Numba kernels' cache cannot be used (File too large)" in warned[0]
    assert not _numba_files(cache)  # nothing half-written left behind


def _broken_packages(folder: Path, **behaviour: str) -> Path:
    """Packages named by ``behaviour``'s keys in ``folder`` (for PYTHONPATH), each ``"raise"``
    (its import raises) or ``"hang"`` (its import never finishes)."""
    code = {"raise": "raise RuntimeError('a broken build')\n",
            "exit": "raise SystemExit('a broken build')\n",
            "hang": "import time\nwhile True:\n    time.sleep(3600)\n"}
    for name, how in behaviour.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(code[how])
    return folder


def _first_on_path(folder: Path) -> str:
    """``PYTHONPATH`` with ``folder`` first."""
    return os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))


#: Run the rest with a short deadline on optional imports (the broken ones never finish).
SHORT_DEADLINE = "import backends.imports; backends.imports.TIMEOUT = 1.0\n"


@pytest.mark.parametrize("how", ["raise", "hang"])
def test_a_broken_numba_is_one_warning_and_the_portable_update(tmp_path, how):
    site = _broken_packages(tmp_path / "site", numba=how)
    result = subprocess.run([sys.executable, "-c", SHORT_DEADLINE + TRAIN_STEP],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env=_env(PYTHONPATH=_first_on_path(site),
                                     NUMBA_CACHE_DIR=str(tmp_path / "c")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["kernels", "False"]
    assert "Traceback" not in result.stderr
    warned = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert len(warned) == 1, result.stderr
    expected = ("numba is installed but fails to import (RuntimeError: a broken build)"
                if how == "raise" else "importing numba did not finish within 1 s")
    assert f"RuntimeWarning: the Numba kernels are off: {expected}" in warned[0]


def test_mlp_train_on_numpy_runs_with_a_numba_that_never_loads(tmp_path):
    site = _broken_packages(tmp_path / "site", numba="hang")
    main = "import sys; from mlp.cli.app import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", SHORT_DEADLINE + main, "train", "--hidden",
                             "16", "--batch-size", "2000", "--epochs", "1", "--quiet"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env=_env(PYTHONPATH=_first_on_path(site),
                                     MLP_CACHE_DIR=str(tmp_path / "c")))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "the Numba kernels are off: importing numba did not finish" in result.stderr


def test_mlp_info_names_each_broken_library_on_one_line_and_lists_the_rest(tmp_path):
    site = _broken_packages(tmp_path / "site", torch="raise", jax="hang", cupy="exit",
                            array_api_strict="raise", numba="hang")
    main = "import sys; from mlp.cli.app import main; sys.exit(main(['info']))"
    result = subprocess.run([sys.executable, "-c", SHORT_DEADLINE + main], capture_output=True,
                            text=True, cwd=tmp_path, env=_env(PYTHONPATH=_first_on_path(site)),
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 100, result.stdout
    rows: dict[str, str] = {}  # a backend's entry, its wrapped lines joined
    for line in lines[lines.index("backends:") + 1:]:
        if not line.startswith("  "):
            break
        if line[2] != " ":
            name = line.split()[0]
            rows[name] = line
        else:
            rows[name] += " " + line.strip()
    assert np.__version__ in rows["numpy"] and "float64" in rows["numpy"]
    for name in ("torch", "cupy", "array_api_strict"):
        assert f"unavailable: backend {name!r} cannot be used: {name} is installed but fails " \
               "to import" in rows[name], result.stdout
    assert "importing jax did not finish within 1 s" in rows["jax"]
    at = next(i for i, line in enumerate(lines) if line.startswith("Numba kernels"))
    kernels = " ".join(line.strip() for line in lines[at:at + 2])
    assert "off, the portable update (importing numba did not finish within 1 s)" in kernels


def test_mlp_info_fits_100_columns_and_says_whether_the_kernels_are_active(capsys):
    from mlp.cli.app import main

    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 100, "\n".join(lines)
    assert not any("None" in line for line in lines), "\n".join(lines)
    kernels = [line for line in lines if line.startswith("Numba kernels (NumPy, PyTorch CPU): ")]
    assert len(kernels) == 1
    assert kernels[0].split(": ", 1)[1].startswith("on, Numba " if numba_kernels.available()
                                                   else "off, the portable update")


def test_torch_cuda_without_a_gpu_says_no_cuda_device_not_install_a_cuda_build(monkeypatch):
    torch = pytest.importorskip("torch", exc_type=ImportError)
    from backends.registry import _torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    with pytest.raises(BackendError, match="backend 'torch' found no CUDA device") as caught:
        _torch("cuda")
    assert "install a CUDA build" not in str(caught.value)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(BackendError, match="no CUDA device.*CPU-only build.*install a CUDA build"):
        _torch("cuda")


def test_the_backend_of_an_array_is_its_library_on_its_device() -> None:
    strict = pytest.importorskip("array_api_strict")
    assert backends.for_array(np.zeros(3)).name == "numpy"
    on_device1 = strict.asarray([1.0, 2.0], device=strict.Device("device1"))
    found = backends.for_array(on_device1)
    assert (found.name, found.device) == ("array_api_strict", strict.Device("device1"))
    if int(np.__version__.split(".")[0]) >= 2:  # array-api-strict moves arrays with NumPy 2
        np.testing.assert_array_equal(found.to_numpy(on_device1), [1.0, 2.0])
    with pytest.raises(backends.BackendError, match="list is not an array of a known library"):
        backends.for_array([1.0, 2.0])
