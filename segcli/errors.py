"""One exception hierarchy for the whole package.

The CLI turns a :class:`SegError` into one red line on stderr. Errors caused by what the user
gave (a preset, a dataset, a path, a checkpoint) are :class:`UserError` and exit with code 2;
anything that went wrong while doing valid work exits with code 1.
"""

from __future__ import annotations


class SegError(Exception):
    """Base class of every error segcli raises on purpose."""

    exit_code = 1


class UserError(SegError):
    """Bad input from the user: the message says what to change."""

    exit_code = 2


class PresetError(UserError):
    """A preset file, key or value is wrong."""


class DataError(UserError):
    """A dataset, image or mask is missing, unreadable or inconsistent."""


class CheckpointError(UserError):
    """A checkpoint or pretrained file cannot be used."""


class ExportError(SegError):
    """Export to another format failed or did not verify."""


class TrainingError(SegError):
    """Training cannot go on (for example the loss became NaN)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the run's last finished epoch was saved; the message is the hint.

    A KeyboardInterrupt, not a SegError: ``except Exception`` must never swallow Ctrl-C.
    """

    exit_code = 130
