"""The ``mlp`` command: ``train``, ``evaluate``, ``info`` and ``bench``.

Every failure the user can fix is one line on stderr and a non-zero exit: 2 for a bad option
(argparse's convention), 1 for bad data, checkpoints or a diverged run, 130/143 when stopped by
SIGINT/SIGTERM (after writing a resumable checkpoint). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import backends

from .errors import MLPError

DEFAULT_INTERRUPT_CHECKPOINT = "mlp-interrupted.safetensors"

# Training settings; a preset replaces the defaults, options given on the command line win.
DEFAULTS: dict[str, Any] = {
    "backend": "numpy",
    "device": None,
    "dtype": "float32",
    "dataset": "mnist",
    "hidden": "512,512",
    "activation": "relu",
    "init": None,
    "dropout": 0.0,
    "optimizer": "adam",
    "lr": None,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "warmup": 0,
    "label_smoothing": 0.0,
    "epochs": 8,
    "batch_size": 128,
    "seed": 0,
    "loss": "softmax-xent",
}

DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "adam": 1e-3, "adamw": 1e-3}

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The original notebook: 784 (+ constant bias input) -> 100 sigmoid -> 10 softmax, weights
    # N(0, 1), cross-entropy on probabilities summed over the batch, full-batch gradient descent.
    "notebook": {
        "hidden": "100", "activation": "sigmoid", "init": "normal", "output": "softmax",
        "output_bias": False, "loss": "xent-sum", "optimizer": "sgd", "lr": 1e-5,
        "schedule": "constant", "epochs": 50, "batch_size": 60000, "dtype": "float64",
    },
    # At least 98.0 % in a few seconds on a 2-core CPU.
    "fast": {
        "hidden": "512,512", "optimizer": "adam", "lr": 3e-3, "schedule": "cosine",
        "epochs": 3, "batch_size": 256, "label_smoothing": 0.1,
    },
    # At least 98.7 %: wider, longer, dropout and label smoothing.
    "best": {
        "hidden": "1024,1024", "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.02,
        "schedule": "warmup-cosine", "warmup": 500, "dropout": 0.2, "label_smoothing": 0.1,
        "epochs": 20, "batch_size": 128,
    },
}

SCHEDULES = ("constant", "step", "cosine", "warmup-cosine")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
LOSSES = ("softmax-xent", "xent-sum")
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu")
RESUMABLE_OVERRIDES = ("epochs", "backend", "device")


class UsageError(MLPError):
    """A bad option value, reported argparse-style with exit status 2."""


# --- argument parsing ----------------------------------------------------------------------


def _number(kind: type, low: float, high: float = math.inf, low_open: bool = False,
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


_positive_float = _number(float, 0.0, low_open=True)
_nonneg_float = _number(float, 0.0)
_rate = _number(float, 0.0, 1.0)
_positive_int = _number(int, 1)
_nonneg_int = _number(int, 0)


def parse_hidden(text: str) -> list[int]:
    """``"512,512"`` -> ``[512, 512]``; ``""`` or ``"none"`` -> no hidden layer."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden takes comma-separated widths such as 512,512, got {text!r}"
        ) from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--hidden widths must be >= 1, got {text!r}")
    return sizes


