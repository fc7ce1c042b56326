"""Static checks with ``ast``: ``mlp/`` names no array library, backend, device kind or
concrete array type outside its host-side modules (the namespace comes from the arrays, every
other fact about a library from the :class:`backends.Backend`), and nothing in ``mlp/`` or
``backends/`` can unpickle data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "mlp"
BACKENDS = ROOT / "backends"

#: Modules of mlp/ that work on host NumPy data (files, the command line, images, plots): they
#: may import NumPy. Every other module of mlp/ is checked by the rules below.
HOST_IO_MODULES = {"data.py", "checkpoint.py", "images.py", "plot.py", "__main__.py"}
#: Packages of mlp/ on the host side likewise (the command line; the scikit-learn estimators,
#: whose labels and validation splits live on the host as scikit-learn's do).
HOST_IO_PACKAGES = {"cli", "sklearn"}
ARRAY_LIBRARIES = {"numpy", "cupy", "torch", "jax", "array_api_strict"}
#: String constants that name a library, a backend or a device kind (compared casefolded;
#: ``cuda:0`` counts as ``cuda``). Messages that merely mention them are longer strings.
LIBRARY_WORDS = ARRAY_LIBRARIES | {"np", "cp", "cpu", "cuda", "gpu", "mps"}
#: Attributes that are concrete array types of a library.
ARRAY_TYPES = {"ndarray", "Tensor", "generic"}
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def math_modules() -> list[Path]:
    return sorted(p for p in MLP.rglob("*.py")
                  if not (p.parent == MLP and p.name in HOST_IO_MODULES)
                  and p.relative_to(MLP).parts[0] not in HOST_IO_PACKAGES)


def all_modules() -> list[Path]:
    return sorted([*MLP.rglob("*.py"), *BACKENDS.rglob("*.py")])


def _top(name: str) -> str:
    return name.split(".")[0]


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module a file imports: ``import``/``from`` statements and calls such as
    ``importlib.import_module("numpy")`` or ``__import__("torch")`` with a literal name."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def array_library_imports(source: str) -> set[str]:
    return {m for m in imported_modules(ast.parse(source)) if _top(m) in ARRAY_LIBRARIES}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def library_knowledge(source: str) -> list[str]:
    """Places where ``source`` names a library, backend, device kind or concrete array type:
    string constants such as ``"numpy"`` or ``"cpu"`` (the stuff of ``backend.name == ...``
    tests), and attributes such as ``np.ndarray`` or ``torch.Tensor``."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    problems = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings
                and node.value.split(":")[0].casefold() in LIBRARY_WORDS):
            problems.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Attribute) and node.attr in ARRAY_TYPES:
            problems.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Name) and node.id in ARRAY_LIBRARIES | {"np"}:
            problems.append(f"line {node.lineno}: {node.id}")
    return problems


def unsafe_loading(source: str) -> list[str]:
    """Ways ``source`` could execute code hidden in a data file."""
    tree = ast.parse(source)
    problems = [f"imports {m}" for m in imported_modules(tree) if _top(m) in PICKLE_MODULES]
    torch_names = {"torch"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            torch_names.update(a.asname for a in node.names if a.name == "torch" and a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module and _top(node.module) == "torch":
            problems.extend(f"imports {node.module}.load" for a in node.names if a.name == "load")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant)
                                                 and kw.value.value is False):
                problems.append(f"line {node.lineno}: allow_pickle={ast.unparse(kw.value)}")
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "load":
            base = func.value
            while isinstance(base, ast.Attribute):  # torch.serialization.load
                base = base.value
            if isinstance(base, ast.Name) and base.id in torch_names:
                problems.append(f"line {node.lineno}: {ast.unparse(func)}()")
    return problems


