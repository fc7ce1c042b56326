"""``mlp train``: plan the run (settings, outputs, resources), then train under the run's claim
on its output files, saving after every epoch and on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backends

from ..errors import CheckpointError, MLPError
from ..steps import GraphStep, choose
from . import launch, outputs, resources
from . import settings as rules
from .report import epoch_line, header_lines, plural, stop_line
from .settings import UsageError


@dataclass
class Plan:
    """Everything decided before data is read: settings, where the run resumes from, outputs."""

    settings: dict[str, Any]
    resumed: Any = None  # a checkpoint.Checkpoint
    state: Any = None  # a train.TrainState
    save: Path | None = None
    metrics: Path | None = None
    metrics_append: bool = False
    plot: Path | None = None
    threads: int | None = None
    in_place: bool = False  # --save is the --resume file


class SecondInterrupt(KeyboardInterrupt):
    """A second SIGINT while the first one's stop is under way."""


class StopFlag:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step; a second
    SIGINT raises :class:`SecondInterrupt` at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise SecondInterrupt
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None


def plan(args: argparse.Namespace, ranks: int = 1) -> Plan:
    """Settings and checked outputs; raises UsageError, CheckpointError before any training.
    ``ranks``: the processes of a distributed run. ``--resume`` without ``--save`` saves into
    the checkpoint it resumes."""
    from .. import checkpoint
    from ..validate import validate_train_state

    resume = getattr(args, "resume", None)
    save, metrics, plot = (getattr(args, k, None) for k in ("save", "metrics", "plot"))
    outputs.check_plot_format(plot)
    outputs.check_distinct({"--resume": resume, "--save": save, "--metrics": metrics,
                            "--plot": plot})
    if resume and save is None:
        save = resume  # the run goes on in the file it came from
    p = Plan(rules.resolve_settings(args))
    if resume:
        p.resumed = checkpoint.load(resume)
        meta = p.resumed.meta
        if "settings" not in meta or "train_state" not in meta:
            raise MLPError(f"{resume}: this checkpoint holds no training state to resume "
                           "(it was not written by mlp train)")
        saved = rules.validate_settings(meta["settings"], resume)
        rules.check_settings_describe_model(saved, p.resumed.config, resume)
        p.settings = rules.resume_settings(args, saved)
        p.state = validate_train_state(meta["train_state"])
    if p.settings["batch_size"] < ranks:
        raise UsageError(f"--batch-size {p.settings['batch_size']} is smaller than the {ranks} "
                         "ranks: the global batch must give every rank a sample")
    try:
        backend = backends.get(p.settings["backend"], p.settings["device"])
        backend.dtype(p.settings["dtype"])
    except backends.BackendError as exc:
        raise UsageError(str(exc)) from None
    if getattr(args, "jit", None) and getattr(backend, "jit", None) is None:
        raise UsageError(f"--jit: backend {backend.name!r} does not compile training steps; "
                         "use --backend jax, or leave --jit out")
    if getattr(args, "cuda_graph", False):
        why = backend.capture_unsupported or (
            "the step with dropout cannot be captured; leave --dropout out" if
            p.settings["dropout"] else None) or (
            "a distributed step cannot be captured" if getattr(args, "distributed", False)
            else None)
        if why:
            raise UsageError(f"--cuda-graph: {why}")
    p.in_place = resume is not None and save is not None and Path(save).exists() and (
        outputs.same_file(save, resume))
    p.save = outputs.check_output(save, "--save", args.overwrite or p.in_place)
    if resume and metrics and Path(metrics).is_file():
        outputs.check_output(metrics, "--metrics", True)  # the kind of file and its folder
        p.metrics = Path(metrics)
        p.metrics_append = outputs.check_metrics_continues(
            p.metrics, p.state.history, args.overwrite)
    else:  # an empty file is what a run killed before its first epoch leaves: a new file
        p.metrics = outputs.check_output(metrics, "--metrics",
                                         args.overwrite or outputs.is_empty_file(metrics))
    p.plot = outputs.check_output(plot, "--plot", args.overwrite)
    if p.save is None:
        outputs.check_fallback_folder()
    if getattr(args, "threads", None):
        p.threads = resources.cap_threads(args.threads)
        backend.set_threads(p.threads)
    return p


def cmd_train(args: argparse.Namespace) -> int:
    dist = launch.setup(args)
    with ExitStack() as claims:
        with launch.together(dist):  # distributed: every rank checks, all fail together
            p = plan(args, 1 if dist is None else dist.size)
        launch.check_same_settings(dist, p.settings, p.state)
        with launch.together(dist):
            if dist is None or dist.is_root:  # rank 0 alone writes the outputs
                claims.enter_context(outputs.claimed(
                    {"--save": p.save, "--metrics": p.metrics, "--plot": p.plot}))
        return _run(args, p, dist)


