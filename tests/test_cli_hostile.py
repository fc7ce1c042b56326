"""``mlp train`` against hostile and unlucky circumstances: resumes without ``--save``, kills
between a checkpoint and its metrics line, hard links, non-UTF-8 file names, a full disk, a
SIGTERM during start-up, memory running out, data folders that are not folders; and the
install lines every message and the README print, which must work from a fresh clone.

Runs use MNIST written as raw IDX files (see ``cli_support``) and a model with 16 hidden units
in batches of 2000 (30 steps an epoch).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import clean_env, write_real_mnist_raw
from test_reliability import STARTUP_LAUNCHER

from mlp import checkpoint
from mlp.cli import main
from mlp.cli.report import header_lines

ROOT = Path(__file__).parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()
SMALL = ("--dataset", "mnist", "--hidden", "16", "--batch-size", "2000", "--seed", "3")


@pytest.fixture(scope="session")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_real_mnist_raw(tmp_path_factory.getbasetemp() / "mnist-raw")


def mlp(*args: object, cwd: Path, env: dict[str, str] | None = None,
        **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlp", *map(str, args)], cwd=cwd,
                          env=env or clean_env(cwd), capture_output=True, text=True,
                          timeout=600, check=False, **kwargs)


def one_line(err: str, *parts: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    for part in parts:
        assert part in lines[0], err
    return lines[0]


def metrics_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def two_epochs(fake_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One run saved after epoch 1 (``first``) and after epoch 2 (``second``), and its
    metrics file of two lines."""
    tmp = tmp_path_factory.mktemp("two-epochs")
    first, second, lines = tmp / "first.st", tmp / "second.st", tmp / "run.jsonl"
    run = mlp("train", *SMALL, "--schedule", "constant", "--epochs", "1", "--data-dir",
              fake_data, "--save", first, "--quiet", cwd=tmp)
    assert run.returncode == 0, run.stderr
    shutil.copy(first, second)
    run = mlp("train", "--resume", second, "--save", second, "--epochs", "2", "--metrics",
              lines, "--data-dir", fake_data, "--quiet", cwd=tmp)
    assert run.returncode == 0, run.stderr
    assert checkpoint.load(second).meta["epoch"] == 2
    return {"first": first, "second": second, "metrics": lines}


# --------------------------------------------------------------------------- --resume, --save


