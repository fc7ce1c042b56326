"""Turn a picture of a handwritten digit into an MNIST-like input.

MNIST was made from NIST scans by fitting each digit into a 20 x 20 box (aspect ratio kept,
anti-aliased, hence grey levels) and placing that box in a 28 x 28 field so that the digit's
centre of mass falls on the field's centre (LeCun, Cortes and Burges). :func:`to_mnist` repeats
those steps on any grey image:

1. **Polarity.** MNIST digits are light (255) on a dark (0) background. The background level
   is the median of the image's outermost ring of pixels; when it is lighter than mid-grey
   (>= 128) the image is inverted, so a dark pen on white paper becomes light on dark.
2. **Background and contrast.** The background level is subtracted (paper that is light grey
   becomes 0, not 25) and the darkest-to-brightest ink is stretched to 0..255.
3. **Crop.** The digit's bounding box is that of the pixels brighter than :data:`NOISE_LEVEL`
   (specks of JPEG ringing or paper grain below it do not widen the box).
4. **Scale.** The longer side of the box becomes :data:`BOX` = 20 pixels, the other keeps the
   aspect ratio; shrinking averages areas (``BOX`` filter, the anti-aliasing of a scanner),
   enlarging uses Lanczos.
5. **Centre.** The 20-pixel patch goes into a 28 x 28 field at the whole-pixel offset that
   brings its centre of mass closest to pixel (14, 14), MNIST's own centre (the test images'
   centres of mass all lie within half a pixel of it).

A digit already in MNIST's format comes back unchanged: its box is 20 pixels long, and its
centre of mass is within half a pixel of (14, 14), so nothing is scaled or moved.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from .errors import DataError

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
#: Background lighter than this (0..255) means dark ink on light paper.
LIGHT_BACKGROUND = 128


class ImageError(DataError):
    """An image file that cannot be read or holds no digit."""


def read_gray(path: str | os.PathLike[str]) -> np.ndarray:
    """The image in ``path`` (PNG, JPEG or anything Pillow reads) as grey levels.

    Returns a ``(H, W)`` uint8 array. EXIF orientation is applied; transparent pixels are
    composited over white (a drawing on a transparent canvas is ink on paper). The first frame
    of an animated file is used.

    Raises:
        ImageError: the file is missing, unreadable, not an image, or too large to decode.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img)
                if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                    rgba = img.convert("RGBA")
                    img = Image.new("RGBA", rgba.size, "white")
                    img.alpha_composite(rgba)
                gray = np.asarray(img.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read (PNG, JPEG, ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: image too large ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ImageError(f"{path}: cannot read the image ({reason})") from None
    return gray


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """An MNIST-like ``(784,)`` uint8 vector (light digit on black) from a ``(H, W)`` uint8
    grey image, by the steps in this module's description.

    Raises:
        ValueError: ``gray`` is not a 2-d array, or holds no ink (a blank image).
    """
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"expected a non-empty 2-d grey image, got shape {gray.shape}")
    ink = _ink(gray)
    rows, cols = np.nonzero(ink >= NOISE_LEVEL)
    if rows.size == 0:
        raise ValueError("no digit found: the image is blank")
    patch = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    patch = _scale_to_box(patch)
    return _centre_by_mass(patch).reshape(SIZE * SIZE)


def read_digit(path: str | os.PathLike[str]) -> np.ndarray:
    """:func:`read_gray` then :func:`to_mnist`: the ``(784,)`` uint8 input for ``path``.

    Raises:
        ImageError: the file cannot be read or holds no digit.
    """
    try:
        return to_mnist(read_gray(path))
    except ValueError as exc:
        raise ImageError(f"{path}: {exc}") from None


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink as float64 in 0..255 on a 0 background: inverted if needed, background removed,
    contrast stretched."""
    x = gray.astype(np.float64)
    border = np.concatenate([x[0, :], x[-1, :], x[:, 0], x[:, -1]])
    background = float(np.median(border))
    if background >= LIGHT_BACKGROUND:
        x, background = 255.0 - x, 255.0 - background
    x = np.clip(x - background, 0.0, None)
    top = float(x.max())
    return x * (255.0 / top) if 0 < top < FAINT else x


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


__all__ = ["BOX", "SIZE", "ImageError", "read_digit", "read_gray", "to_mnist"]
