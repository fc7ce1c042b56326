"""Every Python code block of README.md runs as written.

The blocks run in order in one namespace (a later block may use what an earlier one made), in
a temporary working folder, on the real MNIST that ``mlp.data.load()`` finds. The examples of
the pages in ``docs/`` run in ``test_docs.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_the_block_finder_finds_blocks():
    text = "intro\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = x\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = x\n"]
    assert len(python_blocks(README.read_text(encoding="utf-8"))) >= 1


@pytest.fixture
def mnist_available() -> None:
    """Skip (fail where ``CI`` is set) when no MNIST copy can be loaded without a download."""
    import mlp
    from mlp.errors import DataError

    try:
        mlp.data.load(download=False)
    except DataError as exc:
        reason = f"the README's examples train on MNIST, which is not available here ({exc})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)


@pytest.mark.slow
def test_readme_python_blocks_run(mnist_available, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    for i, block in enumerate(blocks, 1):
        code = compile(block, f"README.md python block {i}", "exec")
        exec(code, namespace)  # noqa: S102 - the project's own README
    assert (tmp_path / "mnist.safetensors").is_file()
    assert "accuracy" in capsys.readouterr().out
