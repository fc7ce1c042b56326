"""Imports only downward: no circle of imports inside ``mlp``, ``backends`` or ``benchmarks``,
and no import from the library into its benchmark suite or from the backends into the network.

Every import counts, those inside functions and under ``TYPE_CHECKING`` too (a circle that
exists only for type hints is still a circle). The layers themselves are import-linter's
contract in ``pyproject.toml`` (the lint session); this test names the modules of each circle.
"""

from __future__ import annotations

import textwrap
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="the import checks need grimp (import-linter's)")

PACKAGES = ("mlp", "backends", "benchmarks")
#: Circles tolerated while they are taken apart, each as the set of its modules (none now). A
#: circle found that is not listed fails, and so does one listed that is gone.
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()
#: importer package -> the packages it must never import.
FORBIDDEN = {"mlp": {"benchmarks"}, "backends": {"benchmarks", "mlp"}}


def import_graph(*packages: str) -> grimp.ImportGraph:
    """The import graph of ``packages`` with every import in it: at module level, in functions,
    under ``TYPE_CHECKING``."""
    return grimp.build_graph(*packages, include_external_packages=False,
                             exclude_type_checking_imports=False, cache_dir=None)


def _parent(module: str) -> str | None:
    return module.rpartition(".")[0] or None


def _node(module: str, container: str) -> str | None:
    """What ``module`` counts as among the members of ``container``: the package itself, the
    child of it that holds ``module``, or ``None`` outside it."""
    if module == container:
        return container
    if not module.startswith(container + "."):
        return None
    return container + "." + module[len(container) + 1:].split(".")[0]


def _strong_components(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def cycles(graph: grimp.ImportGraph) -> dict[frozenset[str], list[str]]:
    """Every circle of imports between the members of a package (its own ``__init__`` and its
    children, each child with all its submodules), for every package of ``graph``: the set of
    modules of each circle -> one way round it (``a -> b -> a``). A circle of modules in
    different packages shows up in the package that holds them all."""
    modules = set(graph.modules)
    containers = {p for m in modules if (p := _parent(m)) is not None} & modules
    found: dict[frozenset[str], list[str]] = {}
    for container in sorted(containers):
        edges: dict[str, set[str]] = {}
        for module in modules:
            source = _node(module, container)
            if source is None:
                continue
            edges.setdefault(source, set())
            for imported in graph.find_modules_directly_imported_by(module):
                target = _node(imported, container)
                if target is not None and target != source:
                    edges[source].add(target)
                    edges.setdefault(target, set())
        for component in _strong_components(edges):
            found[frozenset(component)] = _way_round(component, edges)
    return found


def _way_round(component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """The shortest circle through the first member of ``component``."""
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(edges[node] & component):
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if succ not in came_from:
                came_from[succ] = node
                queue.append(succ)
    raise AssertionError(f"no circle through {start}")  # a component always has one


def forbidden_imports(graph: grimp.ImportGraph,
                      forbidden: dict[str, set[str]]) -> list[str]:
    """``importer -> imported (line N)`` for every import from a package into one it must not
    import."""
    found = []
    for module in sorted(graph.modules):
        banned = forbidden.get(module.split(".")[0], set())
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported.split(".")[0] in banned:
                lines = sorted(d["line_number"] for d in graph.get_import_details(
                    importer=module, imported=imported))
                found.append(f"{module} -> {imported} (line {', '.join(map(str, lines))})")
    return found


def _describe(found: Iterable[tuple[frozenset[str], list[str]]]) -> str:
    """Each circle's modules, and one way round it."""
    return "; ".join(f"{', '.join(sorted(members))} (such as {' -> '.join(way)})"
                     for members, way in found)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return import_graph(*PACKAGES)


def test_no_new_circle_of_imports(graph: grimp.ImportGraph) -> None:
    found = cycles(graph)
    new = [(members, way) for members, way in sorted(found.items(), key=lambda kv: kv[1])
           if members not in KNOWN_CYCLES]
    assert not new, f"circles of imports: {_describe(new)}"


def test_every_known_circle_still_exists(graph: grimp.ImportGraph) -> None:
    gone = sorted(sorted(members) for members in set(KNOWN_CYCLES) - set(cycles(graph)))
    assert not gone, f"no longer circles, remove them from KNOWN_CYCLES: {gone}"


def test_the_library_never_imports_upward(graph: grimp.ImportGraph) -> None:
    assert forbidden_imports(graph, FORBIDDEN) == []


# --------------------------------------------------------------------------- the checks' checks


def _package(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")


def test_the_checks_count_every_import_and_catch_every_circle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Circles made by a function-level import, by a ``TYPE_CHECKING`` one, between two
    subpackages and through a package's ``__init__``; an import into a forbidden package."""
    _package(tmp_path, {
        "demo_imports/__init__.py": "",
        "demo_imports/a.py": "def f():\n    from . import b\n",
        "demo_imports/b.py": "from . import a\n",
        "demo_imports/c.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from . import d
            """,
        "demo_imports/d.py": "from .c import x\n",
        "demo_imports/up/__init__.py": "",
        "demo_imports/up/one.py": "from ..down import two\n",
        "demo_imports/down/__init__.py": "",
        "demo_imports/down/two.py": "from ..up import other\n",
        "demo_imports/up/other.py": "import demo_suite.run\n",
        "demo_imports/layers/__init__.py": "from .linear import Linear\n",
        "demo_imports/layers/linear.py": "from . import base\nfrom ..layers import ACT\n",
        "demo_imports/layers/base.py": "",
        "demo_suite/__init__.py": "",
        "demo_suite/run.py": "import demo_imports.a\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    demo = import_graph("demo_imports", "demo_suite")
    found = cycles(demo)
    assert found == {
        frozenset({"demo_imports.a", "demo_imports.b"}):
            ["demo_imports.a", "demo_imports.b", "demo_imports.a"],
        frozenset({"demo_imports.c", "demo_imports.d"}):
            ["demo_imports.c", "demo_imports.d", "demo_imports.c"],
        frozenset({"demo_imports.down", "demo_imports.up"}):
            ["demo_imports.down", "demo_imports.up", "demo_imports.down"],
        frozenset({"demo_imports.layers", "demo_imports.layers.linear"}):
            ["demo_imports.layers", "demo_imports.layers.linear", "demo_imports.layers"],
    }
    assert forbidden_imports(demo, {"demo_imports": {"demo_suite"}}) == [
        "demo_imports.up.other -> demo_suite.run (line 1)"]