def _hidden(text: str) -> str:
    parse_hidden(text)
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlp",
        description="Train and evaluate a multilayer perceptron written once against the "
        "Python array API, on NumPy (CPU), CuPy (CUDA), PyTorch or array-api-strict.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser(
        "train",
        help="train on MNIST or Fashion-MNIST",
        description="Train an MLP. Defaults (shown per option) reach >= 98% MNIST test "
        "accuracy; --preset replaces them (notebook, fast, best), options given here win.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    d = DEFAULTS
    t.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="a named configuration: notebook reproduces the original notebook MLP")
    t.add_argument("--backend", choices=backends.NAMES, help=f"array library (default "
                   f"{d['backend']})")
    t.add_argument("--device", help="device, e.g. 0 or cuda:1 for GPUs (default: the "
                   "backend's default device)")
    t.add_argument("--dtype", choices=backends.DTYPES, help=f"floating dtype of parameters "
                   f"and activations (default {d['dtype']})")
    t.add_argument("--dataset", choices=("mnist", "fashion-mnist"),
                   help=f"(default {d['dataset']})")
    t.add_argument("--data-dir", help="folder holding the four IDX files (.gz or raw); "
                   "default $MLP_DATA_DIR, else the per-user cache, else download")
    t.add_argument("--hidden", type=_hidden, help=f"hidden widths (default {d['hidden']})")
    t.add_argument("--activation", choices=ACTIVATIONS,
                   help=f"hidden activation (default {d['activation']})")
    t.add_argument("--dropout", type=_rate, help=f"drop rate after each hidden activation "
                   f"(default {d['dropout']})")
    t.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="momentum is SGD with Nesterov momentum 0.9 "
                   f"(default {d['optimizer']})")
    t.add_argument("--lr", type=_positive_float, help="base learning rate (default: sgd 0.1, "
                   "momentum 0.05, adam/adamw 0.001)")
    t.add_argument("--weight-decay", type=_nonneg_float,
                   help=f"L2 (sgd, adam) or decoupled (adamw) decay (default {d['weight_decay']})")
    t.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule over the "
                   "whole run; step divides it by 10 after each third "
                   f"(default {d['schedule']})")
    t.add_argument("--warmup", type=_nonneg_int, help="linear warm-up steps for "
                   f"warmup-cosine (default {d['warmup']})")
    t.add_argument("--label-smoothing", type=_rate, help=f"(default {d['label_smoothing']})")
    t.add_argument("--epochs", type=_positive_int, help=f"(default {d['epochs']})")
    t.add_argument("--batch-size", type=_positive_int, help=f"(default {d['batch_size']})")
    t.add_argument("--seed", type=_nonneg_int, help="seeds initial weights, dropout and "
                   f"shuffling (default {d['seed']})")
    t.add_argument("--threads", type=_positive_int, help="BLAS threads (default: all cores)")
    t.add_argument("--metrics", metavar="FILE.jsonl", help="write one JSON object per epoch")
    t.add_argument("--plot", metavar="FILE.png", help="draw loss and accuracy curves")
    t.add_argument("--save", metavar="FILE", help="write a checkpoint (safetensors) after "
                   "every epoch")
    t.add_argument("--resume", metavar="FILE", help="continue the run saved in FILE with its "
                   "settings; only --epochs, --backend and --device may change")
    t.add_argument("--overwrite", action="store_true", default=False,
                   help="allow replacing existing --save/--metrics/--plot files")
    t.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks on errors (default: off; mlp --debug train also works)")
    t.add_argument("--quiet", action="store_true", default=False,
                   help="no progress bar and no per-epoch lines")

    e = sub.add_parser("evaluate", help="test loss, accuracy and confusion matrix of a checkpoint")
    e.add_argument("--checkpoint", required=True, metavar="FILE")
    e.add_argument("--backend", choices=backends.NAMES, default="numpy")
    e.add_argument("--device", default=None)
    e.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default=None,
                   help="default: the dataset the checkpoint was trained on")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks on errors")

    sub.add_parser("info", help="backends, versions, devices, dtypes and BLAS threads")

    sub.add_parser("bench", help="run the benchmark suite and write benchmarks/REPORT.md "
                   "(options: mlp bench --help)")
    return parser


