"""``mlp export``: a checkpoint's network as an ONNX model (see :mod:`mlp.export`).

The model runs in any ONNX runtime: ``x (N, inputs)`` in, ``proba`` or ``logits`` ``(N, C)``
out, ``N`` free. Its input is features in the checkpoint's dtype (pixels in ``[0, 1]``), or
with ``--pixels`` uint8 pixels 0..255 scaled by 1/255 inside the graph. The output file is
checked before the checkpoint is read (an existing file needs ``--overwrite``; a folder, FIFO or
link is never replaced) and appears whole or not at all.
"""

from __future__ import annotations

import argparse
import os

from ..files import shown
from .outputs import check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``export``'s options to ``parser`` (a subcommand's parser)."""
    from ..export import OUTPUTS

    parser.add_argument("--checkpoint", required=True, metavar="FILE",
                        help="a checkpoint written by mlp train --save")
    parser.add_argument("--onnx", required=True, metavar="OUT",
                        help="the ONNX file to write (e.g. mnist.onnx)")
    parser.add_argument("--output", choices=OUTPUTS, default="proba",
                        help="what the model returns: class probabilities (default) or the "
                        "logits (not for a network that ends in a softmax)")
    parser.add_argument("--pixels", action="store_true",
                        help="take uint8 pixels 0..255 and scale them by 1/255 in the graph "
                        "(default: features in the checkpoint's dtype, pixels in [0, 1])")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUT file")


def run(args: argparse.Namespace) -> int:
    """Export ``args.checkpoint`` to ``args.onnx``; prints one summary line."""
    from .. import checkpoint
    from ..export import to_onnx

    check_output(args.onnx, "--onnx", args.overwrite)
    model = checkpoint.restore(checkpoint.load(args.checkpoint, parameters_only=True))
    proto = to_onnx(model, args.onnx, output=args.output, pixels=args.pixels,
                    overwrite=args.overwrite)
    given = dict((p.key, p.value) for p in proto.metadata_props)
    size = os.path.getsize(args.onnx)
    print(f"{shown(args.onnx)}: {len(proto.graph.node)} ONNX nodes, {size / 1e6:.1f} MB; "
          f"input {given['input']}; output {given['output']}")
    return 0


__all__ = ["add_arguments", "run"]
