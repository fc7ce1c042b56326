"""The CPU test matrix: Python 3.10-3.13 x NumPy oldest-supported/newest, a PyTorch session
(with the slow end-to-end tests), a JAX session, data-parallel training under MPI, the
scikit-learn estimators, ONNX export and dask inference, the documentation, and lint.
``nox`` runs every session; a missing interpreter is an error, not a skip."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import nox

nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "tests", "torch", "jax", "mpi", "sklearn", "onnx_dask", "docs"]

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
# The oldest NumPy release with wheels for each Python that satisfies pyproject's floor.
OLDEST_NUMPY = {"3.10": "1.25.0", "3.11": "1.25.0", "3.12": "1.26.0", "3.13": "2.1.0"}
TORCH = "torch==2.13.0"
# The oldest scikit-learn the sklearn extra allows, and the newest.
SKLEARN = {"oldest": "scikit-learn==1.6.0", "newest": "scikit-learn"}


def executed(report: Path) -> int:
    """Tests a JUnit report counts as run (skipped ones aside)."""
    suites = ET.parse(report).getroot().iter("testsuite")
    return sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites)


def skipped(report: Path) -> int:
    """Tests a JUnit report marks skipped (expected failures aside: JUnit files them there too)."""
    return sum(1 for case in ET.parse(report).getroot().iter("testcase")
               for skip in case.findall("skipped") if skip.get("type") != "pytest.xfail")


def run_pytest(session: nox.Session, *args: str, skips: bool = True) -> None:
    """Run pytest and fail the session when it executed no test at all (or, with
    ``skips=False``, skipped any)."""
    report = Path(session.create_tmp()) / "junit.xml"
    session.run("python", "-m", "pytest", f"--junitxml={report}", *args, *session.posargs)
    ran = executed(report)
    if ran == 0:
        session.error("pytest ran no tests")
    if not skips and skipped(report):
        session.error(f"{skipped(report)} tests skipped: every one must run in this session")
    session.log(f"{ran} tests executed")


@nox.session(python=PYTHONS)
@nox.parametrize("numpy", ["oldest", "newest"])
def tests(session: nox.Session, numpy: str) -> None:
    """numpy and array_api_strict backends (torch, JAX and GPU tests skip here with a reason;
    array_api_strict is required)."""
    session.install("-e", ".[test]")
    if numpy == "oldest":
        session.install(f"numpy=={OLDEST_NUMPY[session.python]}")
    else:
        session.install("--upgrade", "numpy")
    session.run("python", "-c", "import numpy; print('numpy', numpy.__version__)")
    # array-api-strict proves the core uses only the standard: its skip is a failure here.
    session.env["MLP_REQUIRE_BACKENDS"] = "array_api_strict"
    # The slow end-to-end trainings run once, in the torch session.
    run_pytest(session, "-m", "not gpu and not slow and not mpi")


@nox.session(python="3.11")
def torch(session: nox.Session) -> None:
    """The same suite with PyTorch (CPU) installed, so the torch backend runs too, and the slow
    end-to-end trainings on MNIST (the README's accuracy promises, its Python snippets)."""
    session.install(TORCH)
    session.install("-e", ".[test,sklearn]")  # scikit-learn: the README's Pipeline example
    # A skip of a torch test is a failure here: this session exists to run them. The
    # estimators' array API dispatch on torch needs SciPy's array API mode, as in the sklearn
    # session.
    session.env.update({"MLP_REQUIRE_BACKENDS": "torch,array_api_strict",
                        "SCIPY_ARRAY_API": "1"})
    run_pytest(session, "-m", "not gpu and not mpi")


@nox.session(python="3.11")
def jax(session: nox.Session) -> None:
    """The same suite with JAX (CPU) installed, in its 64-bit mode, so the jax backend and its
    compiled step run every backend test; PyTorch too, so the pairs of JAX and torch (their
    checkpoints restored on each other) run; the real-MNIST runs only where JAX takes part (the
    others run in the torch session)."""
    session.install(TORCH)
    session.install("-e", ".[test,jax]")
    session.env["MLP_REQUIRE_BACKENDS"] = "jax,torch,array_api_strict"
    session.env["JAX_ENABLE_X64"] = "1"
    run_pytest(session, "-m", "not gpu and not slow and not mpi")
    run_pytest(session, "-m", "slow and not gpu", "tests/test_jax.py")


@nox.session(python="3.11")
@nox.parametrize("sklearn", ["oldest", "newest"])
def sklearn(session: nox.Session, sklearn: str) -> None:
    """The scikit-learn estimators under scikit-learn's own estimator checks, on the oldest and
    the newest scikit-learn the extra allows, with array API dispatch on array-api-strict and
    PyTorch (CPU); pandas for the checks that pass data frames. A skip is a failure here."""
    session.install(TORCH)
    session.install("-e", ".[test,sklearn]", "pandas")
    session.install(SKLEARN[sklearn])
    session.run("python", "-c", "import sklearn; print('scikit-learn', sklearn.__version__)")
    session.env.update({"SCIPY_ARRAY_API": "1", "MLP_REQUIRE_BACKENDS": "torch,array_api_strict"})
    run_pytest(session, "-m", "not gpu and not mpi", "tests/test_sklearn.py", skips=False)


@nox.session(python="3.11")
def onnx_dask(session: nox.Session) -> None:
    """ONNX export (ndonnx, onnx, and onnxruntime and ONNX's reference evaluator to check it)
    and inference on dask arrays, on the threaded scheduler and a local two-process cluster,
    with the onnx and dask extras. A skip is a failure here: the libraries are required."""
    session.install("-e", ".[test,onnx,dask]")
    run_pytest(session, "-m", "not gpu and not mpi", "tests/test_export.py", "tests/test_dask.py",
               skips=False)
    run_pytest(session, "tests/test_docs.py", "-k", "examples_of_a_page_run and export",
               skips=False)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site (docs/): Sphinx with MyST pages, autodoc and the command line
    generated from the parser; every warning, and every unresolved reference, is an error. No
    network is used (no intersphinx)."""
    session.install("-e", ".[docs]")
    out = Path(session.create_tmp()) / "html"
    session.run("python", "-m", "sphinx", "-W", "-n", "--keep-going", "-b", "html", "docs",
                str(out))


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff; the import contracts of pyproject.toml (imports only downward, no circles); and the
    test that names the modules of any circle. Both read the sources of the checkout (nothing
    of the project is installed), the test without the suite's conftest."""
    session.install("ruff>=0.5", "import-linter>=2.17", "pytest>=8.2")
    session.run("ruff", "check", ".")
    session.env["PYTHONPATH"] = str(Path(__file__).resolve().parent)
    session.run("lint-imports")
    run_pytest(session, "--noconftest", "-p", "no:cacheprovider", "tests/test_imports.py")


@nox.session(python="3.11")
def mpi(session: nox.Session) -> None:
    """Data-parallel training with the mpi extra (mpi4py and MPICH's mpiexec): the tests that
    run inside an MPI job under ``mpiexec -n 2`` (one pytest per rank, each with its own
    report), then the single-process ones, which launch ``mpiexec`` themselves."""
    session.install(TORCH)
    session.install("-e", ".[test,mpi]")
    # A skip is a failure here (MPI, or the torch backend), and a hung job ends after 10 minutes.
    session.env.update({"MLP_REQUIRE_MPI": "1", "MLP_REQUIRE_BACKENDS": "torch",
                        "MPIEXEC_TIMEOUT": "600"})
    tmp = Path(session.create_tmp())
    tests = "tests/test_distributed.py"
    rank = ["python", "-m", "pytest", "-p", "no:cacheprovider", "-m", "mpi", tests]
    session.run("mpiexec", "-n", "1", *rank, f"--junitxml={tmp / 'rank0.xml'}", ":",
                "-n", "1", *rank, f"--junitxml={tmp / 'rank1.xml'}", "-q")
    ran = [executed(tmp / f"rank{r}.xml") for r in (0, 1)]
    if min(ran) == 0:
        session.error(f"the two ranks ran {ran} tests")
    run_pytest(session, "-m", "not mpi", tests)
