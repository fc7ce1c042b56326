"""Tests of :mod:`mlp.images` on PNGs and JPEGs written from real MNIST test digits.

The exact claims: inverting the colours, or putting the digit anywhere on a larger black
canvas, gives the very same input as the stored digit; a stored digit whose faint fringe lies
inside the box of its ink above :data:`~mlp.images.NOISE_LEVEL` comes back unchanged (its box is
20 pixels long and its centre of mass within half a pixel of the centre, as MNIST made it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlp import data
from mlp.images import NOISE_LEVEL, ImageError, read_digit, read_gray, to_mnist

SAMPLE = 50


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """The first :data:`SAMPLE` MNIST test digits, ``(SAMPLE, 28, 28)`` uint8."""
    return data.load("mnist").x_test[:SAMPLE].reshape(-1, 28, 28)


def write(path: Path, pixels: np.ndarray, **options: object) -> Path:
    Image.fromarray(pixels).save(path, **options)
    return path


def fringe_inside_box(digit: np.ndarray) -> bool:
    """Every nonzero pixel lies in the bounding box of the pixels >= NOISE_LEVEL."""
    rows, cols = np.nonzero(digit >= NOISE_LEVEL)
    outside = digit.copy()
    outside[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = 0
    return not outside.any()


def test_stored_digit_comes_back_unchanged(digits: np.ndarray, tmp_path: Path) -> None:
    exact = [i for i, d in enumerate(digits) if fringe_inside_box(d)]
    assert len(exact) >= SAMPLE // 2  # the claim below is about most digits, not a few
    for i in exact:
        got = read_digit(write(tmp_path / f"{i}.png", digits[i]))
        np.testing.assert_array_equal(got, digits[i].reshape(784), err_msg=f"digit {i}")


def test_dark_on_light_is_inverted_exactly(digits: np.ndarray, tmp_path: Path) -> None:
    for i, d in enumerate(digits):
        light = read_digit(write(tmp_path / "light.png", d))
        dark = read_digit(write(tmp_path / "dark.png", 255 - d))
        np.testing.assert_array_equal(dark, light, err_msg=f"digit {i}")


def test_off_centre_on_a_larger_canvas(digits: np.ndarray, tmp_path: Path) -> None:
    for i, d in enumerate(digits):
        canvas = np.zeros((60, 45), dtype=np.uint8)
        canvas[30:58, 2:30] = d  # bottom left
        got = read_digit(write(tmp_path / "canvas.png", canvas))
        np.testing.assert_array_equal(got, to_mnist(d), err_msg=f"digit {i}")


def test_scaled_and_jpeg_stay_close(digits: np.ndarray, tmp_path: Path) -> None:
    """Resampling and JPEG change pixels; the result stays near the original (mean absolute
    difference well under the 255 scale). Predictions are compared in test_predict."""
    for i, d in enumerate(digits):
        big = np.asarray(Image.fromarray(d).resize((112, 112), Image.Resampling.BICUBIC))
        for path in (write(tmp_path / "big.png", 255 - big),
                     write(tmp_path / "d.jpg", d, quality=90)):
            got = read_digit(path).astype(float)
            assert np.abs(got - d.reshape(784)).mean() < 20, (i, path.name)


def test_faint_digit_on_grey_paper_is_stretched(digits: np.ndarray) -> None:
    d = digits[0].astype(float)
    paper = np.rint(200 - d * 80 / 255).astype(np.uint8)  # pencil on grey paper
    got = to_mnist(paper).astype(float)
    assert got.max() == 255
    assert np.abs(got - to_mnist(digits[0])).max() <= 4


def test_transparent_canvas_is_paper(digits: np.ndarray, tmp_path: Path) -> None:
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = digits[1]  # black ink, opaque where the digit is
    got = read_gray(write(tmp_path / "t.png", rgba))
    assert np.abs(got.astype(int) - (255 - digits[1].astype(int))).max() <= 1


def test_unreadable_files_name_themselves(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="notes.png: not an image"):
        read_digit(text)
    with pytest.raises(ImageError, match="missing.png: no such file"):
        read_digit(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a folder"):
        read_digit(tmp_path)
    truncated = tmp_path / "cut.png"
    write(tmp_path / "whole.png", np.full((50, 50), 7, dtype=np.uint8))
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    with pytest.raises(ImageError, match="cut.png"):
        read_digit(truncated)


def test_blank_image_holds_no_digit(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="blank.png: no digit found"):
        read_digit(write(tmp_path / "blank.png", np.full((30, 30), 255, dtype=np.uint8)))
