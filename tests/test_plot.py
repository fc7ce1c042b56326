"""``mlp.plot.plot_history``: a PNG of the curves, leaving the user's matplotlib as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_plot_keeps_the_users_backend_and_figures(tmp_path: Path) -> None:
    code = f"""
import matplotlib
import matplotlib.pyplot as plt
from PIL import Image
from mlp.plot import plot_history
plt.figure()
history = [dict(epoch=e, train_loss=1 / e, test_loss=1.1 / e, train_acc=0.9, test_acc=0.8)
           for e in (1, 2, 3)]
path = plot_history(history, {str(tmp_path / "run.png")!r}, title="run")
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert plt.get_fignums() == [1], plt.get_fignums()
with Image.open(path) as image:
    assert image.format == "PNG" and image.size == (1000, 400), (image.format, image.size)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": "svg"}, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
