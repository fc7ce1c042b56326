"""Shared fixtures: one backend per array library, and a hypothesis profile for small machines.

Every backend entry imports its library or skips with the reason; CuPy carries the ``gpu``
marker so CPU CI deselects it with ``-m "not gpu"``. Backends are session-scoped (importing
torch is slow, and ``backends.get`` caches them anyway).

Numba caches its kernels in a fresh folder per test run (``$NUMBA_CACHE_DIR``, inherited by
the subprocesses tests start).

JAX runs in its 64-bit mode here (``JAX_ENABLE_X64=1`` unless the environment says otherwise),
so its float64 results are checked like every other CPU backend's.

``MLP_REQUIRE_BACKENDS`` (comma-separated names, each optionally with a device: ``torch``,
``cupy,torch:cuda``) turns "skip" into "fail" for those backends: the run stops at once when one
of them cannot be created on its device, and a test parametrised with one of them that skips
anyway is reported as a failure. When a required entry is a GPU (``cupy``, or a device naming
``cuda`` or ``gpu``), every ``gpu``-marked test that skips fails too, parametrised or not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

# Before anything imports JAX: its 64-bit mode is read once, at import.
os.environ.setdefault("JAX_ENABLE_X64", "1")
# Numba's kernel cache: a fresh folder for this run (and the processes it starts), so no test
# depends on what an earlier run left in the per-user cache.
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="mlp-test-numba-")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import backends
from backends import Backend, BackendError

settings.register_profile(
    "small-machine",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "small-machine"))

#: Import name of the library behind each backend.
LIBRARIES = {
    "numpy": "numpy",
    "array_api_strict": "array_api_strict",
    "torch": "torch",
    "cupy": "cupy",
    "jax": "jax",
}
CPU_BACKENDS = ("numpy", "array_api_strict", "torch", "jax")
#: array-api-strict's restricted devices: one without float64 (nor complex128), and a second
#: device besides the default one, so that the core is proven never to assume float64 or a
#: default device (``name:device``, as MLP_REQUIRE_BACKENDS spells them).
STRICT_DEVICES = ("array_api_strict:no_float64", "array_api_strict:device1")


def _requirement(entry: str) -> tuple[str, str | None]:
    name, _, device = entry.strip().partition(":")
    return name, device or None


REQUIRED_ENTRIES = tuple(_requirement(e) for e in os.environ.get("MLP_REQUIRE_BACKENDS", "")
                         .split(",") if e.strip())
REQUIRED = tuple(name for name, _ in REQUIRED_ENTRIES)


def requires_gpu(entries: tuple[tuple[str, str | None], ...]) -> bool:
    """Whether the required backends include a GPU: CuPy, or a device that names one."""
    return any(name == "cupy" or (device or "").startswith(("cuda", "gpu"))
               for name, device in entries)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["NUMBA_CACHE_DIR"], ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    unknown = [n for n in REQUIRED if n not in LIBRARIES]
    if unknown:
        raise pytest.UsageError(f"MLP_REQUIRE_BACKENDS names unknown backend(s) {unknown}: "
                                f"choose from {', '.join(LIBRARIES)}")
    for name, device in REQUIRED_ENTRIES:
        try:
            backends.get(name, device)
        except BackendError as exc:
            on = f" on {device!r}" if device else ""
            raise pytest.UsageError(f"MLP_REQUIRE_BACKENDS requires {name!r}{on}: {exc}"
                                    ) from None


def skip_is_failure(params: dict[str, object], gpu_marked: bool, reason: str,
                    entries: tuple[tuple[str, str | None], ...]) -> str | None:
    """Why a skip with ``reason`` of a test with these parameters is a failure under the
    required ``entries`` (``None``: it stays a skip)."""
    required = [name for name, _ in entries]
    values = [v.partition(":")[0] for v in params.values()
              if isinstance(v, str) and v.partition(":")[0] in LIBRARIES]
    named = [v for v in values if v in required]
    # A skip for another, optional backend of the same test (a cross-backend pair) stays one.
    other = any(f"'{v}'" in reason for v in values if v not in required)
    if named and not other:
        return f"backend {named[0]!r} is required (MLP_REQUIRE_BACKENDS) but the test skipped"
    if gpu_marked and requires_gpu(entries):
        return "a GPU backend is required (MLP_REQUIRE_BACKENDS) but this gpu test skipped"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """A skip that :func:`skip_is_failure` names is reported as a failure."""
    outcome = yield
    report = outcome.get_result()
    if not (REQUIRED_ENTRIES and report.skipped) or hasattr(report, "wasxfail"):
        return
    callspec = getattr(item, "callspec", None)
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    why = skip_is_failure(callspec.params if callspec is not None else {},
                          item.get_closest_marker("gpu") is not None, reason, REQUIRED_ENTRIES)
    if why is not None:
        report.outcome = "failed"
        report.longrepr = f"{why}: {reason}"


def load_backend(name: str, device: object = None) -> Backend:
    """``backends.get(name, device)``, or skip the test saying why it cannot run here;
    ``name`` may be ``name:device``."""
    if device is None and ":" in name:
        name, _, device = name.partition(":")
    pytest.importorskip(
        LIBRARIES[name],
        reason=f"backend {name!r} needs the {LIBRARIES[name]!r} package",
        exc_type=ImportError,
    )
    try:
        b = backends.get(name, device)
    except BackendError as exc:
        pytest.skip(f"backend {name!r} is unavailable here: {exc}")
    if name == "torch":
        import torch

        # The test arrays are tiny: torch's CPU thread pool only adds synchronisation, and on a
        # busy two-core machine a 90x16 matmul then stalls for tens of milliseconds.
        torch.set_num_threads(1)
    return b


def refuses_dtype(b: Backend, dtype: str) -> bool:
    """Whether backend ``b`` lacks ``dtype`` (array-api-strict's ``no_float64`` device, JAX
    without x64), once it has refused it with its clear error; a test then checks nothing
    else."""
    if dtype in b.dtypes:
        return False
    with pytest.raises(BackendError, match=f"has no {dtype}"):
        b.dtype(dtype)
    return True


@pytest.fixture(scope="session")
def lacks_dtype() -> Callable[[Backend, str], bool]:
    """:func:`refuses_dtype` (a fixture so test modules need not import conftest)."""
    return refuses_dtype


@pytest.fixture(scope="session")
def get_backend() -> Callable[..., Backend]:
    """``load_backend`` (a fixture so test modules need not import conftest)."""
    return load_backend


@pytest.fixture(
    scope="session",
    params=[*CPU_BACKENDS, *STRICT_DEVICES, pytest.param("cupy", marks=pytest.mark.gpu)],
)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every backend: numpy, array_api_strict (on its default device and its restricted ones,
    :data:`STRICT_DEVICES`), torch, jax (CPU) and cupy (GPU)."""
    return load_backend(request.param)


