"""Errors the command line reports as one clear line (no traceback unless ``--debug``)."""

from __future__ import annotations


class MLPError(Exception):
    """Base of the project's own errors: the message says what is wrong and what to do."""


class UsageError(MLPError):
    """A bad option value: reported as a usage error (one line, exit status 2)."""


class DataError(MLPError):
    """A data file is missing, corrupt, of the wrong kind, or failed verification."""


class CheckpointError(MLPError):
    """A checkpoint cannot be written, or is not a valid checkpoint for this model."""


class TrainingError(MLPError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


class StopRequested(Exception):
    """Raised by :meth:`mlp.train.Trainer.fit` after the step during which a stop was requested
    (its state then resumes from the next step)."""
