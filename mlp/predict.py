"""``mlp predict``: the digit in each of the user's image files, by a trained checkpoint.

Each image becomes an MNIST-like input (:mod:`mlp.images`), scaled by the training pixel scale,
and goes through the model's forward pass; probabilities are the softmax of the logits (or the
output itself for a model ending in softmax). Output, per readable file, in the order given:

* text: ``digit.png: 7 (99.1 %)``, or with ``--top 3``
  ``digit.png: 7 (99.1 %), 1 (0.5 %), 9 (0.2 %)``;
* ``--json``: one JSON object per line (JSON Lines), e.g.
  ``{"file": "digit.png", "prediction": 7, "probability": 0.991,
  "top": [{"class": 7, "probability": 0.991}, ...]}`` with ``--top`` entries in ``top``.

An unreadable image is one error line on stderr naming the file; the other files are still
predicted and the exit status is 1. A bad checkpoint or backend is one line, exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import backends

from .errors import MLPError
from .images import SIZE, ImageError, read_digit

PROG = "mlp predict"


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
    image or the checkpoint could not be used)."""
    from . import checkpoint

    debug = getattr(args, "debug", False)
    try:
        ckpt = checkpoint.load(args.checkpoint)
        model = checkpoint.restore(ckpt, backend=args.backend, device=args.device)
    except (MLPError, backends.BackendError) as exc:
        if debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if model.sizes[0] != SIZE * SIZE:
        print(f"{PROG}: error: {args.checkpoint}: the model takes {model.sizes[0]} inputs, "
              f"not {SIZE}x{SIZE} images", file=sys.stderr)
        return 1

    status = 0
    k = min(args.top, model.sizes[-1])
    for path in args.images:
        try:
            pixels = read_digit(path)
        except ImageError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        p = probabilities(model, pixels[None, :])[0]
        # Most likely first; ties keep the lower class first, as argmax does.
        best = sorted(range(len(p)), key=lambda c: -float(p[c]))[:k]
        print(_format(str(path), best, p, args.json), flush=True)
    return status


def _format(path: str, best: list[int], p: Any, as_json: bool) -> str:
    if as_json:
        top = [{"class": c, "probability": float(p[c])} for c in best]
        return json.dumps({"file": path, "prediction": best[0],
                           "probability": float(p[best[0]]), "top": top})
    return f"{path}: " + ", ".join(f"{c} ({100 * float(p[c]):.1f} %)" for c in best)


__all__ = ["add_arguments", "probabilities", "run"]
