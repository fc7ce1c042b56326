"""Tests of ``mlp predict``: a small model trained here on real MNIST predicts PNG and JPEG
files written from MNIST test digits as it predicts the stored arrays.

Bounds: the colour-inverted and off-centre files give the very same input as the stored digit
(see test_images), so their predictions equal those on the files of the stored digits; every
variant agrees with the model's prediction on the original array for >= 95 % of the sample
(resampling, JPEG and the noise threshold of the crop change a few pixels). So do photos of the
digits in dark ink on paper lit unevenly: a ramp of light, a vignette, a shadow.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
from cli_support import clean_env
from PIL import Image, ImageOps
from test_cli import assert_usage_error, run_mlp

import mlp.cli.predict
from mlp import MLP, Adam, checkpoint, data
from mlp.cli.predict import add_arguments, run
from mlp.train import PIXEL_SCALE

SAMPLE = 50
#: Digits in the photo tests (more than SAMPLE: at 50, 2 digits that the enlarged, inked and
#: grained rendering flips even in even light would leave no room).
PHOTOS = 100
VARIANTS = ("stored", "inverted", "off-centre", "112px", "jpeg")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 784-64-10 model after one epoch on MNIST (about 97 %), its checkpoint, and its
    predictions on the first :data:`SAMPLE` test digits."""
    mnist = data.load("mnist")
    model = MLP([784, 64, 10], optimizer=Adam(3e-3), seed=0)
    order = np.random.default_rng(0).permutation(mnist.x_train.shape[0])
    for i in range(0, order.size, 128):
        batch = order[i : i + 128]
        model.train_step(model.backend.asarray(mnist.x_train[batch] * np.float32(PIXEL_SCALE)),
                         model.backend.asarray(mnist.y_train[batch]))
    folder = tmp_path_factory.mktemp("predict")
    path = checkpoint.save(folder / "model.safetensors", model)
    digits = mnist.x_test[:PHOTOS]
    expected = model.backend.to_numpy(
        model.predict(model.backend.asarray(digits * np.float32(PIXEL_SCALE))))
    expected = [int(c) for c in expected]
    return {"path": path, "folder": folder, "digits": digits[:SAMPLE].reshape(-1, 28, 28),
            "expected": expected[:SAMPLE], "photos": digits.reshape(-1, 28, 28),
            "photos_expected": expected}


def variant(kind: str, digit: np.ndarray, folder: Path, i: int) -> Path:
    """Digit ``i`` written as a file of ``kind``."""
    if kind == "stored":
        pixels, name = digit, f"{i}.png"
    elif kind == "inverted":
        pixels, name = 255 - digit, f"{i}-inverted.png"
    elif kind == "off-centre":
        pixels, name = np.zeros((60, 45), dtype=np.uint8), f"{i}-canvas.png"
        pixels[3:31, 15:43] = digit
    elif kind == "112px":
        img = Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC)
        pixels, name = np.asarray(img), f"{i}-112.png"
    else:
        pixels, name = digit, f"{i}.jpg"
    Image.fromarray(pixels).save(folder / name, quality=90)
    return folder / name


