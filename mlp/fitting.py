"""The model users build: :class:`MLP`, the network of :mod:`mlp.model` with ``fit``, which
trains it with the :class:`~mlp.train.Trainer` the command line uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import checks
from .inputs import DeviceData
from .model import Network, on_device
from .train import Trainer


class MLP(Network):
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]`` that trains itself.

    ``MLP([784, 512, 512, 10])`` is :class:`~mlp.model.Network` (same arguments: the
    architecture as :func:`~mlp.architecture.build_layers` describes it, then ``loss``,
    ``optimizer``, ``backend``, ``device``, ``dtype``, ``seed``, ``fast``, ``host_masks``) with
    :meth:`fit`.
    """

    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int = 128,
        validation: tuple[Any, Any] | None = None,
        callbacks: Sequence[Callable[[dict[str, Any]], None]] | None = None,
        seed: int | None = 0,
        progress: Callable[..., Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Train for ``epochs`` on shuffled mini-batches; returns one metrics dict per epoch
        (``epoch``, ``train_loss``, ``train_acc``, ``seconds``, ``samples_per_s``, ``lr``, and
        with ``validation`` ``test_loss``/``test_acc``).

        Args:
            x: ``(N, sizes[0])`` inputs, host NumPy or on the model's device: uint8 pixels
                (scaled by 1/255 batch by batch, the set itself stays uint8) or floats (cast
                to the model dtype, otherwise used as they are).
            y: ``(N,)`` integer class labels in ``[0, sizes[-1])``.
            epochs, batch_size: integers of at least 1.
            validation: ``(x, y)`` evaluated after every epoch.
            callbacks: each called with the epoch's metrics dict after every epoch.
            seed: seeds the shuffling.
            progress: a progress-bar factory (see :class:`~mlp.train.Trainer`), e.g. tqdm.

        Every set is checked once per call, before training: at least one row, no NaN or
        infinite input, every label in ``[0, sizes[-1])``.

        Raises:
            ValueError: a bad argument or set (the message names it).
            TypeError: inputs neither uint8 nor floating point, or labels not integers.
            mlp.errors.TrainingError: the loss became NaN or infinite.
        """
        epochs = checks.count_argument("epochs", epochs)
        batch_size = checks.count_argument("batch_size", batch_size)
        hooks = list(callbacks or [])

        def on_epoch(metrics: dict[str, Any]) -> None:
            for hook in hooks:
                hook(metrics)

        train = self._checked(x, y, "")
        test = None if validation is None else self._checked(*validation, "validation ")
        trainer = Trainer(self, train, test, batch_size=batch_size,
                          epochs=epochs, seed=seed, on_epoch=on_epoch, progress=progress)
        return trainer.fit()

    @on_device
    def _checked(self, x: Any, y: Any, which: str) -> DeviceData:
        """``(x, y)`` on the device, once its values are checked (:func:`~mlp.checks.check_set`,
        one read-back for the whole set); ``which`` prefixes the names in messages."""
        data = DeviceData(self, x, y, which)
        checks.check_set(data.x, data.y, self.sizes[-1], self.backend, which)
        return data