@pytest.fixture(scope="session", params=CPU_BACKENDS)
def cpu_float64_backend(request: pytest.FixtureRequest) -> Backend:
    """The CPU backends, all of which have float64: for finite-difference gradient checks."""
    b = load_backend(request.param)
    if b.name == "jax" and "float64" not in b.dtypes:
        pytest.skip("backend 'jax' has float64 only with JAX_ENABLE_X64=1")
    assert "float64" in b.dtypes, f"{b} lost float64"
    return b


@pytest.fixture(scope="session")
def numpy_backend() -> Backend:
    return backends.get("numpy")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240229)


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray,
                       eps: float = 1e-6) -> np.ndarray:
    """``d f / d x`` by central differences, for a host float64 array ``x`` (not modified)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + eps
        up = f(x.copy())
        x[i] = orig - eps
        down = f(x.copy())
        x[i] = orig
        grad[i] = (up - down) / (2.0 * eps)
    return grad


@pytest.fixture(scope="session")
def numerical_gradient() -> Callable[..., np.ndarray]:
    """The central-difference routine (a fixture so test modules need not import conftest)."""
    return central_difference


def host(b: Backend, x: object) -> np.ndarray:
    """A host float64 copy of backend array ``x`` (a copy: in-place layers reuse buffers)."""
    return np.array(b.to_numpy(x), dtype=np.float64, copy=True)


@pytest.fixture(scope="session")
def to_host() -> Callable[[Backend, object], np.ndarray]:
    return host


def reference_tolerance(dtype_name: str) -> float:
    """Relative tolerance for a result in ``dtype_name`` against a float64 reference: a few
    dozen units in the last place of that dtype (the computations here sum tens of terms)."""
    return 64 * float(np.finfo(dtype_name).eps)


@pytest.fixture(scope="session")
def assert_matches_reference() -> Callable[..., None]:
    """``check(actual, reference, dtype_name)``: host arrays, tolerance scaled by the dtype's
    epsilon and by the reference's magnitude."""

    def check(actual: np.ndarray, reference: np.ndarray, dtype_name: str, what: str = "") -> None:
        tol = reference_tolerance(dtype_name)
        scale = max(1.0, float(np.max(np.abs(reference)))) if np.size(reference) else 1.0
        np.testing.assert_allclose(actual, reference, rtol=tol, atol=tol * scale, err_msg=what)

    return check
