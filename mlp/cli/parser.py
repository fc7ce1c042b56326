"""The argument parser: one-line errors, and the options of each command.

The options of ``mlp train`` that set a training setting come from its definition
(:mod:`mlp.schema`): the conversion and bounds of a number, the help line and its default, and
the choices of the registry it names (backends, dtypes, datasets, activations, optimizer and
schedule names, bound in :data:`mlp.cli.settings.SETTINGS`), so a new entry there is a new choice
here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

import backends

from .. import __version__
from ..data import DATASETS
from ..schema import Setting
from .settings import OPTIMIZER_CHOICES, PRESETS, SETTINGS, parse_hidden


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``mlp train: error: ... (see mlp train
    --help)``, exit status 2, no usage block. Sub-commands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{error_line(self.prog, message)}\n")


def error_line(prog: str, message: str) -> str:
    """The one line a usage error prints (newlines in ``message`` become spaces)."""
    return f"{prog}: error: {' '.join(message.split())} (see {prog} --help)"


def option_type(setting: Setting) -> Callable[[str], Any]:
    """An argparse ``type`` taking an option's text to ``setting``'s value: its conversion and
    bounds, its message (``must be a finite number > 0, got 0``)."""
    def parse(text: str) -> Any:
        try:
            return setting.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = setting.name
    return parse


def add_setting(parser: argparse.ArgumentParser, setting: Setting, **options: Any) -> None:
    """``setting``'s option, as its definition says: ``--name``, the conversion and bounds of a
    number, the choices of a registry, and a help line naming the default (``default_help``,
    among ``options``, overrides the text of the default)."""
    default_help = options.pop("default_help", None)
    if setting.number_kind is not None:
        options.setdefault("type", option_type(setting))
    if setting.choices is not None:
        options.setdefault("choices", setting.choices)
    parser.add_argument(setting.option_name, help=setting.help_line(default_help), **options)


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
    """The options of ``mlp train``: one per setting an option sets (:data:`~mlp.cli.settings.
    SETTINGS`, in its order), then how to run and what to write. Absent options stay absent
    (``argparse.SUPPRESS``), so a preset or a resumed checkpoint can tell what was given."""
    t.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="a named configuration: notebook reproduces the original notebook MLP")
    lrs = ", ".join(f"{name} {choice.lr:g}" for name, choice in OPTIMIZER_CHOICES.items())
    how = {"hidden": {"nargs": "+", "action": Hidden, "metavar": "WIDTHS"},
           "lr": {"default_help": lrs}}
    for name, setting in SETTINGS.items():
        if setting.option:
            add_setting(t, setting, **how.get(name, {}))
        if name == "dataset":
            t.add_argument("--data-dir", help="folder holding the four IDX files (.gz or raw); "
                           "default $MLP_DATA_DIR, else the copy shipped with the package "
                           "(MNIST), else the per-user cache, else download")
    t.add_argument("--jit", action=argparse.BooleanOptionalAction,
                   help="run each training step as one compiled function (JAX only; default: "
                        "on where the backend compiles)")
    t.add_argument("--cuda-graph", action="store_true", default=False,
                   help="capture the training step once as a CUDA graph and replay it per batch "
                        "(same numbers, fewer kernel launches: faster at small batches; "
                        "--backend torch --device cuda or --backend cupy; no dropout)")
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
