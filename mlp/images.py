"""Turn a picture of a handwritten digit into an MNIST-like input.

MNIST was made from NIST scans by fitting each digit into a 20 x 20 box (aspect ratio kept,
anti-aliased, hence grey levels) and placing that box in a 28 x 28 field so that the digit's
centre of mass falls on the field's centre (LeCun, Cortes and Burges). :func:`to_mnist` repeats
those steps on any grey image, after taking out the page's uneven lighting:

1. **Polarity.** MNIST digits are light (255) on a dark (0) background. The page is judged by
   the median of the image's outermost ring of pixels: when it lies nearer the image's
   lightest level than its darkest, the page is light and the image is inverted, so a dark pen
   on white paper becomes light on dark (a page darkened by dim light or vignetting is still
   light paper).
2. **Background.** The page's own level is estimated at every pixel by a grey-level opening
   (the largest level reachable under windows about half the image across, which no stroke
   fills): a ramp of light, a vignette or a shadow reaching the border are kept in it, strokes
   are not. On light paper each pixel's darkening is taken relative to the paper there (a
   photo's ink in a shadow is as dark, relative to its paper, as in the light); a dark
   background is subtracted. A uniform page is a constant background, so the digit's levels
   are kept exactly.
3. **Noise.** Otsu's threshold splits ink from paper; the paper's grain (its median plus three
   robust standard deviations) is subtracted; ink whose brightest pixel is below
   :data:`FAINTEST` is no digit (a blank page). Faint ink is stretched to full scale.
4. **Crop.** The digit's bounding box is that of the pixels brighter than :data:`NOISE_LEVEL`
   (specks of JPEG ringing or paper grain below it do not widen the box). A "digit" covering
   more than :data:`MOSTLY_INK` of the image is kept but warned about (:class:`ImageWarning`):
   the page was probably not told apart from the ink.
5. **Scale.** The longer side of the box becomes :data:`BOX` = 20 pixels, the other keeps the
   aspect ratio; shrinking averages areas (``BOX`` filter, the anti-aliasing of a scanner),
   enlarging uses Lanczos.
6. **Centre.** The 20-pixel patch goes into a 28 x 28 field at the whole-pixel offset that
   brings its centre of mass closest to pixel (14, 14), MNIST's own centre (the test images'
   centres of mass all lie within half a pixel of it).

A digit already in MNIST's format comes back unchanged: its background is uniform, its box is
20 pixels long, and its centre of mass is within half a pixel of (14, 14), so nothing is scaled
or moved.

Reading (:func:`read_gray`) accepts only regular files (a FIFO or device is refused without
blocking), refuses images of more than :data:`MAX_PIXELS` pixels before decoding them (JPEGs are
first decoded at a reduced scale), and reduces what it decoded to :data:`WORK_SIDE` pixels on
the longer side. Images of more than 8 bits (16-bit and 32-bit integers, floating point) are
scaled by their own range, not clipped at 255.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageOps

from .errors import DataError
from .files import NotRegularFile, open_regular, shown

#: Side of MNIST's square images, in pixels.
SIZE = 28
#: Longer side of the box the digit is scaled into.
BOX = 20
#: Ink below this (0..255, after background removal and contrast stretch) does not count
#: towards the digit's bounding box.
NOISE_LEVEL = 32
#: Ink whose brightest pixel is below this (0..255) is faint (pencil, a grey photo) and is
#: stretched to full scale; brighter ink is kept as it is (MNIST's own peaks are 254 or 255).
FAINT = 224
#: Ink whose brightest pixel is below this (0..255, after the paper's grain is removed) is no
#: digit: a blank page.
FAINTEST = 24
#: A "digit" with more of the image's pixels than this above :data:`NOISE_LEVEL` is warned
#: about: the page has probably been taken for ink.
MOSTLY_INK = 0.5
#: Most pixels an image may have (counted after a JPEG's reduced decoding), far below Pillow's
#: own limit: a 12-megapixel photo fits; more is refused before it is decoded.
MAX_PIXELS = 4096 * 4096
#: Longer side, in pixels, that a larger decoded image is reduced to (by an integer factor,
#: averaging areas) before the digit is looked for.
WORK_SIDE = 1024
#: Longer side of the coarse grid on which the page's background is estimated.
_GRID = 128
#: Integer modes' candidate full scales: the smallest that holds the image's values is its range.
_FULL_SCALES = (2**8 - 1, 2**16 - 1, 2**31 - 1, 2**32 - 1)


class ImageError(DataError):
    """An image file that cannot be read or holds no digit."""


class ImageWarning(UserWarning):
    """A digit was read, but the result is doubtful (e.g. the page was taken for ink)."""


def read_gray(path: str | os.PathLike[str]) -> np.ndarray:
    """The image in ``path`` (PNG, JPEG or anything Pillow reads) as grey levels.

    Returns a ``(H, W)`` uint8 array. EXIF orientation is applied; transparent pixels are
    composited over white (a drawing on a transparent canvas is ink on paper). The first frame
    of an animated file is used. Images deeper than 8 bits are scaled by their range
    (:func:`to_gray`); images larger than :data:`WORK_SIDE` are reduced to it. Pillow's
    warnings are not shown.

    Raises:
        ImageError: the file is missing, not a regular file, unreadable, not an image, has
            more than :data:`MAX_PIXELS` pixels, or does not fit in memory.
    """
    name = shown(path)
    try:
        with open_regular(path) as file, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(file) as img:
                _draft(img)
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageError(f"{name}: {width} x {height} pixels is too large for a "
                                     f"digit (at most {MAX_PIXELS:,} pixels; scale it down)")
                unsigned = _unsigned_32(img)
                gray = _gray(ImageOps.exif_transpose(img), unsigned)
            return np.rint(_reduce(gray)).astype(np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except (IsADirectoryError, NotRegularFile) as exc:
        if os.path.isdir(path):
            raise ImageError(f"{name}: is a folder, not an image") from None
        raise ImageError(f"{name}: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read (PNG, JPEG, ...)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: too large for a digit (at most {MAX_PIXELS:,} pixels; "
                         "scale it down)") from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode the image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ImageError(f"{name}: cannot read the image ({reason})") from None


def to_gray(image: Image.Image) -> np.ndarray:
    """Grey levels ``(H, W)`` float32 in 0..255 of a Pillow image of any mode.

    Modes of 8 bits per channel are converted by Pillow (colour to luma, transparency composited
    over white). Deeper modes are scaled by their range instead of clipped at 255: ``I;16`` by
    65535; ``I`` (32-bit integers) by the smallest of 255, 65535, 2**31 - 1 and 2**32 - 1 that
    holds its values (its minimum and maximum when it has negative values); ``F`` by 1 when its
    values lie in [0, 1], as they are, in [0, 255], and by its minimum and maximum otherwise.

    Raises:
        ValueError: a floating-point image holds NaN or infinite values.
    """
    return _gray(image, _unsigned_32(image))


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """An MNIST-like ``(784,)`` uint8 vector (light digit on black) from a ``(H, W)`` grey
    image (uint8, or real numbers in 0..255), by the steps in this module's description.

    Warns:
        ImageWarning: the "digit" covers most of the image.

    Raises:
        ValueError: ``gray`` is not a 2-d array, or holds no ink (a blank image).
    """
    field, doubt = _to_mnist(gray)
    if doubt is not None:
        warnings.warn(doubt, ImageWarning, stacklevel=2)
    return field


def read_digit(path: str | os.PathLike[str]) -> np.ndarray:
    """:func:`read_gray` then :func:`to_mnist`: the ``(784,)`` uint8 input for ``path``.

    Warns:
        ImageWarning: ``path: ...`` when the "digit" covers most of the image.

    Raises:
        ImageError: the file cannot be read or holds no digit.
    """
    try:
        field, doubt = _to_mnist(read_gray(path))
    except ValueError as exc:
        raise ImageError(f"{shown(path)}: {exc}") from None
    except MemoryError:
        raise ImageError(f"{shown(path)}: not enough memory to read the digit") from None
    if doubt is not None:
        warnings.warn(f"{shown(path)}: {doubt}", ImageWarning, stacklevel=2)
    return field


# --- decoding -------------------------------------------------------------------------------


def _draft(img: Image.Image) -> None:
    """Ask a decoder that can (JPEG) for a reduced scale still at least :data:`WORK_SIDE`
    pixels on the longer side, in grey when it is a colour image."""
    width, height = img.size
    longer = max(width, height)
    if longer > WORK_SIDE:
        scale = WORK_SIDE / longer
        img.draft("L", (math.ceil(width * scale), math.ceil(height * scale)))


def _unsigned_32(img: Image.Image) -> bool:
    """Whether a 32-bit integer image holds unsigned values (TIFF's SampleFormat 1, the
    default), which Pillow's mode ``I`` stores as signed."""
    if img.mode != "I" or getattr(img, "format", None) != "TIFF":
        return False
    tags = getattr(img, "tag_v2", {})
    return tuple(tags.get(339, (1,)))[:1] == (1,) and tuple(tags.get(258, (32,)))[:1] == (32,)


