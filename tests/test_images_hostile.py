"""Tests of :mod:`mlp.images` on files a digit reader must refuse or read with care: devices,
canvases declaring far more pixels than they hold, every pixel mode Pillow opens (16-bit,
32-bit and floating-point grey included), files that make Pillow warn, non-UTF-8 names and a
decoder that runs out of memory.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
import pytest
from PIL import Image, ImageOps

from mlp import data, images
from mlp.images import MAX_PIXELS, WORK_SIDE, ImageError, read_digit, read_gray, to_gray, to_mnist


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    """MNIST test digit 0 (a 7), ``(28, 28)`` uint8, light on dark."""
    return data.load("mnist").x_test[0].reshape(28, 28)


def chunk(kind: bytes, payload: bytes) -> bytes:
    """A PNG chunk: length, type, payload, CRC."""
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def grey_png(width: int, height: int, extra: bytes = b"") -> bytes:
    """A valid 8-bit grey PNG of zeros (``extra`` chunks after the header), compressed row by
    row so that a 9400 x 9400 one is about 86 KB without ever existing in memory."""
    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def test_a_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="/dev/null: it is a device, not a regular file"):
        read_gray("/dev/null")


def test_huge_canvases_are_refused_before_decoding(tmp_path: Path) -> None:
    """A 35-byte GIF and an 86 KB PNG that declare 9400 x 9400 pixels (88 M, just under
    Pillow's own limit) are refused from their headers, before any pixel is decoded."""
    gif = (b"GIF89a" + struct.pack("<HH", 9400, 9400) + b"\x80\x00\x00\x00\x00\x00\xff\xff\xff"
           b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
    png = grey_png(9400, 9400)
    assert len(gif) == 35 and len(png) < 100_000
    for name, content in (("canvas.gif", gif), ("canvas.png", png)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ImageError, match=f"{name}: 9400 x 9400 pixels is too large for a "
                                             "digit"):
            read_digit(tmp_path / name)


def test_pillows_own_bomb_limit_is_our_line(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(grey_png(20000, 10000))  # past Pillow's error limit
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="bomb.png: .*too large for a digit"):
            read_gray(tmp_path / "bomb.png")
    assert shown == []


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(digit: np.ndarray, tmp_path: Path) -> None:
    """4800 x 4800 pixels (more than MAX_PIXELS) is read at JPEG's reduced scale, then
    reduced to at most WORK_SIDE pixels a side: the digit still reads as the stored one."""
    side = 4800
    assert side * side > MAX_PIXELS
    page = Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BILINEAR)
    page.save(tmp_path / "big.jpg", quality=85)
    gray = read_gray(tmp_path / "big.jpg")
    assert max(gray.shape) <= WORK_SIDE and gray.shape[0] == gray.shape[1]
    got = read_digit(tmp_path / "big.jpg").astype(float)
    assert np.abs(got - to_mnist(digit).astype(float)).mean() < 20


def test_a_large_png_is_reduced(digit: np.ndarray, tmp_path: Path) -> None:
    Image.fromarray(255 - digit).resize((2100, 2100), Image.Resampling.BILINEAR).save(
        tmp_path / "big.png")
    assert read_gray(tmp_path / "big.png").shape == (700, 700)  # reduced by 3


# --- pixel modes ----------------------------------------------------------------------------


def _tiff_unsigned_32(values: np.ndarray) -> bytes:
    """A 32-bit unsigned integer TIFF (Pillow writes only signed ones: its SampleFormat tag is
    patched from 2, signed, to 1, unsigned)."""
    out = io.BytesIO()
    Image.fromarray(values.astype(np.uint32).view(np.int32)).save(out, "TIFF")
    signed = struct.pack("<HHI", 339, 3, 1) + struct.pack("<HH", 2, 0)
    assert out.getvalue().count(signed) == 1
    return out.getvalue().replace(signed, struct.pack("<HHI", 339, 3, 1) + struct.pack("<HH", 1, 0))


def _grey_palette(paper: np.ndarray) -> Image.Image:
    img = Image.frombytes("P", paper.shape[::-1], paper.tobytes())
    img.putpalette([level for i in range(256) for level in (i, i, i)])
    return img


def _save(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


#: (case, file format, mode Pillow opens it in, the file's bytes from the dark-on-light page).
MODES: list[tuple[str, str, Callable[[np.ndarray], bytes]]] = [
    ("1 png", "1", lambda p: _save(Image.fromarray(p).convert("1", dither=Image.Dither.NONE),
                                   "PNG")),
    ("L png", "L", lambda p: _save(Image.fromarray(p), "PNG")),
    ("P png", "P", lambda p: _save(_grey_palette(p), "PNG")),
    ("P gif", "P", lambda p: _save(_grey_palette(p), "GIF")),
    ("PA tiff", "PA", lambda p: _save(_grey_palette(p).convert("PA"), "TIFF")),
    ("LA png", "LA", lambda p: _save(Image.fromarray(p).convert("LA"), "PNG")),
    ("RGB png", "RGB", lambda p: _save(Image.fromarray(p).convert("RGB"), "PNG")),
    ("RGBA png", "RGBA", lambda p: _save(Image.fromarray(p).convert("RGBA"), "PNG")),
    ("CMYK tiff", "CMYK", lambda p: _save(Image.fromarray(p).convert("CMYK"), "TIFF")),
    ("YCbCr tiff", "YCbCr", lambda p: _save(Image.fromarray(p).convert("RGB").convert("YCbCr"),
                                            "TIFF")),
    ("LAB tiff", "LAB", lambda p: _save(Image.merge("LAB", [Image.fromarray(p),
                                                            Image.new("L", p.shape, 128),
                                                            Image.new("L", p.shape, 128)]),
                                        "TIFF")),
    ("I;16 png", "I;16", lambda p: _save(Image.fromarray(p.astype(np.uint16) * 257), "PNG")),
    ("I;16B tiff", "I;16B", lambda p: _save(Image.fromarray((p.astype(np.uint16) * 257)
                                                            .astype(">u2")), "TIFF")),
    ("I 16-bit pgm", "I", lambda p: b"P5 28 28 65535\n" + (p.astype(">u2") * 257).tobytes()),
    ("I 16-bit values tiff", "I", lambda p: _save(Image.fromarray(p.astype(np.int32) * 257),
                                                  "TIFF")),
    ("I signed full-range tiff", "I", lambda p: _save(
        Image.fromarray(p.astype(np.int32) * ((2**31 - 1) // 255)), "TIFF")),
    ("I unsigned full-range tiff", "I", lambda p: _tiff_unsigned_32(
        p.astype(np.uint64) * ((2**32 - 1) // 255))),
    ("F [0, 1] tiff", "F", lambda p: _save(Image.fromarray(p.astype(np.float32) / 255), "TIFF")),
    ("F [0, 255] tiff", "F", lambda p: _save(Image.fromarray(p.astype(np.float32)), "TIFF")),
]


def test_the_cases_cover_every_mode_pillow_opens_files_in() -> None:
    """The modes Pillow decodes files into: all of Pillow's modes but HSV, La, RGBa, RGBX and
    I;16N, which exist only in memory, and I;16L, which only the deprecated IM format decodes
    into (all are tested on to_gray below)."""
    from_files = set(Image.MODES) - {"HSV", "La", "RGBa", "RGBX", "I;16N", "I;16L"}
    assert {mode for _, mode, _ in MODES} == from_files


@pytest.mark.parametrize(("case", "mode", "make"), MODES, ids=[case for case, _, _ in MODES])
def test_every_mode_reads_as_its_grey_levels(case: str, mode: str,
                                             make: Callable[[np.ndarray], bytes],
                                             digit: np.ndarray, tmp_path: Path) -> None:
    """A dark-on-light page in any mode reads as its 8-bit grey levels: deeper modes are scaled
    by their range (a 16-bit 7 is not clipped into a white square, a float page in [0, 1] is
    not blank), so the digit reads as the stored one."""
    if mode == "YCbCr" and int(PIL.__version__.split(".")[0]) < 13:
        pytest.skip(f"Pillow {PIL.__version__} cannot read back the YCbCr TIFF it writes")
    paper = 255 - digit
    path = tmp_path / "page"
    path.write_bytes(make(paper))
    with Image.open(path) as img:
        assert img.mode == mode
    expected = np.where(paper >= 128, 255, 0) if mode == "1" else paper.astype(int)
    got = read_gray(path).astype(int)
    tolerance = 2 if mode in ("YCbCr", "LAB") else 0
    if mode == "LAB":  # its L band is lightness, whose grey is not the same number
        expected = np.asarray(Image.open(path).convert("RGB").convert("L"), dtype=int)
    assert np.abs(got - expected).max() <= tolerance, case
    if mode != "1":
        want = to_mnist(expected.astype(np.uint8)).astype(int)
        assert np.abs(read_digit(path).astype(int) - want).max() <= 2 * tolerance, case


@pytest.mark.parametrize("mode", Image.MODES)
def test_to_gray_takes_every_mode(mode: str, digit: np.ndarray) -> None:
    paper = Image.fromarray(255 - digit)
    if mode == "La":
        img = Image.merge("La", [paper, Image.new("L", paper.size, 255)])
    elif mode.startswith("I;16"):
        img = Image.frombytes(mode, paper.size, (np.asarray(paper, dtype="<u2" if mode != "I;16B"
                                                            else ">u2") * 257).tobytes())
    elif mode == "I":
        img = Image.fromarray(np.asarray(paper, dtype=np.int32) * 257)
    elif mode == "F":
        img = Image.fromarray(np.asarray(paper, dtype=np.float32) / 255)
    elif mode == "LAB":
        img = Image.merge("LAB", [paper, Image.new("L", paper.size, 128),
                                  Image.new("L", paper.size, 128)])
    elif mode in ("HSV", "YCbCr", "RGBa"):
        img = paper.convert("RGBA").convert(mode)
    else:
        img = paper.convert(mode, dither=Image.Dither.NONE)
    assert img.mode == mode
    got = to_gray(img)
    assert got.shape == (28, 28) and got.dtype == np.float32
    if mode == "1":
        expected = np.where(255 - digit >= 128, 255, 0)
    elif mode == "LAB":
        expected = np.asarray(img.convert("RGB").convert("L"), dtype=int)
    else:
        expected = 255 - digit.astype(int)
    assert np.abs(got - expected).max() <= 2, mode


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_float_image_with_nan_or_infinity_is_refused(bad: float, tmp_path: Path) -> None:
    values = np.ones((28, 28), dtype=np.float32)
    values[3, 4] = bad
    Image.fromarray(values).save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match="nan.tif: cannot read the image .*NaN or infinite"):
        read_gray(tmp_path / "nan.tif")


# --- Pillow's warnings, memory, names -------------------------------------------------------


def test_pillows_warnings_are_not_shown(digit: np.ndarray, tmp_path: Path) -> None:
    """An APNG control chunk declaring no frames makes Pillow warn; the page is still read."""
    png = _save(Image.fromarray(255 - digit), "PNG")
    invalid_apng = chunk(b"acTL", struct.pack(">II", 0, 0))
    at = png.index(b"IDAT") - 4  # before the image data chunk's length
    (tmp_path / "warns.png").write_bytes(png[:at] + invalid_apng + png[at:])
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        gray = read_gray(tmp_path / "warns.png")
    assert shown == []
    np.testing.assert_array_equal(gray, 255 - digit)


def test_running_out_of_memory_while_decoding_is_an_image_error(
        digit: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(img: Image.Image) -> Image.Image:
        raise MemoryError

    Image.fromarray(digit).save(tmp_path / "big.png")
    monkeypatch.setattr(ImageOps, "exif_transpose", exhausted)
    with pytest.raises(ImageError, match="big.png: not enough memory to decode the image"):
        read_digit(tmp_path / "big.png")


def test_names_that_are_not_utf8_print_under_a_strict_encoding(tmp_path: Path) -> None:
    missing = tmp_path / "gone\udcff.png"  # the file name b"gone\xff.png"
    with pytest.raises(ImageError) as caught:
        read_digit(missing)
    message = str(caught.value)
    assert "gone\ufffd.png: no such file" in message
    message.encode("utf-8")  # strict: no lone surrogate left
    assert images.shown(b"bad\xff.png") == "bad\ufffd.png"


def test_a_page_covered_in_ink_is_warned_about() -> None:
    page = np.full((60, 60), 255, dtype=np.uint8)
    for row in range(4, 56, 8):
        page[row : row + 6, 4:56] = 0  # thick bars over most of the page
    with pytest.warns(images.ImageWarning, match="the digit covers [0-9]+ % of the image"):
        to_mnist(page)