def _run(args: argparse.Namespace, p: Plan, dist: Any = None) -> int:
    from .. import checkpoint, data
    from ..train import DeviceData, StopRequested, Trainer
    from ..validate import validate_train_state

    settings, quiet = p.settings, args.quiet
    root = dist is None or dist.is_root
    interactive = sys.stderr.isatty() and not quiet and root
    with launch.together(dist):
        device = launch.device_for(dist, settings["backend"], settings["device"])
        dataset = data.load(settings["dataset"], getattr(args, "data_dir", None),
                            progress=interactive)
        steps = -(-dataset.x_train.shape[0] // settings["batch_size"])
        if p.resumed is not None:
            rules.check_architecture(p.resumed.config["sizes"], dataset, str(args.resume))
            try:  # the batch must lie inside an epoch of this dataset
                validate_train_state(p.state.to_json(), steps)
            except CheckpointError as exc:
                raise CheckpointError(f"invalid checkpoint {args.resume}: {exc}") from None
            model = checkpoint.restore(p.resumed, backend=settings["backend"], device=device)
            if settings["epochs"] != p.resumed.meta["settings"]["epochs"]:
                # A longer (or shorter) run: the schedule spans the new total.
                model.optimizer.schedule = rules.build_schedule(settings, steps)
        else:
            sizes = [dataset.num_features, *rules.parse_hidden(settings["hidden"]),
                     dataset.num_classes]
            choice = rules.OPTIMIZER_CHOICES[settings["optimizer"]]
            resources.check_memory(settings, sizes, choice.name)
            model = rules.build_model({**settings, "device": device}, dataset.num_features,
                                      dataset.num_classes, steps)
        step = choose(model, jit=getattr(args, "jit", None),
                      cuda_graph=getattr(args, "cuda_graph", False))

    def log(text: str) -> None:
        if not quiet and root:
            print(text, flush=True)

    # This run's checkpoint at --save is good to fall back on once written (or when resumed
    # in place: the file it resumed from).
    wrote = {"save": p.in_place}
    metrics = outputs.MetricsWriter(p.metrics, p.metrics_append) if p.metrics and root else None
    save = p.save if root else None

    def meta() -> dict[str, Any]:
        st = trainer.state
        return {"dataset": settings["dataset"], "epoch": st.epoch, "settings": settings,
                "train_state": st.to_json()}

    def on_epoch(m: dict[str, Any]) -> None:
        # The checkpoint first: a kill between the two leaves a metrics file one line short,
        # which a resume completes from the checkpoint's history.
        if save is not None:
            checkpoint.save(save, model, meta())
            wrote["save"] = True
        if metrics is not None:
            metrics.write(m)
        log(epoch_line(m, settings["epochs"]))

    progress = None
    if interactive:
        from tqdm.auto import tqdm

        def progress(total: int, initial: int, desc: str) -> Any:
            return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False,
                        dynamic_ncols=True)

    with StopFlag() as stop, launch.fail_fast(dist):
        trainer = Trainer(
            model, DeviceData(model, dataset.x_train, dataset.y_train),
            DeviceData(model, dataset.x_test, dataset.y_test),
            batch_size=settings["batch_size"], epochs=settings["epochs"], seed=settings["seed"],
            state=p.state, on_epoch=on_epoch, progress=progress, should_stop=stop,
            distributed=dist,
        )
        if metrics is not None and not p.metrics_append:
            for m in trainer.state.history:  # a new metrics file starts with the epochs done
                metrics.write(m)
        for line in header_lines(model, settings, trainer.steps_per_epoch, p.threads,
                                 None if dist is None else dist.size):
            log(line)
        done_before = trainer.state.epoch
        try:
            history = trainer.fit()
        except StopRequested:
            signum = stop.signum or 0 if dist is None else dist.max(stop.signum or 0)
            if not root:
                return 128 + signum
            target = p.save or outputs.free_path(Path(outputs.DEFAULT_INTERRUPT_CHECKPOINT))
            checkpoint.save(target, model, meta())
            command = ["mlp", "train", "--resume", str(target), "--save", str(target)]
            if getattr(args, "data_dir", None):
                command += ["--data-dir", args.data_dir]
            if dist is not None:
                command = ["mpiexec", "-n", str(dist.size), *command, "--distributed"]
            print(f"{stop_line(signum, trainer)}; saved {target}\n"
                  f"resume with: {shlex.join(command)}", file=sys.stderr)
            return 128 + signum
        except SecondInterrupt:
            kept = f"; the last checkpoint is {p.save}" if wrote["save"] else ""
            print(f"mlp: SIGINT received again: stopped at once, without saving{kept}",
                  file=sys.stderr)
            return 130
        except MLPError as exc:
            if not root:  # the same error on every rank: rank 0 says it
                raise SystemExit(1) from None
            if wrote["save"]:
                raise MLPError(f"{exc}; the last good checkpoint is kept in {p.save}") from None
            raise
        finally:
            if metrics is not None:
                metrics.close()

    trained = trainer.state.epoch > done_before
    if not root:
        return 0
    if not trained:
        print(f"the run in {args.resume} already finished epoch {done_before} of "
            f"{settings['epochs']}: nothing to train (give a larger --epochs to go on)")
    if p.save is not None and not trained and not p.in_place:
        checkpoint.save(p.save, model, meta())  # --save asks for the run's checkpoint there
    if p.plot is not None:
        from ..plot import plot_history

        with outputs.naming(p.plot):
            plot_history(history, p.plot, title=f"{settings['dataset']} "
                         f"{'-'.join(map(str, model.sizes))}")
        log(f"plot written to {p.plot}")
    if p.save is not None and (trained or not p.in_place):
        log(f"checkpoint written to {p.save}")
    if isinstance(step, GraphStep) and trained:
        log(f"the step ran as a CUDA graph: {plural(step.captures, 'graph')} captured, "
            f"{plural(step.replays, 'step')} replayed")
    if history and quiet:
        last = history[-1]
        print(f"test accuracy {100 * last['test_acc']:.2f}%  test loss {last['test_loss']:.4f}")
    return 0
