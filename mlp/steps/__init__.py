"""The ways of running a model's training step, each a small module over the model's
:meth:`~mlp.model.Network.gradients` and its optimizer's update rule (:mod:`mlp.optimizers`):

- eager: the model's own :meth:`~mlp.model.Network.eager_step`, the gradients, then one update;
- compiled (:mod:`mlp.steps.compiled`): the whole step as one ``jax.jit`` function;
- captured (:mod:`mlp.steps.captured`): the step recorded once as a CUDA graph and replayed;
- data-parallel (:mod:`mlp.distributed`): the allreduce of the gradient between the two.

The step is the caller's choice: :func:`choose` installs one as ``model.step``, which
:meth:`~mlp.model.Network.train_step` and the :class:`~mlp.train.Trainer` then run (the
command line and the trainer choose; so can a user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .captured import GraphStep
from .compiled import CompiledStep, compiled_step

if TYPE_CHECKING:
    from ..model import Network, Step

__all__ = ["CompiledStep", "GraphStep", "choose"]


def choose(model: Network, jit: bool | None = None,
           cuda_graph: bool = False) -> Step:
    """Install on ``model`` the step it runs, and return it: compiled with ``jit=True`` (a
    ``ValueError`` where the backend does not compile or the optimizer has no update rule), and
    with ``jit=None`` wherever it can be (JAX); captured with ``cuda_graph=True`` (a
    ``ValueError`` where it cannot be); otherwise the eager step."""
    compiled = compiled_step(model, jit)
    captured = GraphStep(model) if cuda_graph else None
    model.step = compiled or captured or model.eager_step
    return model.step
