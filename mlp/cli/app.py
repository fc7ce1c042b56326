"""The ``mlp`` entry point: the sub-command registry, and every failure turned into one line.

Exit status: 0 done; 2 a bad option (a usage error: ``mlp train: error: ... (see mlp train
--help)``); 1 bad data, a bad checkpoint, a diverged run or an operating-system error (the
path and the reason), or memory ran out; 130/143 when stopped by SIGINT/SIGTERM, at start-up
too. ``--debug`` shows tracebacks. Names that are not valid in the output's encoding (a file name
of undecodable bytes) are printed with escapes (``bad\\xff.st``), never a failed print. A
Python warning is one line too: ``mlp: warning: MESSAGE``.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import MLPError


@dataclass(frozen=True)
class Command:
    """A sub-command: its parser's options and the function that runs it. A ``passthrough``
    command gets its raw arguments (``run(argv)``) instead of parsed ones."""

    help: str
    run: Callable[[Any], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None
    passthrough: bool = False
    parser_options: dict[str, Any] = field(default_factory=dict)


def _train(args: argparse.Namespace) -> int:
    from .train import cmd_train

    return cmd_train(args)


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import cmd_evaluate

    return cmd_evaluate(args)


def _info(args: argparse.Namespace) -> int:
    from .info import cmd_info

    return cmd_info(args)


def _add_train(parser: argparse.ArgumentParser) -> None:
    from .parser import add_train_arguments

    add_train_arguments(parser)


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    from .parser import add_evaluate_arguments

    add_evaluate_arguments(parser)


def _predict(args: argparse.Namespace) -> int:
    from .predict import run

    return run(args)


def _add_predict(parser: argparse.ArgumentParser) -> None:
    from .predict import add_arguments

    add_arguments(parser)


def _export(args: argparse.Namespace) -> int:
    from .export import run

    return run(args)


def _add_export(parser: argparse.ArgumentParser) -> None:
    from .export import add_arguments

    add_arguments(parser)


def _bench(argv: list[str]) -> int:
    from .bench import cmd_bench

    return cmd_bench(argv)


#: The sub-commands, in the order ``mlp --help`` lists them; a new command is a new entry.
COMMANDS: dict[str, Command] = {
    "train": Command(
        "train on MNIST or Fashion-MNIST", _train, _add_train,
        description="Train an MLP. Defaults (shown per option) reach >= 98% MNIST test "
        "accuracy; --preset replaces them (notebook, fast, best), options given here win.",
        parser_options={"formatter_class": argparse.ArgumentDefaultsHelpFormatter,
                        "argument_default": argparse.SUPPRESS},
    ),
    "evaluate": Command("test loss, accuracy and confusion matrix of a checkpoint", _evaluate,
                        _add_evaluate),
    "predict": Command("the digit in each of your image files (PNG, JPEG), by a checkpoint",
                       _predict, _add_predict),
    "export": Command(
        "a checkpoint's network as an ONNX model (needs the onnx extra)", _export, _add_export,
        description="Write a checkpoint's network as an ONNX model: its own inference forward "
        "run on ndonnx arrays. The model takes x (N, inputs) - features in the checkpoint's "
        "dtype (pixels in [0, 1]), or with --pixels uint8 pixels 0..255 - and returns proba "
        "or logits (N, classes); N is free. Its metadata records the input, the output, the "
        "architecture (JSON) and the array-api-mlp version. Needs: pip install \".[onnx]\"",
    ),
    "info": Command("backends, versions, devices, dtypes and BLAS threads", _info),
    "bench": Command("run the benchmark suite and write its report (options: mlp bench "
                     "--help)", _bench, passthrough=True, parser_options={"add_help": False}),
}


def build_parser() -> argparse.ArgumentParser:
    from .parser import build_parser as build

    return build(COMMANDS)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training (where it is a request to stop and save, see ``mlp.cli.train``):
    unwinds like Ctrl-C, so the run's lock files are removed on the way out."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _escape_undecodable(exc: UnicodeError) -> tuple[str, int]:
    """An encoding error handler: a byte the file system gave that is not valid text
    (``surrogateescape``'s ``\\udcXX``) as ``\\xXX``, anything else as a backslash escape."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start:exc.end]
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
                   else c.encode("ascii", "backslashreplace").decode() for c in text), exc.end


codecs.register_error("mlp-escape", _escape_undecodable)


def _safe_streams() -> None:
    """stdout and stderr print any file name: where they would fail on text they cannot encode
    (``errors="strict"``) or show it as ``\\udcff`` (``"backslashreplace"``), they escape it as
    ``\\xff``."""
    for stream in (sys.stdout, sys.stderr):
        errors = getattr(stream, "errors", None)
        if errors in ("strict", "backslashreplace") and hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):
                stream.reconfigure(errors="mlp-escape")


def main(argv: list[str] | None = None) -> int:
    """Run ``mlp ARGV``; returns the exit status. A usage error raises ``SystemExit(2)``, as
    argparse does for the options it checks itself."""
    _safe_streams()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _main(argv)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """A warning as the one line ``mlp: warning: MESSAGE`` (no source line under it)."""
    print(f"mlp: warning: {_one_line(str(message))}", file=file or sys.stderr)


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # before parsing: a failure while parsing is reported alike
    prog = "mlp"
    try:
        command = COMMANDS.get(argv[0]) if argv else None
        if command is not None and command.passthrough:
            return command.run(argv[1:])
        args, unknown = build_parser().parse_known_args(argv)
        debug, prog = getattr(args, "debug", False), f"mlp {args.command}"
        if unknown:  # named by the sub-command, not by the top-level parser
            from .parser import error_line

            print(error_line(prog, f"unrecognized arguments: {' '.join(unknown)}"),
                  file=sys.stderr)
            raise SystemExit(2)
        return COMMANDS[args.command].run(args)
    except Exception as exc:
        if debug or not _reported(exc, prog):
            raise
        if _is_usage(exc):
            raise SystemExit(2) from None
        return 1
    except KeyboardInterrupt as exc:
        if debug:
            raise
        if isinstance(exc, Terminated):
            print("mlp: terminated (SIGTERM)", file=sys.stderr)
            return 143
        print("mlp: interrupted", file=sys.stderr)
        return 130


def _is_usage(exc: BaseException) -> bool:
    from .settings import UsageError

    return isinstance(exc, UsageError)


def _reported(exc: BaseException, prog: str) -> bool:
    """Print the one line for a failure the user can act on; ``False`` for a bug."""
    import backends

    if isinstance(exc, BrokenPipeError):
        return True  # the reader went away: nothing to tell it
    if _is_usage(exc):
        from .parser import error_line

        print(error_line(prog, str(exc)), file=sys.stderr)
    elif isinstance(exc, MLPError | backends.BackendError):
        print(f"mlp: error: {_one_line(str(exc))}", file=sys.stderr)
    elif isinstance(exc, OSError):
        print(f"mlp: error: {describe_os_error(exc)}", file=sys.stderr)
    elif isinstance(exc, MemoryError):
        detail = _one_line(str(exc))
        print(f"mlp: error: out of memory{f' ({detail})' if detail else ''}", file=sys.stderr)
    else:
        return False
    return True


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` (and ``-> PATH2`` for a rename) of an operating-system error."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return reason
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{where}: {reason}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