def _gray(img: Image.Image, unsigned: bool) -> np.ndarray:
    mode = img.mode
    if mode == "F" or mode.startswith("I"):
        values = np.asarray(img)
        if unsigned:
            values = values.view(np.uint32)
        return _scaled(values).astype(np.float32)
    if mode == "La":  # premultiplied: over white, a pixel is its level plus the white let through
        level, alpha = (np.asarray(band, dtype=np.float32) for band in img.split())
        return np.clip(level + 255 - alpha, 0, 255)
    if mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.new("RGBA", rgba.size, "white")
        img.alpha_composite(rgba)
    elif mode == "LAB":  # Pillow converts LAB to RGB only
        img = img.convert("RGB")
    return np.asarray(img.convert("L"), dtype=np.float32)


def _scaled(values: np.ndarray) -> np.ndarray:
    """Integer or floating-point grey levels mapped onto 0..255 by their range (float64)."""
    x = values.astype(np.float64)
    if x.size == 0:
        return x
    low, high = float(x.min()), float(x.max())
    if values.dtype.kind == "f" and not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("the image holds NaN or infinite values")
    if values.dtype.kind == "f" and low >= 0 and high <= 255:
        return x * 255.0 if high <= 1 else x
    if values.dtype.kind != "f" and low >= 0:
        return x * (255.0 / next(full for full in _FULL_SCALES if high <= full))
    # No range to read from the values' type: the image's own extremes are black and white.
    return (x - low) * (255.0 / (high - low)) if high > low else np.zeros_like(x)


