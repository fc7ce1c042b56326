"""``mlp train ARGS`` in which rank 1 kills itself (SIGKILL) at global step
``$KILL_RANK_AT_STEP``, the way a crashed node disappears; rank 0 prints the step just
before. Run it under ``mpiexec -n 2``."""

from __future__ import annotations

import os
import signal
import sys

from mlp import distributed
from mlp.cli import main

STEP = int(os.environ["KILL_RANK_AT_STEP"])
step = distributed.Distributed.train_step


def train_step(self, model, *args, **kwargs):
    if model.optimizer.steps == STEP:
        from mpi4py import MPI

        if self.rank == 0:
            print(f"killing rank 1 at step {STEP}", file=sys.__stdout__, flush=True)
        MPI.COMM_WORLD.Barrier()  # rank 1 dies after rank 0 has said so
        if self.rank != 0:
            os.kill(os.getpid(), signal.SIGKILL)
    return step(self, model, *args, **kwargs)


distributed.Distributed.train_step = train_step
sys.exit(main(["train", *sys.argv[1:]]))
