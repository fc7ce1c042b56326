"""The documentation: every Python example of ``docs/*.md`` runs, the README stays short and
keeps its two commands, every link between the README and the pages leads somewhere, and the
site builds without a warning.

Examples: the ```` ```python ```` blocks of a page run in order in one namespace, in a temporary
working folder, on the MNIST that ``mlp.data.load()`` finds. A block that cannot run there is
marked on the line before it with ``<!-- not run: REASON -->``; a page whose examples need an
optional library says so with ``<!-- requires: MODULE -->`` and is skipped without it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_readme import mnist_available  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
MAX_README_WORDS = 1200
INSTALL_AND_TRAIN = 'pip install ".[numba]" && mlp train'
RUN_THE_TESTS = "bash .ci/run"

#: A fenced block: its info string and its body.
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->\s*$")
REQUIRES = re.compile(r"<!--\s*requires:\s*([\w.]+)\s*-->")
PYTHON_LIKE = re.compile(r"^(\{code-block\}\s*)?(py|python|python3|pycon|ipython)\b")


@dataclass
class Block:
    page: str
    line: int
    code: str
    reason: str | None  # why it is not run; None: it runs


def blocks(text: str, page: str) -> list[Block]:
    """The Python blocks of ``text``: ```` ```python ```` blocks run unless the line before
    them says ``<!-- not run: REASON -->``; ```` ```{code-block} python ```` blocks never run
    and need that line too (their ``reason`` is ``""`` without it)."""
    found = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip()
        if not PYTHON_LIKE.match(info):
            continue
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marked = NOT_RUN.search(before)
        reason = marked.group(1) if marked else (None if info == "python" else "")
        found.append(Block(page, line, m.group(2), reason))
    return found


def page_blocks(path: Path) -> list[Block]:
    return blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def test_the_block_finder() -> None:
    text = ("```python\nx = 1\n```\n<!-- not run: needs MPI -->\n```python\ny = 2\n```\n"
            "```{code-block} python\nz = 3\n```\n```bash\nls\n```\n```py\nw = 4\n```\n")
    found = blocks(text, "page")
    assert [(b.code, b.reason) for b in found] == [
        ("x = 1\n", None), ("y = 2\n", "needs MPI"), ("z = 3\n", ""), ("w = 4\n", "")]


def test_every_python_block_runs_or_says_why_not() -> None:
    """No example goes silently unexecuted: each Python-like block is a ```` ```python ````
    block that runs, or is marked ``<!-- not run: REASON -->`` with a reason."""
    everything = [b for page in [README, *PAGES] for b in page_blocks(page)]
    unmarked = [f"{b.page}:{b.line}" for b in everything if b.reason == ""]
    assert not unmarked, f"Python blocks neither run nor marked with a reason: {unmarked}"
    run = [b for b in everything if b.reason is None]
    not_run = [f"{b.page}:{b.line} ({b.reason})" for b in everything if b.reason]
    print(f"\n{len(run)} Python examples run, {len(not_run)} not run: {not_run}")
    assert len(run) >= 10


RUNNABLE = [p for p in PAGES if any(b.reason is None for b in page_blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.stem for p in RUNNABLE])
def test_the_python_examples_of_a_page_run(page: Path, mnist_available, tmp_path,  # noqa: F811
                                           monkeypatch, capsys) -> None:
    text = page.read_text(encoding="utf-8")
    for module in REQUIRES.findall(text):
        pytest.importorskip(module, reason=f"{page.name}'s examples need {module}")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    ran = 0
    for block in page_blocks(page):
        if block.reason is not None:
            continue
        code = compile(block.code, f"{block.page} python block at line {block.line}", "exec")
        exec(code, namespace)  # noqa: S102 - the project's own documentation
        ran += 1
    assert ran


# --------------------------------------------------------------------------- the README


def test_the_readme_is_short_and_keeps_its_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.split()) <= MAX_README_WORDS, f"{len(text.split())} words"
    commands = [m.group(2).strip() for m in FENCE.finditer(text)
                if m.group(1).strip() == "bash"]
    assert commands[:2] == [INSTALL_AND_TRAIN, RUN_THE_TESTS]


def test_the_readme_says_how_to_build_the_docs() -> None:
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[docs]"' in text
    assert ("python -m sphinx -W -n --keep-going -b html docs docs/_build/html && "
            "python -m webbrowser docs/_build/html/index.html") in text


def github_slug(heading: str) -> str:
    """The anchor GitHub (and MyST's ``myst_heading_anchors``) gives a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {github_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_local_link_leads_somewhere(doc: Path) -> None:
    """Links to files (``docs/cli.md#resume-a-run``, ``../benchmarks/REPORT.md``) name a file
    that exists and, with ``#``, one of its headings."""
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        name, _, anchor = target.partition("#")
        path = (doc.parent / name).resolve() if name else doc
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    assert not broken, broken


def test_the_readme_reaches_the_pages_a_newcomer_needs() -> None:
    """Train on a GPU, resume, predict an image, MPI, the benchmark report: one link each."""
    text = README.read_text(encoding="utf-8")
    for target in ("docs/getting-started.md#train-on-a-gpu", "docs/cli.md#resume-a-run",
                   "docs/getting-started.md#your-own-digits", "docs/distributed.md",
                   "docs/performance.md", "benchmarks/REPORT.md", "benchmarks/gpu/REPORT.md"):
        assert f"]({target})" in text, target


# --------------------------------------------------------------------------- the site


def test_the_docs_build_without_a_warning(tmp_path: Path) -> None:
    """The nox session ``docs`` builds the site; here it builds when Sphinx is installed."""
    for module in ("sphinx", "myst_parser", "furo"):
        pytest.importorskip(module, reason=f"the docs build needs {module} (the docs extra)")
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q",
                          "-b", "html", str(DOCS), str(tmp_path / "html")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-5000:]
    assert (tmp_path / "html" / "cli.html").is_file()


def test_the_command_line_page_shows_every_command() -> None:
    """Each sub-command of ``mlp`` has its section, generated from its parser."""
    from mlp.cli.app import COMMANDS

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"```{{mlp-options}} {name}\n" not in text]
    assert not missing, missing
