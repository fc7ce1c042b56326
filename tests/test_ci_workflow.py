"""The hosted CI runs every nox session that ``.ci/run`` runs: the workflow's jobs against
``nox.options.sessions`` in the noxfile."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def nox_sessions() -> list[str]:
    """``nox.options.sessions`` as the noxfile assigns it (what a bare ``nox`` runs)."""
    for node in ast.walk(ast.parse((ROOT / "noxfile.py").read_text())):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and ast.unparse(node.targets[0]) == "nox.options.sessions"):
            return list(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py does not set nox.options.sessions")


def nox_matrix(name: str) -> dict[str, list[str]]:
    """The matrix lists under the job ``name`` of the workflow: ``{key: [values]}``."""
    text = WORKFLOW.read_text()
    job = re.search(rf"^  {name}:\n(.*?)(?=^  \S|\Z)", text, re.S | re.M)
    assert job, f"the workflow has no job {name!r}"
    matrix = re.search(r"matrix:\n((?:\s{8}\S.*\n)+)", job.group(1))
    assert matrix, f"job {name!r} has no matrix"
    return {k: ast.literal_eval(v) for k, v in
            re.findall(r"^\s{8}(\w+): (\[.*\])$", matrix.group(1), re.M)}


def test_every_session_of_the_local_ci_runs_in_the_workflow() -> None:
    sessions = nox_sessions()
    tests = nox_matrix("tests")
    others = nox_matrix("sessions")["session"]
    assert 'nox -s "tests-${{ matrix.python }}(numpy=\'${{ matrix.numpy }}\')"' in \
        WORKFLOW.read_text()
    assert 'nox -s "${{ matrix.session }}"' in WORKFLOW.read_text()
    assert sorted([*others, "tests"]) == sorted(sessions), (others, sessions)
    noxfile = (ROOT / "noxfile.py").read_text()
    pythons = ast.literal_eval(re.search(r"^PYTHONS = (\[.*\])$", noxfile, re.M).group(1))
    assert tests["python"] == pythons
    assert tests["numpy"] == ["oldest", "newest"]