def test_the_lists_match_the_tree():
    names = {p.name for p in math_modules()}
    for expected in ("model.py", "losses.py", "optimizers.py", "params.py", "schedules.py",
                     "linear.py", "activations.py", "softmax.py", "dropout.py", "train.py",
                     "__init__.py"):
        assert expected in names
    assert not {p.name for p in math_modules() if p.parent == MLP} & HOST_IO_MODULES
    present = {p.name for p in MLP.glob("*.py")}
    assert HOST_IO_MODULES - {"__main__.py"} <= present, "a host module was renamed"
    assert all((MLP / package / "__init__.py").exists() for package in HOST_IO_PACKAGES)


@pytest.mark.parametrize("path", math_modules(), ids=_rel)
def test_math_modules_import_no_array_library(path):
    found = array_library_imports(path.read_text(encoding="utf-8"))
    assert not found, (f"{_rel(path)} imports {sorted(found)}: take the namespace from the "
                       "arrays (array_namespace) or the backend object instead")


@pytest.mark.parametrize("path", math_modules(), ids=_rel)
def test_math_modules_name_no_library_backend_or_device(path):
    problems = library_knowledge(path.read_text(encoding="utf-8"))
    assert not problems, (f"{_rel(path)} knows about a concrete library: {problems}; ask the "
                          "backend instead (backend.is_host, backend.rng, backend.set_threads, "
                          "backend.to_host_copy, ...)")


@pytest.mark.parametrize("path", all_modules(), ids=_rel)
def test_nothing_unpickles(path):
    problems = unsafe_loading(path.read_text(encoding="utf-8"))
    assert not problems, f"{_rel(path)}: {problems}"


# --- the checks themselves must be able to fail ----------------------------------------------


@pytest.mark.parametrize("source", [
    "import numpy as np", "import numpy.linalg", "from numpy import zeros",
    "from cupy.cuda import Device", "import torch", "import jax.numpy as jnp",
    "import array_api_strict", "import importlib\nimportlib.import_module('torch')",
    "__import__('numpy')", "def f():\n    import cupy\n    return cupy",
])
def test_array_library_check_catches(source):
    assert array_library_imports(source)


@pytest.mark.parametrize("source", [
    "from array_api_compat import array_namespace", "import math", "from . import numpy_helpers",
    "import numpydoc",
])
def test_array_library_check_allows(source):
    assert not array_library_imports(source)


@pytest.mark.parametrize("source", [
    'if backend.name == "numpy":\n    pass', 'on_gpu = backend.name in ("cupy", "torch")',
    'str(device).startswith(("cpu", "CPU"))', 'dev == "cuda:0"', "isinstance(x, np.ndarray)",
    "isinstance(x, numpy.ndarray)", "isinstance(t, torch.Tensor)", "def f(backend='numpy'): ...",
    "x = array_api_strict.asarray(1)",
])
def test_library_knowledge_check_catches(source):
    assert library_knowledge(source)


@pytest.mark.parametrize("source", [
    '"""Runs on numpy, cupy or torch."""', 'def f():\n    """Or "cpu"."""',
    'raise ValueError("install torch: pip install torch")', "backend.is_host",
    "xp.isdtype(x.dtype, 'real floating')",
])
def test_library_knowledge_check_allows(source):
    assert not library_knowledge(source)


@pytest.mark.parametrize("source", [
    "import pickle", "from pickle import loads",
    "import numpy as np\nnp.load(f, allow_pickle=True)",
    "numpy.load(f, allow_pickle=flag)", "import torch\ntorch.load(f)",
    "import torch as T\nT.load(f, weights_only=True)", "from torch import load",
    "import torch\ntorch.serialization.load(f)", "import joblib",
])
def test_unpickling_check_catches(source):
    assert unsafe_loading(source)


@pytest.mark.parametrize("source", [
    "import numpy as np\nnp.load(f, allow_pickle=False)", "import json\njson.load(f)",
    "from safetensors.numpy import load_file",
])
def test_unpickling_check_allows(source):
    assert not unsafe_loading(source)