def _reduce(gray: np.ndarray) -> np.ndarray:
    """``gray`` reduced by the integer factor that brings its longer side to at most
    :data:`WORK_SIDE` (each output pixel the mean of a block)."""
    factor = math.ceil(max(gray.shape) / WORK_SIDE)
    if factor <= 1:
        return gray
    return np.asarray(Image.fromarray(gray.astype(np.float32), "F").reduce(factor))


# --- the digit ------------------------------------------------------------------------------


def _to_mnist(gray: np.ndarray) -> tuple[np.ndarray, str | None]:
    """The ``(784,)`` field and, if the result is doubtful, why."""
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"expected a non-empty 2-d grey image, got shape {gray.shape}")
    ink = _ink(gray)
    strong = ink >= NOISE_LEVEL
    rows, cols = np.nonzero(strong)
    if rows.size == 0:
        raise ValueError("no digit found: the image is blank")
    doubt = None
    share = float(strong.mean())
    if share > MOSTLY_INK:
        doubt = (f"the digit covers {100 * share:.0f} % of the image: the page may have been "
                 "taken for ink (crop closer to the digit, or light the page evenly)")
    patch = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    patch = _scale_to_box(patch)
    return _centre_by_mass(patch).reshape(SIZE * SIZE), doubt


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink as float64 in 0..255 on a 0 background: inverted if needed, the page's lighting and
    grain removed, faint ink stretched."""
    x = gray.astype(np.float64)
    border = np.concatenate([x[0, :], x[-1, :], x[:, 0], x[:, -1]])
    page = float(np.median(border))
    darkest, lightest = float(x.min()), float(x.max())
    if lightest - page <= page - darkest and page > 0:  # light paper, dark ink
        paper = np.maximum(-_opening(-x), x)  # a closing: strokes darker than the page removed
        ink = (paper - x) * (255.0 / np.maximum(paper, 1.0))
    else:
        ink = x - np.minimum(_opening(x), x)
    ink = np.clip(ink - _grain(ink), 0.0, None)
    top = float(ink.max())
    if top < FAINTEST:
        return np.zeros_like(ink)
    return ink * (255.0 / top) if top < FAINT else ink


def _grain(ink: np.ndarray) -> float:
    """The paper's level in ``ink`` plus its noise: the median and three robust standard
    deviations (1.4826 median absolute deviations) of the pixels below Otsu's threshold."""
    paper = ink[ink <= _otsu(ink)]
    if paper.size == 0:
        return 0.0
    level = float(np.median(paper))
    return level + 3 * 1.4826 * float(np.median(np.abs(paper - level)))


