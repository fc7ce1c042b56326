"""Every ``pytest.raises`` of a ``ValueError`` or ``TypeError`` in the suite says which error
it expects (``match=``): both are raised for many reasons, and a test that accepts any of them
passes for the wrong one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROAD = {"ValueError", "TypeError"}


def _names(node: ast.expr) -> set[str]:
    """Exception class names in ``pytest.raises``' first argument (a name or a tuple)."""
    items = node.elts if isinstance(node, ast.Tuple) else [node]
    return {n.id if isinstance(n, ast.Name) else getattr(n, "attr", "") for n in items}


def unmatched_raises(source: str) -> list[int]:
    """Lines of ``pytest.raises(ValueError | TypeError ...)`` calls without ``match=``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and ast.unparse(node.func) == "pytest.raises"
                and node.args and _names(node.args[0]) & BROAD
                and not any(k.arg == "match" for k in node.keywords)):
            lines.append(node.lineno)
    return lines


def test_the_check_sees_both_forms() -> None:
    source = ("import pytest\n"
              "with pytest.raises(ValueError):\n    pass\n"
              "with pytest.raises((OSError, TypeError)):\n    pass\n"
              "with pytest.raises(ValueError, match='x'):\n    pass\n"
              "with pytest.raises(KeyError):\n    pass\n")
    assert unmatched_raises(source) == [2, 4]


def test_every_broad_raises_names_its_message() -> None:
    found = {f"{p.relative_to(ROOT).as_posix()}:{line}"
             for folder in ("tests", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py"))
             for line in unmatched_raises(p.read_text())}
    assert not found, sorted(found)