def lighting(kind: str, shape: tuple[int, int]) -> np.ndarray:
    """The grey level of blank paper, ``shape``, lit as ``kind``."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] / (np.array(shape)[:, None, None] - 1)
    if kind == "ramp":  # paper from grey 215 on the left to 160 on the right
        return 215 - 55 * x
    if kind == "steep ramp":  # 235 at the top left to 105 at the bottom right
        return 235 - 65 * (x + y)
    if kind == "vignette":  # 225 in the centre, 105 in the corners
        return 225 - 60 * ((2 * x - 1) ** 2 + (2 * y - 1) ** 2)
    if kind == "shadow":  # the right 40 % in a soft-edged shadow at half the light
        return 220 * (1 - 0.5 / (1 + np.exp(-(x - 0.6) * 40)))
    assert kind == "corner shadow"  # a diagonal shadow over the bottom left
    return 210 * (1 - 0.45 / (1 + np.exp(-(y - x - 0.2) * 25)))


def photo(kind: str, digit: np.ndarray, folder: Path, i: int) -> Path:
    """Digit ``i``, enlarged to 112 pixels, in dark ink (12 % of the paper's light) on a
    150 x 140 page lit as ``kind``, with paper grain (a seeded standard deviation of 2)."""
    ink = np.zeros((150, 140))
    big = Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC)
    ink[20:132, 10:122] = np.asarray(big, dtype=float) / 255
    grain = np.random.default_rng(i).normal(0, 2, ink.shape)
    pixels = lighting(kind, ink.shape) * (1 - 0.88 * ink) + grain
    name = folder / f"{i}-{kind.replace(' ', '-')}.png"
    Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).save(name)
    return name


@pytest.mark.parametrize("kind", ["ramp", "steep ramp", "vignette", "shadow", "corner shadow"])
def test_uneven_light_is_not_ink(kind: str, trained: dict,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    files = [photo(kind, d, trained["folder"], i) for i, d in enumerate(trained["photos"])]
    status, out, err = predict("--checkpoint", str(trained["path"]), "--json",
                               *map(str, files), capsys=capsys)
    assert status == 0 and err == ""
    got = [json.loads(line)["prediction"] for line in out.splitlines()]
    agree = sum(g == e for g, e in zip(got, trained["photos_expected"], strict=True))
    assert agree >= 0.95 * PHOTOS, (kind, agree)


def predict(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="mlp predict")
    add_arguments(parser)
    status = run(parser.parse_args(list(argv)))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("kind", VARIANTS)
def test_predictions_match_the_original_arrays(kind: str, trained: dict,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    files = [variant(kind, d, trained["folder"], i) for i, d in enumerate(trained["digits"])]
    status, out, err = predict("--checkpoint", str(trained["path"]), "--json",
                               *map(str, files), capsys=capsys)
    assert status == 0 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["file"] for row in rows] == [str(f) for f in files]
    got = [row["prediction"] for row in rows]
    agree = sum(g == e for g, e in zip(got, trained["expected"], strict=True))
    assert agree >= 0.95 * SAMPLE, (kind, agree)
    if kind in ("inverted", "off-centre"):
        stored = [variant("stored", d, trained["folder"], i)
                  for i, d in enumerate(trained["digits"])]
        _, out, _ = predict("--checkpoint", str(trained["path"]), "--json",
                            *map(str, stored), capsys=capsys)
        assert got == [json.loads(line)["prediction"] for line in out.splitlines()]


def test_text_and_top_k(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    file = variant("stored", trained["digits"][0], trained["folder"], 0)
    status, out, _ = predict("--checkpoint", str(trained["path"]), str(file), capsys=capsys)
    assert status == 0
    assert out.startswith(f"{file}: {trained['expected'][0]} (") and out.endswith(" %)\n")
    status, out, _ = predict("--checkpoint", str(trained["path"]), "--top", "3", str(file),
                             capsys=capsys)
    parts = out.strip().split(": ", 1)[1].split(", ")
    assert len(parts) == 3 and parts[0].startswith(f"{trained['expected'][0]} (")
    percents = [float(p.split("(")[1].rstrip(" %)")) for p in parts]
    assert percents == sorted(percents, reverse=True)


def test_json_probabilities_are_a_distribution(trained: dict,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    file = variant("stored", trained["digits"][1], trained["folder"], 1)
    _, out, _ = predict("--checkpoint", str(trained["path"]), "--json", "--top", "10",
                        str(file), capsys=capsys)
    row = json.loads(out)
    probs = [entry["probability"] for entry in row["top"]]
    assert sorted(entry["class"] for entry in row["top"]) == list(range(10))
    assert abs(sum(probs) - 1) < 1e-5 and probs == sorted(probs, reverse=True)
    assert row["top"][0] == {"class": row["prediction"], "probability": row["probability"]}


def test_bad_images_in_the_real_process(trained: dict, tmp_path: Path) -> None:
    good = [variant("stored", d, tmp_path, i) for i, d in enumerate(trained["digits"][:2])]
    (tmp_path / "notes.png").write_text("not an image")
    result = run_mlp("predict", "--checkpoint", trained["path"], good[0], "notes.png",
                     "missing.png", good[1], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert "notes.png" in errors[0] and "missing.png" in errors[1]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(good[0]), str(good[1])]
    assert [int(line.split(": ")[1].split()[0]) for line in lines] == trained["expected"][:2]


def test_top_and_json_in_the_real_process(trained: dict, tmp_path: Path) -> None:
    file = variant("stored", trained["digits"][2], tmp_path, 2)
    result = run_mlp("predict", "--checkpoint", trained["path"], "--top", "3", "--json", file,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["prediction"] == trained["expected"][2] and len(row["top"]) == 3


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_bad_checkpoint_is_one_line(content: bytes | None, trained: dict, tmp_path: Path) -> None:
    file = variant("stored", trained["digits"][0], tmp_path, 0)
    ckpt = tmp_path / "model.safetensors"
    if content is not None:
        ckpt.write_bytes(content)
    result = run_mlp("predict", "--checkpoint", ckpt, file, cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and "model.safetensors" in result.stderr
    assert result.stdout == ""


def test_top_must_be_positive(tmp_path: Path) -> None:
    result = run_mlp("predict", "--checkpoint", "x", "--top", "0", "a.png", cwd=tmp_path)
    assert result.returncode == 2 and "--top" in result.stderr


def test_a_fifo_among_the_images_is_one_line(trained: dict, tmp_path: Path) -> None:
    """A FIFO is refused at once (no writer ever comes), and the files around it are
    predicted."""
    good = [variant("stored", d, tmp_path, i) for i, d in enumerate(trained["digits"][:2])]
    os.mkfifo(tmp_path / "pipe.png")
    result = run_mlp("predict", "--checkpoint", trained["path"], good[0], "pipe.png", good[1],
                     cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "mlp: error: pipe.png: it is a FIFO, not a regular file\n"
    predicted = [int(line.split(": ")[1].split()[0]) for line in result.stdout.splitlines()]
    assert predicted == trained["expected"][:2]


def test_names_that_are_not_utf8_under_a_strict_stdout(trained: dict, tmp_path: Path) -> None:
    """The file names b'bad\\xff.png' (a digit) and b'gone\\xff.png' (missing), printed under a
    UTF-8 stdout and stderr that raise on what they cannot encode: U+FFFD stands for the byte."""
    digit = variant("stored", trained["digits"][0], tmp_path, 0)
    os.rename(digit, tmp_path / os.fsdecode(b"bad\xff.png"))
    env = {**clean_env(tmp_path), "PYTHONIOENCODING": "utf-8:strict"}
    for extra in ((), ("--json",)):
        result = run_mlp("predict", "--checkpoint", trained["path"], *extra,
                         os.fsdecode(b"bad\xff.png"), os.fsdecode(b"gone\xff.png"),
                         cwd=tmp_path, env=env)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr == "mlp: error: gone\ufffd.png: no such file\n"
        if extra:
            assert json.loads(result.stdout)["file"] == "bad\ufffd.png"
        else:
            assert result.stdout.startswith(f"bad\ufffd.png: {trained['expected'][0]} (")


def test_running_out_of_memory_is_one_line_per_image(trained: dict, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory runs out decoding one image (the 30 x 30 one) and predicting another (the third
    file): each is one line, and the others are predicted."""
    files = [variant("stored", d, tmp_path, i) for i, d in enumerate(trained["digits"][:4])]
    Image.fromarray(np.zeros((30, 30), dtype=np.uint8)).save(tmp_path / "huge.png")
    files.insert(1, tmp_path / "huge.png")
    transpose, forward, calls = ImageOps.exif_transpose, mlp.cli.predict.probabilities, []

    def decode(img: Image.Image) -> Image.Image:
        if img.size == (30, 30):
            raise MemoryError
        return transpose(img)

    def predict_proba(model: object, pixels: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError
        return forward(model, pixels)

    monkeypatch.setattr(ImageOps, "exif_transpose", decode)
    monkeypatch.setattr(mlp.cli.predict, "probabilities", predict_proba)
    status, out, err = predict("--checkpoint", str(trained["path"]), *map(str, files),
                               capsys=capsys)
    assert status == 1
    assert err.splitlines() == [f"mlp: error: {files[1]}: not enough memory to decode the image",
                                f"mlp: error: {files[2]}: not enough memory to predict it"]
    predicted = [int(line.split(": ")[1].split()[0]) for line in out.splitlines()]
    assert predicted == [trained["expected"][0], *trained["expected"][2:4]]


def test_a_page_covered_in_ink_is_a_warning_line(trained: dict, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    page = np.full((60, 60), 255, dtype=np.uint8)
    for row in range(4, 56, 8):
        page[row : row + 6, 4:56] = 0  # thick bars over most of the page
    Image.fromarray(page).save(tmp_path / "bars.png")
    status, out, err = predict("--checkpoint", str(trained["path"]), str(tmp_path / "bars.png"),
                               capsys=capsys)
    assert status == 0 and len(out.splitlines()) == 1
    assert err.startswith(f"mlp: warning: {tmp_path / 'bars.png'}: the digit covers ")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_evaluate_and_predict_report_errors_alike(command: str, trained: dict,
                                                  tmp_path: Path) -> None:
    """A bad checkpoint is ``mlp: error: ...`` and exit 1, a device the backend lacks a usage
    error of the command and exit 2, for both commands."""
    file = variant("stored", trained["digits"][0], tmp_path, 0)
    images = [file] if command == "predict" else []
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    result = run_mlp(command, "--checkpoint", "bad.safetensors", *images, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("mlp: error: invalid checkpoint bad.safetensors: ")
    assert len(result.stderr.splitlines()) == 1
    result = run_mlp(command, "--checkpoint", trained["path"], "--device", "cuda:0", *images,
                     cwd=tmp_path)
    assert result.returncode == 2
    assert_usage_error(result.stderr, f"mlp {command}", "runs on device 'cpu' only")


def test_evaluate_prints_a_checkpoint_name_that_is_not_utf8(trained: dict,
                                                           tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff.safetensors")
    (tmp_path / name).write_bytes(Path(trained["path"]).read_bytes())
    env = {**clean_env(tmp_path), "PYTHONIOENCODING": "utf-8:strict"}
    result = run_mlp("evaluate", "--checkpoint", name, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bad\ufffd.safetensors: mnist test set, 10000 images")


def test_predict_and_evaluate_read_the_parameters_only(trained: dict, monkeypatch,
                                                       capsys) -> None:
    """Neither command reads the optimizer state it never uses (a checkpoint's Adam moments
    are twice its parameters)."""
    from mlp.cli import main

    loads = []
    load = checkpoint.load

    def recording_load(*args, **kwargs):
        loads.append(kwargs.get("parameters_only", False))
        return load(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "load", recording_load)
    image = variant("stored", trained["digits"][0], trained["folder"], 0)
    assert main(["predict", "--checkpoint", str(trained["path"]), str(image)]) == 0
    assert main(["evaluate", "--checkpoint", str(trained["path"])]) == 0
    assert loads == [True, True]
    assert "test accuracy" in capsys.readouterr().out
