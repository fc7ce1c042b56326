"""The argument parser: one-line errors, checked numeric options, and the options of each command.

Choices come from the registries they name (backends, dtypes, datasets, activations, optimizer
and schedule names of :mod:`mlp.cli.settings`), so a new entry there is a new choice here.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, NoReturn

import backends

from .. import __version__
from ..data import DATASETS
from ..layers.activations import ACTIVATIONS
from .settings import DEFAULTS, OPTIMIZER_CHOICES, PRESETS, SCHEDULE_CHOICES, parse_hidden


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``mlp train: error: ... (see mlp train
    --help)``, exit status 2, no usage block. Sub-commands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{error_line(self.prog, message)}\n")


def error_line(prog: str, message: str) -> str:
    """The one line a usage error prints (newlines in ``message`` become spaces)."""
    return f"{prog}: error: {' '.join(message.split())} (see {prog} --help)"


def number(kind: type, low: float, high: float = math.inf, low_open: bool = False,
           high_open: bool = True) -> Any:
    """An argparse ``type`` accepting finite ``kind`` values within the given bounds."""
    name = "an integer" if kind is int else "a number"
    lo, hi = "(" if low_open else "[", ")" if high_open else "]"
    bounds = f"in {lo}{low:g}, {high:g}{hi}" if high != math.inf else (
        f"> {low:g}" if low_open else f">= {low:g}")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
        inside = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        if not inside or not math.isfinite(value):
            what = "an integer" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"must be {what} {bounds}, got {text}")
        return value

    return parse


positive_float = number(float, 0.0, low_open=True)
nonneg_float = number(float, 0.0)
rate = number(float, 0.0, 1.0)
positive_int = number(int, 1)
nonneg_int = number(int, 0)


class Hidden(argparse.Action):
    """``--hidden``: one value, checked and kept as text (settings store it as given). Several
    values (``--hidden 512 512``) are refused with the same hint as any other wrong form."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        text = " ".join(values)
        try:
            parse_hidden(text)
        except ValueError as exc:
            parser.error(f"argument {option_string}: {exc}")
        setattr(namespace, self.dest, text)