def test_resume_without_save_continues_in_its_checkpoint(tmp_path: Path, fake_data: Path,
                                                         two_epochs: dict[str, Path]) -> None:
    ckpt = tmp_path / "run.st"
    shutil.copy(two_epochs["first"], ckpt)
    run = mlp("train", "--resume", ckpt, "--epochs", "2", "--data-dir", fake_data, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"checkpoint written to {ckpt}" in run.stdout
    assert checkpoint.load(ckpt).meta["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.st"]


def test_help_says_where_a_resumed_run_saves(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "saving into FILE after every epoch unless --save names another file" in text


def test_resume_after_a_kill_between_metrics_and_checkpoint(tmp_path: Path, fake_data: Path,
                                                           two_epochs: dict[str, Path]) -> None:
    """The metrics file holds epoch 2, the checkpoint only epoch 1: epoch 2 is trained again
    and its line replaced, with no --overwrite."""
    ckpt, lines = tmp_path / "run.st", tmp_path / "run.jsonl"
    shutil.copy(two_epochs["first"], ckpt)
    shutil.copy(two_epochs["metrics"], lines)
    run = mlp("train", "--resume", ckpt, "--metrics", lines, "--epochs", "2", "--data-dir",
              fake_data, "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [m["epoch"] for m in metrics_of(lines)] == [1, 2]
    assert metrics_of(lines)[0] == metrics_of(two_epochs["metrics"])[0]


@pytest.mark.parametrize("tail", ["", '{"epoch": 2, "train_lo'], ids=["short", "torn"])
def test_resume_completes_a_metrics_file_cut_short(tail: str, tmp_path: Path, fake_data: Path,
                                                   two_epochs: dict[str, Path]) -> None:
    """The checkpoint holds epoch 2, the metrics file only epoch 1 (a kill after the save, or
    a line a full disk cut): the file gets the checkpoint's epochs again."""
    ckpt, lines = tmp_path / "run.st", tmp_path / "run.jsonl"
    shutil.copy(two_epochs["second"], ckpt)
    first_line = two_epochs["metrics"].read_text().splitlines()[0]
    lines.write_text(first_line + "\n" + tail)
    run = mlp("train", "--resume", ckpt, "--metrics", lines, "--epochs", "3", "--data-dir",
              fake_data, "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [m["epoch"] for m in metrics_of(lines)] == [1, 2, 3]
    assert metrics_of(lines)[:2] == metrics_of(two_epochs["metrics"])


def test_an_empty_metrics_file_is_new(tmp_path: Path, fake_data: Path) -> None:
    """What a run killed before its first epoch leaves does not block running it again."""
    lines = tmp_path / "run.jsonl"
    lines.write_bytes(b"")
    run = mlp("train", *SMALL, "--epochs", "1", "--metrics", lines, "--data-dir", fake_data,
              "--save", tmp_path / "run.st", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [m["epoch"] for m in metrics_of(lines)] == [1]


def test_a_hard_link_is_the_same_file(tmp_path: Path, two_epochs: dict[str, Path]) -> None:
    ckpt, lines = tmp_path / "run.st", tmp_path / "run.jsonl"
    shutil.copy(two_epochs["first"], ckpt)
    os.link(ckpt, lines)
    before = ckpt.read_bytes()
    run = mlp("train", "--resume", ckpt, "--save", ckpt, "--metrics", lines, "--overwrite",
              "--epochs", "2", "--data-dir", tmp_path / "no-data", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    one_line(run.stderr, "mlp train: error: --resume and --metrics name the same file")
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize("option", ["--save", "--metrics", "--plot"])
def test_an_output_ending_in_a_slash_is_refused(option: str, tmp_path: Path) -> None:
    run = mlp("train", *SMALL, option, "newdir/", "--data-dir", tmp_path / "no-data",
              cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    one_line(run.stderr, f"mlp train: error: {option} newdir/: names a folder")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- hostile names


BAD = b"bad\xff"


def test_undecodable_file_names_print_escaped(tmp_path: Path, fake_data: Path) -> None:
    """Names that are not UTF-8, under a strict UTF-8 stdout and stderr: the run trains and
    saves, every echo of a name is valid text with the byte escaped."""
    env = {**clean_env(tmp_path), "PYTHONIOENCODING": "utf-8:strict"}

    def run(*args: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "mlp", *args], cwd=tmp_path, env=env,
                              capture_output=True, timeout=600, check=False)

    save, lines = BAD + b".st", BAD + b".jsonl"
    trained = run("train", *SMALL, "--epochs", "1", "--data-dir", str(fake_data), "--save",
                  save, "--metrics", lines, "--plot", BAD + b".png")
    assert trained.returncode == 0, trained.stderr
    out = trained.stdout.decode("utf-8")  # strict: the output is valid text
    assert "checkpoint written to bad\\xff.st" in out
    assert "plot written to bad\\xff.png" in out
    folder = os.fsencode(tmp_path)
    assert all(os.path.exists(os.path.join(folder, name)) for name in (save, lines))
    again = run("train", *SMALL, "--save", save, "--data-dir", str(fake_data))
    assert again.returncode == 2
    one_line(again.stderr.decode("utf-8"), "--save bad\\xff.st: the file exists")
    missing = run("train", "--resume", BAD + b"-missing.st")
    assert missing.returncode == 1
    one_line(missing.stderr.decode("utf-8"), "bad\\xff-missing.st")


# --------------------------------------------------------------------------- failures


def test_memory_error_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from mlp.cli import train

    def plan(*args: object, **kwargs: object) -> None:
        raise MemoryError("Unable to allocate 7.45 GiB for an array with shape (1000000000,)")

    monkeypatch.setattr(train, "plan", plan)
    assert main(["train"]) == 1
    err = capsys.readouterr().err
    one_line(err, "mlp: error: out of memory (Unable to allocate 7.45 GiB")


@pytest.mark.parametrize("kind", ["file", "fifo", "device"])
def test_a_data_dir_that_is_no_folder_says_what_it_is(kind: str, tmp_path: Path) -> None:
    target = tmp_path / "data"
    if kind == "file":
        target.write_bytes(b"x")
        what = "is a regular file, not a folder"
    elif kind == "fifo":
        os.mkfifo(target)
        what = "is a FIFO, not a folder"
    else:
        target, what = Path(os.devnull), "is a device, not a folder"
    run = mlp("train", *SMALL, "--data-dir", target, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    one_line(run.stderr, f"mlp: error: mnist: data folder {target} (--data-dir) {what}")


FULL_DISK = """\
import resource, signal, sys
from pathlib import Path
from mlp.cli.outputs import MetricsWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))
writer = MetricsWriter(Path(sys.argv[1]), append=False)
try:
    for epoch in range(1, 100):
        writer.write({"epoch": epoch, "train_loss": 0.123456789, "train_acc": 0.5,
                      "seconds": 1.5, "lr": 0.001})
except OSError as exc:
    print(exc.strerror)
"""


def test_a_full_disk_leaves_whole_metrics_lines(tmp_path: Path) -> None:
    target = tmp_path / "run.jsonl"
    run = subprocess.run([sys.executable, "-c", FULL_DISK, str(target)], capture_output=True,
                         text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    text = target.read_text()
    assert text.endswith("\n") and 0 < len(text) <= 300
    assert [m["epoch"] for m in metrics_of(target)] == list(range(1, text.count("\n") + 1))
    assert run.stdout.strip() == "File too large"  # the operating system's reason




@pytest.mark.parametrize("module", ["numpy", "pooch"])
def test_sigterm_during_start_up_is_one_line_and_leaves_no_lock(module: str,
                                                                tmp_path: Path) -> None:
    """While the array library loads, or (pooch) while the data loads, after the outputs were
    claimed: exit 143, one line, no lock file left."""
    launcher = tmp_path / "startup.py"
    launcher.write_text(STARTUP_LAUNCHER.replace("MODULE", module))
    env = clean_env(tmp_path)
    del env["MLP_CACHE_DIR"]  # fashion-mnist then imports pooch for the cache folder
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, str(launcher), "train", "--dataset",
                             "fashion-mnist", "--save", out / "run.st", "--metrics",
                             out / "run.jsonl"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "importing\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    assert err == "mlp: terminated (SIGTERM)\n"
    assert [p.name for p in out.iterdir() if p.name.endswith(".lock")] == []


# --------------------------------------------------------------------------- messages


def test_hidden_as_several_values_gets_the_hint(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["512x512"], ["512", "512"]):
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--hidden", *args])
        assert exit_.value.code == 2
        one_line(capsys.readouterr().err, "mlp train: error: argument --hidden: --hidden takes "
                 "comma-separated widths such as 512,512")


def test_help_and_description_name_every_backend_library(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    description = re.search(r'^description = "(.*)"$', PYPROJECT, re.MULTILINE)[1]
    for library in ("NumPy", "CuPy", "PyTorch", "JAX", "array-api-strict"):
        assert library in text and library in description


def test_the_header_of_a_distributed_run_names_its_ranks() -> None:
    from mlp.cli.settings import DEFAULTS, FIXED, build_model

    settings = {**DEFAULTS, **FIXED, "hidden": "8", "lr": 1e-3}
    model = build_model(settings, 784, 10, 30)
    text = " ".join(" ".join(header_lines(model, settings, 30, threads=2, ranks=3)).split())
    assert "(2 threads each), data-parallel over 3 ranks" in text
    assert "rank" not in " ".join(header_lines(model, settings, 30, threads=2))


# --------------------------------------------------------------------------- install lines


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed.stdout.split()
            if name.endswith((".py", ".md", ".toml", ".sh", ".yml", ".txt", ".cfg"))
            or name == ".ci/run"]


def test_install_lines_work_from_a_fresh_clone() -> None:
    """The package is on no registry: every install line names the checkout (``pip install
    ".[mpi]"``), never ``array-api-mlp[...]``, and every extra it names exists."""
    section = PYPROJECT.split("[project.optional-dependencies]")[1].split("\n[")[0]
    extras = set(re.findall(r"^([a-z0-9_-]+) = \[", section, re.MULTILINE))
    named: set[str] = set()
    for path in _tracked_text_files():
        if not path.is_file() or path.name == "pyproject.toml" or path == Path(__file__):
            continue  # the project's extras refer to itself; this test names what it bans
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(ROOT)
        assert re.search(r"array-api-mlp\[", text) is None, f"{rel} names array-api-mlp[...]"
        assert re.search(r"pip install ['\"]?array-api-mlp\b", text) is None, rel
        for found in re.findall(r"""["']\.\[([a-z0-9_,-]+)\]["']""", text):
            named.update(found.split(","))
    assert named and named <= extras, named - extras
    from backends.collectives import MPI_HINT
    from backends.registry import INSTALL_HINT

    for hint in (MPI_HINT, *INSTALL_HINT.values()):
        assert "array-api-mlp" not in hint and "pip install" in hint
