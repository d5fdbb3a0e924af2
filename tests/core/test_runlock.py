"""One writer per run: RUN/.lock refuses a second writer, is released, and a dead writer's lock is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from segcli.core.rundir import LOCK_NAME, RunDir
from segcli.core.runlock import RunLock
from segcli.errors import UserError


def plant(run: RunDir, pid: int, host: str | None = None) -> Path:
    """A lock as another process (``pid`` on ``host``) would have written it."""
    path = run.path / LOCK_NAME
    record = {"pid": pid, "host": host or socket.gethostname(), "since": "2026-01-01 00:00:00"}
    path.write_text(json.dumps(record) + "\n")
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with RunLock.acquire(run) as lock:
        record = json.loads(lock.path.read_text())
        assert (record["pid"], record["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(UserError, match=rf"another seg train is writing this run \(pid {os.getpid()} on "):
            RunLock.acquire(run)  # a second writer in this process too
    assert not (tmp_path / LOCK_NAME).exists()
    RunLock.acquire(run).release()  # free again


def test_a_live_writer_is_refused_in_one_line(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    path = plant(run, os.getppid())  # a process that runs
    with pytest.raises(UserError) as info:
        RunLock.acquire(run)
    message = str(info.value)
    assert "\n" not in message and f"pid {os.getppid()}" in message and f"delete {path}" in message
    assert json.loads(path.read_text())["pid"] == os.getppid()  # not taken, not removed


def test_a_lock_from_another_host_is_never_guessed_about(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    plant(run, dead_pid(), host="elsewhere.example")
    with pytest.raises(UserError, match="on elsewhere.example"):
        RunLock.acquire(run)


def test_a_dead_writers_lock_is_taken_over(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    plant(run, dead_pid())
    with RunLock.acquire(run) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not lock.path.exists()


def test_an_empty_lock_is_stale_only_after_a_grace(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    path = run.path / LOCK_NAME
    path.write_text("")  # its maker may be writing it now
    with pytest.raises(UserError, match=r"pid \? on \?"):
        RunLock.acquire(run)
    os.utime(path, (1, 1))  # long ago: its maker died before writing it
    RunLock.acquire(run).release()


def test_release_leaves_a_lock_that_is_not_ours(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    lock = RunLock.acquire(run)
    plant(run, os.getppid())  # someone removed ours by hand and took the run
    lock.release()
    assert json.loads(lock.path.read_text())["pid"] == os.getppid()
