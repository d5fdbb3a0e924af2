"""One writer per run: ``RUN/.lock`` names the process training the run (pid, host, since when).

Two ``seg train --resume RUN`` at once would train the same epoch into the same files; the second is
refused with one line instead. The lock is a file made with ``O_EXCL`` (atomic on local and NFS v3+ file
systems), removed when training ends (and at the process's exit, whatever ended it). A lock left by a
process that died without removing it (SIGKILL, power cut) is taken over when it names this host and a
pid that no longer runs; one from another host is never guessed about: the message says how to remove it.
Under torchrun only rank 0 takes it (:func:`segcli.train.trainer.train`).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segcli.core.rundir import LOCK_NAME, RunDir
from segcli.errors import UserError

_HELD: set[Path] = set()  # the locks this process holds now
_DAMAGED_GRACE_S = 5.0  # a lock file still empty this long after it was made: its maker died before writing it


@dataclass
class RunLock:
    """The lock this process holds on a run; :meth:`release` removes it (once)."""

    path: Path

    @classmethod
    def acquire(cls, run: RunDir) -> RunLock:
        """Take ``run``'s lock, or a UserError naming the process that holds it and what to do."""
        path = run.path / LOCK_NAME
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):  # a stale lock removed, then taken: another process may win the race in between
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = _read(path)
                if not _stale(path, holder):
                    raise UserError(_refusal(run, path, holder)) from None
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(me) + "\n")
            _HELD.add(path.resolve())
            lock = cls(path)
            atexit.register(lock.release)
            return lock
        raise UserError(f"{run.path}: cannot take {path}: other processes keep taking it; try again")

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Remove the lock if this process still holds it (idempotent)."""
        key = self.path.resolve()
        if key not in _HELD:
            return
        _HELD.discard(key)
        holder = _read(self.path)
        if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    """The lock's record, or {} when it is gone, empty or damaged."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return True
    return True


def _stale(path: Path, holder: dict[str, Any]) -> bool:
    """True when the lock's maker is gone: on this host with a pid that does not run (or is this process, from
    an earlier call that did not release it), or a lock never written whose maker had time enough."""
    if not holder:
        try:
            return time.time() - path.stat().st_mtime > _DAMAGED_GRACE_S
        except FileNotFoundError:
            return True
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == os.getpid():
        return path.resolve() not in _HELD
    return not _alive(holder["pid"])


def _refusal(run: RunDir, path: Path, holder: dict[str, Any]) -> str:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
    return (
        f"{run.path}: another seg train is writing this run ({who}); wait for it to end or stop it "
        f"(if that process is gone, delete {path})"
    )
