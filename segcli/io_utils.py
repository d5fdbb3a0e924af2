"""Atomic file writes and never-overwrite path helpers shared by every command."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (setting it races other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_temp(
    path: str | os.PathLike, writer: Callable[[Path], None], suffix: str | None = None, durable: bool = False
) -> Path:
    """Call ``writer(tmp_path)`` on a new temp file ``.<name>.XXXX`` beside ``path``; return the temp path.

    The temp is removed when ``writer`` fails; renaming it onto ``path`` is the caller's part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; give the mode a plain open() would
    try:
        writer(tmp_path)
        if durable:  # checkpoints: the bytes reach the disk before a rename makes them the real file
            _fsync(tmp_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return tmp_path


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
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = False) -> Path:
    """Write text atomically (UTF-8)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), durable=durable)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes atomically."""
    return atomic_write(path, lambda p: p.write_bytes(data))


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
