"""``mlp predict``: the digit in each of the user's image files, by a trained checkpoint.

Each image becomes an MNIST-like input (:mod:`mlp.images`), scaled by the training pixel scale,
and goes through the model's forward pass; probabilities are the softmax of the logits (or the
output itself for a model ending in softmax). Output, per readable file, in the order given:

* text: ``digit.png: 7 (99.1 %)``, or with ``--top 3``
  ``digit.png: 7 (99.1 %), 1 (0.5 %), 9 (0.2 %)``;
* ``--json``: one JSON object per line (JSON Lines), e.g.
  ``{"file": "digit.png", "prediction": 7, "probability": 0.991,
  "top": [{"class": 7, "probability": 0.991}, ...]}`` with ``--top`` entries in ``top``.

An unreadable image (missing, not a regular file, too large, out of memory, no digit) is one
error line on stderr naming the file; the other files are still predicted and the exit status
is 1. A doubtful reading (the "digit" covers most of the image) is one warning line, and the
file is predicted. File names that are not UTF-8 are printed with U+FFFD for their undecodable
bytes. A bad checkpoint is one line ``mlp: error: ...``, exit 1, and a backend that cannot be
used a usage error, exit 2, as for ``mlp evaluate``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any, TextIO

import backends

from ..errors import CheckpointError, UsageError
from ..images import SIZE, ImageError, read_digit, shown


def _top(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return k


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``predict``'s options and arguments to ``parser`` (a subcommand's parser)."""
    parser.add_argument("--checkpoint", required=True, metavar="FILE",
                        help="a checkpoint written by mlp train --save")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="PNG or JPEG files, one digit each (dark on light or light on dark)")
    parser.add_argument("--top", type=_top, default=1, metavar="K",
                        help="print the K most likely classes with their probabilities "
                        "(default 1)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per file and line instead of text")
    parser.add_argument("--backend", choices=backends.NAMES, default=backends.DEFAULT,
                        help="array library to run the model on (default numpy)")
    parser.add_argument("--device", default=None,
                        help="device, e.g. 0 or cuda:1 for GPUs (default: the backend's default)")


def probabilities(model: Any, pixels: Any) -> Any:
    """Class probabilities ``(N, classes)`` in the model dtype, a host NumPy array, for
    ``pixels`` ``(N, 784)`` uint8: :meth:`~mlp.MLP.predict_proba` on the model's backend."""
    return model.backend.to_numpy(model.predict_proba(pixels))


def run(args: argparse.Namespace) -> int:
    """Predict every image in ``args.images``; returns the exit status (0, or 1 when any
    image could not be used).

    Raises:
        CheckpointError: the checkpoint cannot be used (the caller prints it as one line).
        UsageError: the backend or device cannot be used.
    """
    from .. import checkpoint

    ckpt = checkpoint.load(args.checkpoint, parameters_only=True)
    inputs = ckpt.config["sizes"][0]
    if inputs != SIZE * SIZE:
        raise CheckpointError(f"checkpoint {shown(args.checkpoint)} takes {inputs} inputs, "
                              f"not {SIZE}x{SIZE} images")
    try:
        model = checkpoint.restore(ckpt, backend=args.backend, device=args.device)
    except backends.BackendError as exc:
        raise UsageError(str(exc)) from None

    status = 0
    k = min(args.top, model.sizes[-1])
    for path in args.images:
        try:
            with warnings.catch_warnings(record=True) as doubts:
                warnings.simplefilter("always")
                pixels = read_digit(path)
            p = probabilities(model, pixels[None, :])[0]
        except ImageError as exc:
            _say(f"mlp: error: {exc}", sys.stderr)
            status = 1
            continue
        except MemoryError:
            _say(f"mlp: error: {shown(path)}: not enough memory to predict it", sys.stderr)
            status = 1
            continue
        for doubt in doubts:
            _say(f"mlp: warning: {doubt.message}", sys.stderr)
        # Most likely first; ties keep the lower class first, as argmax does.
        best = sorted(range(len(p)), key=lambda c: -float(p[c]))[:k]
        _say(_format(shown(path), best, p, args.json), sys.stdout)
    return status


def _say(line: str, stream: TextIO) -> None:
    """Print ``line`` on ``stream``; what its encoding cannot show becomes ``?``."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(line.encode(encoding, "replace").decode(encoding), file=stream, flush=True)


def _format(path: str, best: list[int], p: Any, as_json: bool) -> str:
    if as_json:
        top = [{"class": c, "probability": float(p[c])} for c in best]
        return json.dumps({"file": path, "prediction": best[0],
                           "probability": float(p[best[0]]), "top": top})
    return f"{path}: " + ", ".join(f"{c} ({100 * float(p[c]):.1f} %)" for c in best)


__all__ = ["add_arguments", "probabilities", "run"]
