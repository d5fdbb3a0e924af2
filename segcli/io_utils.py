"""Atomic file writes and never-overwrite path helpers shared by every command."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

_TEMP_COUNTER = itertools.count()
TEMP_TAG = "segtmp"  # every temp file segcli writes is ``.<name>.segtmp-<pid>-<thread>-<n><suffix>``
_TEMP_NAME = re.compile(rf"^\..+\.{TEMP_TAG}-\d+-\d+-\d+(\..*)?$")


def is_temp(name: str) -> bool:
    """True for the name of a temp file of segcli's atomic writes (and only those: cleanup touches only ours)."""
    return bool(_TEMP_NAME.match(name))


def remove_temps(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete segcli's temp files (:func:`is_temp`) directly inside ``folders``: what a killed write left behind.

    Only for folders no other process writes to at the same time (a run directory under its lock); returns
    the files removed.
    """
    removed = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            if is_temp(f.name) and f.is_file():
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed


def _with_path(e: BaseException, path: Path, tmp: Path | None = None) -> BaseException:
    """``e`` naming ``path`` when it is a file-system error that names no file (or names our temp file):
    ``os.write`` on a full disk, a library that turns ENOSPC into its own exception (safetensors)."""
    from segcli.errors import os_errno

    code = os_errno(e)
    if code is None or isinstance(e, (KeyboardInterrupt, SystemExit)):
        return e
    named = getattr(e, "filename", None)
    if isinstance(e, OSError) and named is not None and (tmp is None or Path(os.fsdecode(named)) != tmp):
        return e
    return OSError(code, os.strerror(code), str(path))


def _create_temp(path: Path, suffix: str) -> tuple[int, Path]:
    """Create a new temp file ``.<name>.segtmp-<pid>-<thread>-<n><suffix>`` beside ``path`` → (descriptor, path).

    Created with mode 0666 so the kernel applies the umask (what a plain ``open()`` gives), without a
    chmod or a umask lookup; the parent folders are made only when missing. Few system calls: inference
    writes two small files an image, and on a virtual machine's disk a call can cost tens of microseconds.
    """
    made_parent = False
    for _ in range(100):
        name = f".{path.name}.{TEMP_TAG}-{os.getpid()}-{threading.get_native_id()}-{next(_TEMP_COUNTER)}{suffix}"
        tmp = path.with_name(name)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileNotFoundError:
            if made_parent:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
            made_parent = True
        except FileExistsError:  # a leftover of a killed process with the same pid: take the next number
            continue
    raise FileExistsError(f"{path.parent}: cannot create a temp file for {path.name}")


def write_temp(
    path: str | os.PathLike, writer: Callable[[Path], None], suffix: str | None = None, durable: bool = False
) -> Path:
    """Call ``writer(tmp_path)`` on a new temp file ``.<name>.segtmp-<pid>-<thread>-<n>`` beside ``path``; return it.

    The temp is removed when ``writer`` fails; renaming it onto ``path`` is the caller's part. A file-system
    error (full disk, read-only folder) names ``path``, whatever the writer raised it as. The file keeps the mode
    the umask gave it at creation, also when the writer made it anew (safetensors' ``save_file`` leaves 0600).
    """
    path = Path(path)
    fd, tmp_path = _new_temp(path, suffix or path.suffix)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    with _removed_on_error(path, tmp_path):
        writer(tmp_path)
        if stat.S_IMODE(os.stat(tmp_path).st_mode) != mode:
            os.chmod(tmp_path, mode)
        if durable:  # checkpoints: the bytes reach the disk before a rename makes them the real file
            _fsync(tmp_path)
    return tmp_path


def _new_temp(path: Path, suffix: str) -> tuple[int, Path]:
    """:func:`_create_temp`, its failure naming ``path``."""
    try:
        return _create_temp(path, suffix)
    except OSError as e:
        raise _with_path(e, path) from None


@contextlib.contextmanager
def _removed_on_error(path: Path, tmp: Path) -> Iterator[None]:
    """Remove the temp file ``tmp`` when the block fails; a file-system error is raised again naming ``path``."""
    try:
        yield
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        named = _with_path(e, path, tmp)
        if named is e:
            raise
        raise named from e


def _fsync(path: Path) -> None:
    """Flush a file (or, on POSIX, a folder's entries) to disk; best effort where the OS refuses."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike, writer: Callable[[Path], None], suffix: str | None = None, durable: bool = False
) -> Path:
    """Call ``writer(tmp_path)`` then rename the temp file onto ``path``.

    A crash never leaves a half-written file at ``path``. ``suffix`` keeps the extension on the
    temp file (OpenCV picks the encoder from it). ``durable`` also survives a power cut (fsync of
    the file and the folder): for checkpoints, not for the thousands of files a conversion writes.
    """
    path = Path(path)
    tmp_path = write_temp(path, writer, suffix, durable)
    try:
        os.replace(tmp_path, path)
        if durable:
            _fsync(path.parent)
    except OSError as e:
        raise _with_path(e, path, tmp_path) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = False) -> Path:
    """Write text atomically (UTF-8)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), durable=durable)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes atomically: a temp file beside ``path``, written through the descriptor that created it,
    then renamed (the fewest system calls: inference writes two small files an image)."""
    path = Path(path)
    fd, tmp = _new_temp(path, path.suffix)
    with _removed_on_error(path, tmp):
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    return path


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a file name (surrogate escapes) shown as ``\\xff``.

    ``os.fsdecode`` turns a name that is not UTF-8 into lone surrogates, which no UTF-8 writer accepts:
    every text that shows a file name to a person (console, log.txt, report.html) goes through this.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def require_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` when it is a folder or does not exist yet; a UserError when it (or a parent) is a file."""
    from segcli.errors import UserError

    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{p}: {option} must be a folder, but this is a file; choose another {option}")
            break
    return path


def next_numbered_dir(parent: str | os.PathLike) -> Path:
    """Create and return ``parent/N`` with N one more than the largest existing number.

    Uses ``mkdir(exist_ok=False)`` so two concurrent runs never share a directory.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        taken = [int(p.name) for p in parent.iterdir() if p.name.isdigit()]
        candidate = parent / str(max(taken, default=0) + 1)
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue


def next_free_path(path: str | os.PathLike) -> Path:
    """``path`` if it does not exist, else ``stem-2.ext``, ``stem-3.ext``... (never overwrite)."""
    path = Path(path)
    if not path.exists():
        return path
    k = 2
    while True:
        cand = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not cand.exists():
            return cand
        k += 1


def json_safe(obj):  # noqa: ANN001, ANN201 - any JSON-like structure
    """Replace NaN/inf floats by None (strict JSON has no NaN) and paths by strings."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj, indent: int | None = 2) -> str:  # noqa: ANN001
    """Strict JSON text (NaN → null)."""
    import json

    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)
