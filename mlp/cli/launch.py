"""``mlp train --distributed``: joining the processes an MPI launcher started.

Every rank runs the same command; rank 0 alone prints and writes files. A process that finds
itself under a launcher with more than one rank but without ``--distributed`` refuses, so P
independent runs never race on the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import backends

from ..distributed import Distributed, launcher_ranks
from .settings import UsageError


def setup(args: argparse.Namespace) -> Distributed | None:
    """The run's :class:`Distributed` with ``--distributed``, else ``None``; non-root ranks
    print nothing on stdout from here on.

    Raises:
        UsageError: several ranks without ``--distributed``, or no mpi4py.
    """
    ranks = launcher_ranks()
    if not getattr(args, "distributed", False):
        if ranks > 1 and _launcher_rank() != 0:
            raise SystemExit(2)  # the same refusal on every rank: the first one says it
        if ranks > 1:
            raise UsageError(f"this process is one of {ranks} started by an MPI launcher: add "
                             "--distributed to train them together (without it each would "
                             "train alone and write the same files)")
        return None
    try:
        dist = Distributed()
    except backends.BackendError as exc:
        if _launcher_rank() != 0:
            raise SystemExit(2) from None
        raise UsageError(str(exc)) from None
    if not getattr(args, "threads", None):  # share the cores between this machine's ranks
        from .resources import usable_cores

        args.threads = max(1, usable_cores() // dist.comm.local_size)
    if not dist.is_root:
        sys.stdout = open(os.devnull, "w", errors="replace")  # noqa: SIM115 - for the life of the process
    return dist


#: Environment variables in which MPI launchers publish this process's rank.
_LAUNCHER_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK",
                            "PMIX_RANK", "SLURM_PROCID")


def _launcher_rank() -> int:
    """This process's rank as its MPI launcher published it (0 when none did)."""
    for name in _LAUNCHER_RANK_VARIABLES:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return 0


def check_same_settings(dist: Distributed | None, settings: dict[str, Any],
                        state: Any = None) -> None:
    """Every rank must train the same run: the same settings (``--device`` aside) and, resumed,
    the same position. Ranks started with different options would wait on each other for ever
    (another number of steps); instead rank 0 raises UsageError naming the options that
    differ, and the other ranks exit silently with status 2."""
    if dist is None:
        return
    keys = sorted(key for key in settings if key != "device")
    position = None if state is None else [state.epoch, state.batch]
    mine = [_digest(settings[key]) for key in keys] + [_digest(position)]
    every = dist.comm.gather_host(mine)
    differ = [i for i in range(len(mine)) if (every[:, i] != every[0, i]).any()]
    if not differ:
        return
    if not dist.is_root:
        raise SystemExit(2)
    ranks = sorted({r for i in differ for r in range(dist.size) if every[r, i] != every[0, i]})
    names = ["the --resume checkpoint's position" if i == len(keys) else
             "--" + keys[i].replace("_", "-") for i in differ]
    raise UsageError(f"the ranks were started with different options ({', '.join(names)} of "
                     f"rank {', '.join(map(str, ranks))} against rank 0): every rank must run "
                     "the same mlp train command (only --device may differ)")


def _digest(value: Any) -> int:
    text = json.dumps(value, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little", signed=True)


def device_for(dist: Distributed | None, backend: str, device: Any) -> Any:
    """The device of this rank: as given, else the node-local rank's GPU for CuPy.

    Raises:
        UsageError: the node has fewer GPUs than ranks and ``--device`` names none (left to
            itself, a rank would ask for a GPU that does not exist).
    """
    if dist is None or device is not None or backend != "cupy":
        return device
    count = backends.gpu_count(backend)
    if 0 < count <= dist.local_rank:
        raise UsageError(
            f"rank {dist.rank} is rank {dist.local_rank} of {dist.local_size} on its node, "
            f"which has {count} GPU(s): start at most {count} rank(s) per node, or name the "
            "GPU with --device (e.g. --device 0: the ranks then share it)")
    return dist.local_rank


@contextmanager
def together(dist: Distributed | None) -> Iterator[None]:
    """Run a setup block on every rank and fail together (see
    :meth:`~mlp.distributed.Distributed.together`). When every rank failed alike, rank 0
    prints the one line and the others exit silently with the same status."""
    if dist is None:
        yield
        return
    try:
        with dist.together():
            yield
    except Exception as exc:
        if not dist.is_root and len(dist.failed_ranks) == dist.size:
            raise SystemExit(2 if isinstance(exc, UsageError) else 1) from None
        raise


@contextmanager
def fail_fast(dist: Distributed | None) -> Iterator[None]:
    """While training: a failure of this rank alone prints one line and ends every rank."""
    if dist is None:
        yield
        return

    def say(exc: BaseException) -> None:
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"mlp: error: rank {dist.rank}: {text}", file=sys.stderr, flush=True)

    with dist.abort_on_error(say):
        yield
