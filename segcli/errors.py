"""One exception hierarchy for the whole package.

The CLI turns a :class:`SegError` into one red line on stderr. Errors caused by what the user
gave (a preset, a dataset, a path, a checkpoint) are :class:`UserError` and exit with code 2;
anything that went wrong while doing valid work exits with code 1.
"""

from __future__ import annotations

import errno
import os
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


class OutputError(UserError):
    """A file cannot be written where the user asked: read-only folder, no permission, disk full.

    Built by :func:`from_os_error`; the message names the path and what to do.
    """


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


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_ADVICE = {
    errno.EROFS: "the file system is read-only; write somewhere else (another output folder) or remount it read-write",
    errno.EACCES: "permission denied; choose a folder you can write to, or fix the permissions of this one",
    errno.EPERM: "operation not permitted; choose a folder you can write to, or fix the permissions of this one",
    errno.ENOSPC: "no space left on the disk; free some space (or write elsewhere), then run the command again",
    errno.EDQUOT: "disk quota exceeded; free some space (or write elsewhere), then run the command again",
}


# how an OS error reads once a library has turned it into text (Rust's io::Error as safetensors shows it)
_IN_TEXT = [
    (code, re.compile(rf"{os.strerror(code)}|os error {code}\b|code: {code}\b|{kind}"))
    for code, kind in (
        (errno.ENOSPC, "StorageFull"),
        (errno.EDQUOT, "QuotaExceeded"),
        (errno.EROFS, "ReadOnlyFilesystem"),
    )
]
_IN_TEXT.append((errno.ENOSPC, re.compile(r"\d+ requested and \d+ written")))  # numpy's short write: a full disk


def os_errno(e: BaseException) -> int | None:
    """The errno behind ``e``: its own, one of its causes', or (for libraries that turn an OS error into
    text, as safetensors' SafetensorError does) the one its message names; None when there is none."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e.errno
        for code, pattern in _IN_TEXT:
            if pattern.search(str(e)):
                return code
        e = e.__cause__ or e.__context__
    return None


def is_no_space(e: BaseException) -> bool:
    """True when ``e`` (or what caused it) is a full disk or an exceeded quota."""
    return os_errno(e) in NO_SPACE


def from_os_error(e: BaseException, path: str | os.PathLike | None = None) -> OutputError | None:
    """One line for an error the user can fix at the file system (read-only, permission, full disk, quota):
    the path (``e.filename``, else ``path``) and what to do; None for any other error or when no path is known."""
    code = os_errno(e)
    if code not in _ADVICE:
        return None
    name = getattr(e, "filename", None) or path
    if name is None:
        return None
    return OutputError(f"{os.fsdecode(name)}: {_ADVICE[code]}")
