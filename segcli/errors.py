"""One exception hierarchy for the whole package.

The CLI turns a :class:`SegError` into one red line on stderr. Errors caused by what the user
gave (a preset, a dataset, a path, a checkpoint) are :class:`UserError` and exit with code 2;
anything that went wrong while doing valid work exits with code 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable


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


_ARG = re.compile(r"`([a-z][a-z0-9_]*)`")


def arg(name: str) -> str:
    """How the engine names a call argument or prediction-protocol field in a message: ```name```.

    A Python caller reads the keyword it passed (``tile``); the command line shows its flag instead
    (:func:`segcli.cli.flags.cli_message` maps each name to the flag that sets it, ``--tile``). Preset keys
    are named as they are (``train.device``): they read the same everywhere.
    """
    return f"`{name}`"


def named_args(message: str) -> list[str]:
    """The argument names :func:`arg` marked in ``message``, in order."""
    return _ARG.findall(message)


def render_args(message: str, show: Callable[[str], str]) -> str:
    """``message`` with each marked argument name replaced by ``show(name)``."""
    return _ARG.sub(lambda m: show(m.group(1)), message)