def add_train_arguments(t: argparse.ArgumentParser) -> None:
    """The options of ``mlp train``; absent options stay absent (``argparse.SUPPRESS``), so a
    preset or a resumed checkpoint can tell what was given."""
    d = DEFAULTS
    t.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="a named configuration: notebook reproduces the original notebook MLP")
    t.add_argument("--backend", choices=backends.NAMES,
                   help=f"array library (default {d['backend']})")
    t.add_argument("--device", help="device, e.g. 0 or cuda:1 for GPUs (default: the "
                   "backend's default device)")
    t.add_argument("--dtype", choices=backends.DTYPES, help=f"floating dtype of parameters "
                   f"and activations (default {d['dtype']})")
    t.add_argument("--dataset", choices=DATASETS, help=f"(default {d['dataset']})")
    t.add_argument("--data-dir", help="folder holding the four IDX files (.gz or raw); "
                   "default $MLP_DATA_DIR, else the copy shipped with the package (MNIST), "
                   "else the per-user cache, else download")
    t.add_argument("--hidden", nargs="+", action=Hidden, metavar="WIDTHS",
                   help=f"hidden widths, comma-separated (default {d['hidden']})")
    t.add_argument("--activation", choices=tuple(ACTIVATIONS),
                   help=f"hidden activation (default {d['activation']})")
    t.add_argument("--dropout", type=rate, help=f"drop rate after each hidden activation "
                   f"(default {d['dropout']})")
    t.add_argument("--optimizer", choices=tuple(OPTIMIZER_CHOICES),
                   help="momentum is SGD with Nesterov momentum 0.9 "
                   f"(default {d['optimizer']})")
    lrs = ", ".join(f"{name} {choice.lr:g}" for name, choice in OPTIMIZER_CHOICES.items())
    t.add_argument("--lr", type=positive_float, help=f"base learning rate (default: {lrs})")
    t.add_argument("--weight-decay", type=nonneg_float,
                   help=f"L2 (sgd, adam) or decoupled (adamw) decay (default {d['weight_decay']})")
    t.add_argument("--schedule", choices=tuple(SCHEDULE_CHOICES), help="learning-rate schedule "
                   "over the whole run; step divides it by 10 after each third "
                   f"(default {d['schedule']})")
    t.add_argument("--warmup", type=nonneg_int, help="linear warm-up steps for "
                   f"warmup-cosine (default {d['warmup']})")
    t.add_argument("--label-smoothing", type=rate, help=f"(default {d['label_smoothing']})")
    t.add_argument("--epochs", type=positive_int, help=f"(default {d['epochs']})")
    t.add_argument("--batch-size", type=positive_int, help=f"(default {d['batch_size']})")
    t.add_argument("--seed", type=nonneg_int, help="seeds initial weights, dropout and "
                   f"shuffling (default {d['seed']})")
    t.add_argument("--jit", action=argparse.BooleanOptionalAction,
                   help="run each training step as one compiled function (JAX only; default: "
                        "on where the backend compiles)")
    t.add_argument("--cuda-graph", action="store_true", default=False,
                   help="capture the training step once as a CUDA graph and replay it per batch "
                        "(same numbers, fewer kernel launches: faster at small batches; "
                        "--backend torch --device cuda, no dropout)")
    t.add_argument("--threads", type=positive_int, help="BLAS threads, at most the usable "
                   "cores (default: all usable cores)")
    t.add_argument("--distributed", action="store_true", default=False,
                   help="train data-parallel over the processes of an MPI launcher "
                   "(mpiexec -n P mlp train --distributed); --batch-size is the global batch")
    t.add_argument("--metrics", metavar="FILE.jsonl", help="write one JSON object per epoch "
                   "(with --resume: continue this run's metrics file)")
    t.add_argument("--plot", metavar="FILE.png", help="draw loss and accuracy curves "
                   "(.png, .pdf or .svg)")
    t.add_argument("--save", metavar="FILE", help="write a checkpoint (safetensors) after "
                   "every epoch (with --resume: default the --resume FILE)")
    t.add_argument("--resume", metavar="FILE", help="continue the run saved in FILE with its "
                   "settings, saving into FILE after every epoch unless --save names another "
                   "file; only --epochs, --backend and --device may differ")
    t.add_argument("--overwrite", action="store_true", default=False,
                   help="allow replacing existing --save/--metrics/--plot files")
    add_debug(t)
    t.add_argument("--quiet", action="store_true", default=False,
                   help="no progress bar and no per-epoch lines")


def add_evaluate_arguments(e: argparse.ArgumentParser) -> None:
    """The options of ``mlp evaluate``."""
    e.add_argument("--checkpoint", required=True, metavar="FILE",
                   help="the checkpoint to evaluate (written by mlp train --save)")
    e.add_argument("--backend", choices=backends.NAMES, default="numpy",
                   help="array library to evaluate on (default numpy)")
    e.add_argument("--device", default=None,
                   help="device, e.g. 0 or cuda:1 for GPUs (default: the backend's default)")
    e.add_argument("--dataset", choices=DATASETS, default=None,
                   help="test set to use (default: the dataset the checkpoint was trained on)")
    e.add_argument("--data-dir", default=None, help="folder holding the test split's IDX "
                   "files; default $MLP_DATA_DIR, else the copy shipped with the package "
                   "(MNIST), else the per-user cache, else download")
    add_debug(e)


def add_debug(p: argparse.ArgumentParser) -> None:
    """``--debug`` after the sub-command too (``mlp train --debug``)."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks on errors (default: off; mlp --debug COMMAND also "
                   "works)")


def build_parser(commands: dict[str, Any]) -> Parser:
    """The ``mlp`` parser with one sub-parser per entry of ``commands`` (name -> :class:`~mlp.
    cli.app.Command`)."""
    parser = Parser(
        prog="mlp",
        description="Train and evaluate a multilayer perceptron written once against the "
        "Python array API, on NumPy (CPU), CuPy (CUDA), PyTorch, JAX or array-api-strict.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in commands.items():
        p = sub.add_parser(name, help=command.help, description=command.description,
                           **command.parser_options)
        if command.add_arguments is not None:
            command.add_arguments(p)
    return parser