def _otsu(x: np.ndarray) -> float:
    """Otsu's threshold of ``x`` (0..255): the level that maximises the between-class variance
    of a 256-bin histogram (values at or below it form the lower class)."""
    counts, edges = np.histogram(x, bins=256, range=(0.0, 255.0))
    levels = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * levels)
    total, total_mass = weight[-1], mass[-1]
    upper = total - weight
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * weight - total * mass) ** 2 / (weight * upper)
    between[(weight == 0) | (upper == 0)] = -1.0
    return float(edges[int(np.argmax(between)) + 1])


def _opening(x: np.ndarray) -> np.ndarray:
    """A grey-level opening of ``x``: at each pixel, the largest minimum over the square
    windows about half the image's longer side across that contain it (a window may reach past
    the image's edges; only its part inside counts). Bright features narrower than the window
    (strokes) are removed; ramps, vignettes and shadows reaching the border are kept. Large
    images are opened on a grid of at most :data:`_GRID` cells a side (each cell's minimum)
    and interpolated back."""
    h, w = x.shape
    cell = math.ceil(max(h, w) / _GRID)
    grid = x
    if cell > 1:
        padded = np.pad(x, ((0, -h % cell), (0, -w % cell)), mode="edge")
        grid = padded.reshape(padded.shape[0] // cell, cell, -1, cell).min(axis=(1, 3))
    side = 2 * max(1, max(grid.shape) // 4) + 1
    # Minima over the windows centred up to side // 2 outside the image (outside ignored), then
    # at each pixel the maximum of the minima of the windows that contain it.
    eroded = _window(np.pad(grid, side - 1, constant_values=np.inf), side, np.min)
    opened = _window(eroded, side, np.max)
    if cell > 1:
        size = (opened.shape[1] * cell, opened.shape[0] * cell)
        back = Image.fromarray(opened.astype(np.float32), "F").resize(
            size, Image.Resampling.BILINEAR)
        opened = np.asarray(back, dtype=np.float64)[:h, :w]
    return opened


def _window(x: np.ndarray, side: int, reduce: np.ufunc) -> np.ndarray:
    """``reduce`` (min or max) over each ``side`` x ``side`` square wholly inside ``x``."""
    rows = reduce(sliding_window_view(x, side, axis=0), axis=-1)
    return reduce(sliding_window_view(rows, side, axis=1), axis=-1)


def _scale_to_box(patch: np.ndarray) -> np.ndarray:
    """``patch`` (float, 0..255) resized so its longer side is :data:`BOX`, rounded to uint8."""
    h, w = patch.shape
    longer = max(h, w)
    size = (max(1, round(w * BOX / longer)), max(1, round(h * BOX / longer)))  # (W, H)
    img = Image.fromarray(np.rint(patch).astype(np.uint8))
    if (w, h) != size:
        shrink = longer > BOX
        img = img.resize(size, Image.Resampling.BOX if shrink else Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def _centre_by_mass(patch: np.ndarray) -> np.ndarray:
    """A ``(28, 28)`` uint8 field holding ``patch`` with its centre of mass nearest (14, 14)."""
    h, w = patch.shape
    mass = patch.astype(np.float64)
    total = mass.sum()
    cy = (mass.sum(axis=1) @ np.arange(h)) / total
    cx = (mass.sum(axis=0) @ np.arange(w)) / total
    centre = SIZE // 2
    # np.rint rounds halves to even, so a centre exactly half a pixel off stays where it is.
    top = int(np.clip(np.rint(centre - cy), 0, SIZE - h))
    left = int(np.clip(np.rint(centre - cx), 0, SIZE - w))
    field = np.zeros((SIZE, SIZE), dtype=np.uint8)
    field[top : top + h, left : left + w] = patch
    return field


__all__ = ["BOX", "SIZE", "ImageError", "ImageWarning", "read_digit", "read_gray", "shown",
           "to_gray", "to_mnist"]