# --- entry point ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # Everything after "bench" belongs to the benchmark runner, options included.
        return _run_guarded(lambda: cmd_bench(argv[1:]), debug=False)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "evaluate":
            return cmd_evaluate(args)
        if args.command == "info":
            return cmd_info()
        return cmd_bench([])
    except UsageError as exc:
        if args.debug:
            raise
        sub = parser._subparsers._group_actions[0].choices[args.command]  # noqa: SLF001
        sub.error(str(exc))
    except (MLPError, backends.BackendError) as exc:
        if args.debug:
            raise
        print(f"mlp: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("mlp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return 0


def _run_guarded(fn: Any, debug: bool) -> int:
    try:
        return fn()
    except (MLPError, backends.BackendError) as exc:
        if debug:
            raise
        print(f"mlp: error: {exc}", file=sys.stderr)
        return 1


# --- train ---------------------------------------------------------------------------------


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings: defaults, then the preset, then the options given."""
    settings = dict(DEFAULTS)
    settings.update({"output": "logits", "output_bias": True})
    settings.update(PRESETS[getattr(args, "preset", "default")])
    for key in DEFAULTS:
        if hasattr(args, key):
            settings[key] = getattr(args, key)
    if settings["lr"] is None:
        settings["lr"] = DEFAULT_LR[settings["optimizer"]]
    return settings


def build_schedule(settings: dict[str, Any], steps_per_epoch: int) -> Any:
    """The learning-rate schedule of ``settings``, spanning the whole run."""
    from . import schedules

    total = settings["epochs"] * steps_per_epoch
    kind = settings["schedule"]
    if kind == "constant":
        return schedules.Constant()
    if kind == "step":
        return schedules.StepDecay(max(1, -(-total // 3)), 0.1)
    if kind == "cosine":
        return schedules.Cosine(total)
    warm = min(settings["warmup"], total)
    return schedules.LinearWarmup(warm, schedules.Cosine(max(1, total - warm)))


def build_model(settings: dict[str, Any], num_features: int, num_classes: int,
                steps_per_epoch: int) -> Any:
    """An :class:`~mlp.MLP` with loss, optimizer and schedule as ``settings`` say."""
    from . import losses, optimizers
    from .model import MLP

    schedule = build_schedule(settings, steps_per_epoch)
    lr, wd = settings["lr"], settings["weight_decay"]
    name = settings["optimizer"]
    if name == "sgd":
        opt = optimizers.SGD(lr, weight_decay=wd, schedule=schedule)
    elif name == "momentum":
        opt = optimizers.SGD(lr, momentum=settings["momentum"], nesterov=True, weight_decay=wd,
                             schedule=schedule)
    elif name == "adam":
        opt = optimizers.Adam(lr, weight_decay=wd, schedule=schedule)
    else:
        opt = optimizers.AdamW(lr, weight_decay=wd, schedule=schedule)
    if settings["loss"] == "xent-sum":
        loss = losses.CrossEntropy(reduction="sum")
    else:
        loss = losses.SoftmaxCrossEntropy(label_smoothing=settings["label_smoothing"])
    sizes = [num_features, *parse_hidden(settings["hidden"]), num_classes]
    return MLP(
        sizes, activation=settings["activation"], dropout=settings["dropout"],
        init=settings["init"], output=settings["output"], output_bias=settings["output_bias"],
        loss=loss, optimizer=opt, backend=settings["backend"], device=settings["device"],
        dtype=settings["dtype"], seed=settings["seed"],
    )


def check_output_path(path: str | None, option: str, overwrite: bool,
                      allowed: tuple[str, ...] = ()) -> Path | None:
    """Fail before training when ``path`` exists (without --overwrite) or can't be written."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a folder, not a file")
    if p.exists() and not overwrite and str(p.resolve()) not in allowed:
        raise UsageError(f"{option} {path}: the file exists; pass --overwrite to replace it")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mlp-write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write in {folder} ({exc.strerror})") from None
    return p


class _StopFlag:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None


def cmd_train(args: argparse.Namespace) -> int:
    from . import checkpoint, data
    from .train import DeviceData, StopRequested, Trainer, TrainState

    state: TrainState | None = None
    resumed = None
    if getattr(args, "resume", None):
        resumed = checkpoint.load(args.resume)
        meta = resumed.meta
        if "settings" not in meta or "train_state" not in meta:
            raise MLPError(f"{args.resume}: this checkpoint holds no training state to resume "
                           "(it was not written by mlp train)")
        settings = dict(meta["settings"])
        fixed = [key for key in DEFAULTS if hasattr(args, key) and key not in RESUMABLE_OVERRIDES]
        if args.preset != "default":
            fixed.insert(0, "preset")
        if fixed:
            names = ", ".join("--" + key.replace("_", "-") for key in fixed)
            allowed = ", ".join("--" + key for key in RESUMABLE_OVERRIDES)
            raise UsageError(f"--resume continues with the checkpoint's settings; {names} "
                             f"cannot change (only {allowed} can)")
        if hasattr(args, "backend") and not hasattr(args, "device"):
            settings["device"] = None  # another library: its own default device
        for key in RESUMABLE_OVERRIDES:
            if hasattr(args, key):
                settings[key] = getattr(args, key)
        state = TrainState.from_json(meta["train_state"])
    else:
        settings = resolve_settings(args)

    try:
        backend = backends.get(settings["backend"], settings["device"])
        backend.dtype(settings["dtype"])
    except backends.BackendError as exc:
        raise UsageError(str(exc)) from None

    overwrite = args.overwrite
    resume_path = (str(Path(args.resume).resolve()),) if resumed is not None else ()
    save = check_output_path(getattr(args, "save", None), "--save", overwrite, resume_path)
    metrics_path = check_output_path(getattr(args, "metrics", None), "--metrics",
                                     overwrite or resumed is not None)
    plot_path = check_output_path(getattr(args, "plot", None), "--plot", overwrite)

    if getattr(args, "threads", None):
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        if backend.name == "numpy":
            backend.ops.threads = args.threads

    quiet = args.quiet
    interactive = sys.stderr.isatty() and not quiet
    dataset = data.load(settings["dataset"], getattr(args, "data_dir", None),
                        progress=interactive)

    steps = -(-dataset.x_train.shape[0] // settings["batch_size"])
    if resumed is not None:
        model = checkpoint.restore(resumed, backend=settings["backend"],
                                   device=settings["device"])
        if settings["epochs"] != resumed.meta["settings"]["epochs"]:
            # A longer (or shorter) run: the schedule spans the new total.
            model.optimizer.schedule = build_schedule(settings, steps)
    else:
        model = build_model(settings, dataset.x_train.shape[1], dataset.num_classes, steps)

    metrics_file = open(metrics_path, "a" if resumed is not None else "w") if metrics_path \
        else None  # noqa: SIM115 - closed in the finally below

    def log(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    saved = {"good": resumed is not None and save is not None
             and str(save.resolve()) in resume_path}

    def on_epoch(m: dict[str, Any]) -> None:
        if metrics_file is not None:
            metrics_file.write(json.dumps(m) + "\n")
            metrics_file.flush()
        log(f"epoch {m['epoch']:>3}/{settings['epochs']}  "
            f"train loss {m['train_loss']:.4f} acc {100 * m['train_acc']:6.2f}%  "
            f"test loss {m['test_loss']:.4f} acc {100 * m['test_acc']:6.2f}%  "
            f"{m['seconds']:6.2f} s  {m['samples_per_s']:,.0f} samples/s")
        if save is not None:
            checkpoint.save(save, model, _meta(settings, trainer.state))
            saved["good"] = True

    progress = None
    if interactive:
        from tqdm.auto import tqdm

        def progress(total: int, initial: int, desc: str) -> Any:
            return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False,
                        dynamic_ncols=True)

    with _StopFlag() as stop:
        trainer = Trainer(
            model, DeviceData(model, dataset.x_train, dataset.y_train),
            DeviceData(model, dataset.x_test, dataset.y_test),
            batch_size=settings["batch_size"], epochs=settings["epochs"], seed=settings["seed"],
            state=state, on_epoch=on_epoch, progress=progress, should_stop=stop,
        )
        log(f"{model!r} on {backend.name}:{backend.device}, {settings['dataset']}, "
            f"{settings['epochs']} epochs of {trainer.steps_per_epoch} steps "
            f"(batch {settings['batch_size']}, {settings['optimizer']} lr {settings['lr']:g}, "
            f"{settings['schedule']})")
        try:
            history = trainer.fit()
        except StopRequested:
            target = save or _free_path(Path(DEFAULT_INTERRUPT_CHECKPOINT))
            checkpoint.save(target, model, _meta(settings, trainer.state))
            st = trainer.state
            name = signal.Signals(stop.signum).name
            command = ["mlp", "train", "--resume", str(target), "--save", str(target)]
            if getattr(args, "data_dir", None):
                command += ["--data-dir", args.data_dir]
            print(f"mlp: {name} received: stopped at epoch {st.epoch + 1}, step {st.batch} of "
                  f"{trainer.steps_per_epoch}; saved {target}\n"
                  f"resume with: {shlex.join(command)}", file=sys.stderr)
            return 128 + stop.signum
        except MLPError as exc:
            if saved["good"]:
                raise MLPError(f"{exc}\nthe last good checkpoint is kept in {save}") from None
            raise
        finally:
            if metrics_file is not None:
                metrics_file.close()

    if plot_path is not None:
        from .plot import plot_history

        plot_history(history, plot_path, title=f"{settings['dataset']} {model!r}")
        log(f"plot written to {plot_path}")
    if save is not None:
        log(f"checkpoint written to {save}")
    if history and quiet:
        last = history[-1]
        print(f"test accuracy {100 * last['test_acc']:.2f}%  test loss {last['test_loss']:.4f}")
    return 0


def _free_path(path: Path) -> Path:
    """``path``, or ``stem-1.suffix``, ``stem-2.suffix``... whichever does not exist yet."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _meta(settings: dict[str, Any], state: Any) -> dict[str, Any]:
    return {"dataset": settings["dataset"], "epoch": state.epoch, "settings": settings,
            "train_state": state.to_json()}


# --- evaluate ------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy

    from . import checkpoint, data
    from .train import PIXEL_SCALE, DeviceData

    ckpt = checkpoint.load(args.checkpoint)
    try:
        model = checkpoint.restore(ckpt, backend=args.backend, device=args.device)
    except backends.BackendError as exc:
        raise UsageError(str(exc)) from None
    name = args.dataset or ckpt.meta.get("dataset", "mnist")
    dataset = data.load(name, args.data_dir, progress=sys.stderr.isatty())
    test = DeviceData(model, dataset.x_test, dataset.y_test)
    result = model.evaluate(test.x, test.y, scale=PIXEL_SCALE)
    predicted = numpy.concatenate([
        model.backend.to_numpy(model.predict(model.ops.to_float(
            test.x[i : min(i + 4096, test.n), ...], PIXEL_SCALE, model.dtype)))
        for i in range(0, test.n, 4096)
    ])
    k = dataset.num_classes
    confusion = numpy.bincount(dataset.y_test * k + predicted, minlength=k * k).reshape(k, k)
    print(f"{args.checkpoint}: {name} test set, {test.n} images, backend {model.backend.name}")
    print(f"test loss {result['loss']:.4f}  test accuracy {100 * result['accuracy']:.2f}%")
    print("confusion matrix (rows: true class, columns: predicted)")
    print("      " + "".join(f"{j:>6}" for j in range(k)))
    for i in range(k):
        print(f"{i:>6}" + "".join(f"{c:>6}" for c in confusion[i]))
    return 0


# --- info ----------------------------------------------------------------------------------


def cmd_info() -> int:
    import platform

    from threadpoolctl import threadpool_info

    from . import __version__

    print(f"array-api-mlp {__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    try:
        import array_api_compat

        print(f"array-api-compat {array_api_compat.__version__}")
    except ImportError:  # pragma: no cover - a dependency
        pass
    print("backends:")
    for entry in backends.available():
        if entry["ok"]:
            print(f"  {entry['name']:<17} {entry['version']:<14} device {entry['device']:<40} "
                  f"dtypes {', '.join(entry['dtypes'])}")
        else:
            print(f"  {entry['name']:<17} unavailable: {entry['error']}")
    print("BLAS / OpenMP thread pools:")
    pools = threadpool_info()
    if not pools:
        print("  none found")
    for pool in pools:
        print(f"  {pool.get('internal_api')} {pool.get('version')} "
              f"({pool.get('threading_layer', '')}): {pool.get('num_threads')} threads")
    return 0


# --- bench ---------------------------------------------------------------------------------


def cmd_bench(argv: list[str]) -> int:
    try:
        from benchmarks.run import main as bench_main
    except ImportError:
        root = Path(__file__).resolve().parent.parent
        if not (root / "benchmarks" / "run.py").exists():
            raise MLPError("mlp bench runs the suite in benchmarks/ of a source checkout; "
                           "clone the repository and install it with pip install -e .[bench]"
                           ) from None
        sys.path.insert(0, str(root))
        from benchmarks.run import main as bench_main
    return bench_main(argv)
