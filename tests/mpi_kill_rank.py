"""``mlp train ARGS`` in which rank 1 kills itself (SIGKILL) at global step
``$KILL_RANK_AT_STEP``, the way a crashed node disappears; rank 0 prints when (seconds since
its start) just before. Run it under ``mpiexec -n 2``."""

from __future__ import annotations

import os
import signal
import sys
import time

from mlp import distributed
from mlp.cli import main

STEP = int(os.environ["KILL_RANK_AT_STEP"])
START = time.monotonic()
step = distributed.Distributed.train_step


def train_step(self, model, *args, **kwargs):
    if model.optimizer.steps == STEP:
        if self.rank == 0:
            print(f"killing rank 1 at {time.monotonic() - START:.3f} s", file=sys.__stdout__,
                  flush=True)
        else:
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)
    return step(self, model, *args, **kwargs)


distributed.Distributed.train_step = train_step
sys.exit(main(["train", *sys.argv[1:]]))
