"""A save is one consistent set of files: a kill between any two writes still resumes to one row per epoch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import segcli.train.commit as commit_mod
from segcli.core.checkpoint import read_metadata
from segcli.core.rundir import RunDir
from segcli.errors import CheckpointError
from segcli.train.commit import InterruptedAfterSave, commit, read_manifest, recover
from segcli.train.trainer import train


class Killed(Exception):
    """Stands for a SIGKILL between two file operations of a save."""


def epochs_in(run_dir: Path) -> list[int]:
    return [int(r["epoch"]) for r in csv.DictReader((run_dir / "metrics.csv").open())]


def temps(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.rglob(".*") if p.is_file())


def fail_on(monkeypatch: pytest.MonkeyPatch, name: str, what: str, nth: int) -> None:
    """Make the ``nth`` stage (write) or rename of the file ``name`` die like a kill, leaving its temps behind."""
    seen = {"n": 0}
    real = getattr(commit_mod, what)

    def fake(path: Path, *rest: object) -> object:
        target = rest[0] if what == "_rename" else path
        if Path(target).name == name:
            seen["n"] += 1
            if seen["n"] == nth:
                if what == "_stage":  # a kill mid-write leaves this file's temp, like the earlier ones
                    Path(path).with_name(f".{name}.killed{Path(path).suffix}").write_bytes(b"partial")
                raise Killed(f"{what} {name}")
        return real(path, *rest)

    monkeypatch.setattr(commit_mod, what, fake)


def consistent(run_dir: Path) -> int:
    """The epoch the run's files all agree on."""
    manifest = read_manifest(RunDir(run_dir))
    state = torch.load(run_dir / "state.pt", weights_only=True)
    last = int(read_metadata(run_dir / "weights" / "last.safetensors")["epoch"])
    assert manifest["epoch"] == state["epoch"] == last
    assert epochs_in(run_dir) == list(range(1, last + 1))
    return last


@pytest.mark.parametrize(
    ("what", "name"),
    [
        ("_stage", "last.safetensors"),  # metrics.csv staged, the weights not
        ("_stage", "state.pt"),  # every file but the state staged
        ("_rename", "last.safetensors"),  # committed: metrics.csv renamed, the rest pending
        ("_rename", "state.pt"),  # committed: everything renamed but the state
    ],
)
def test_kill_between_writes_then_resume(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch, what: str, name: str
) -> None:
    over = [*tiny_overrides, "train.epochs=3"]
    fail_on(monkeypatch, name, what, nth=2)  # during epoch 2's save
    with pytest.raises(Killed):
        train("quickstart", over)
    monkeypatch.undo()
    run_dir = Path(tiny_overrides[1].split("=", 1)[1]) / "quickstart" / "1"
    assert temps(run_dir), "the kill should leave temp files behind"

    recover(RunDir(run_dir))
    assert temps(run_dir) == []
    assert consistent(run_dir) == (2 if what == "_rename" else 1)  # committed saves roll forward, others never were

    res = train(resume=run_dir)
    assert res.epochs == 3 and epochs_in(run_dir) == [1, 2, 3] and consistent(run_dir) == 3
    assert temps(run_dir) == []


def test_commit_writes_a_manifest_naming_its_files(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    files = {run.metrics: lambda p: p.write_text("epoch\n1\n"), run.state: lambda p: p.write_bytes(b"s")}
    commit(run, epoch=1, step=4, files=files)
    manifest = json.loads(run.manifest.read_text())
    assert (manifest["epoch"], manifest["step"], manifest["files"]) == (1, 4, ["metrics.csv", "state.pt"])
    assert run.state.read_bytes() == b"s" and temps(tmp_path) == []


def test_writer_error_leaves_no_temp_and_the_previous_save(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    commit(run, 1, 4, {run.state: lambda p: p.write_bytes(b"one")})

    def broken(p: Path) -> None:
        p.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        commit(run, 2, 8, {run.metrics: lambda p: p.write_text("x"), run.state: broken})
    assert run.state.read_bytes() == b"one" and read_manifest(run)["epoch"] == 1
    assert not run.metrics.exists() and temps(tmp_path) == []


def test_no_space_left_is_one_line_and_keeps_the_previous_save(tmp_path: Path) -> None:
    import errno

    from safetensors import SafetensorError

    from segcli.errors import OutputError

    run = RunDir(tmp_path)
    commit(run, 1, 4, {run.state: lambda p: p.write_bytes(b"one")})

    def full(p: Path) -> None:
        p.write_bytes(b"ha")
        raise OSError(errno.ENOSPC, "No space left on device")

    def safetensors_full(p: Path) -> None:  # what safetensors' save_file raises on a full disk
        p.write_bytes(b"ha")
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    for writer in (full, safetensors_full):
        with pytest.raises(OutputError, match=r"no space left on the disk while saving epoch 2 .* intact: free space"):
            commit(run, 2, 8, {run.metrics: lambda p: p.write_text("x"), run.state: writer})
        assert run.state.read_bytes() == b"one" and read_manifest(run)["epoch"] == 1 and temps(tmp_path) == []


def test_damaged_manifest_is_a_checkpoint_error(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.manifest.write_text("{not json")
    with pytest.raises(CheckpointError, match="checkpoint.json: damaged checkpoint manifest"):
        recover(run)


def test_a_relative_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`seg train` with the default train.out_dir = "runs" gives a relative run path; temps are absolute."""
    monkeypatch.chdir(tmp_path)
    run = RunDir(Path("runs/x/1"))
    run.path.mkdir(parents=True)
    commit(run, 1, 4, {run.state: lambda p: p.write_bytes(b"one"), run.weights("last"): lambda p: p.write_bytes(b"w")})
    manifest = read_manifest(run)
    assert manifest["files"] == ["state.pt", "weights/last.safetensors"] and manifest["epoch"] == 1
    assert run.state.read_bytes() == b"one" and temps(tmp_path) == []


def test_sigint_during_a_save_is_raised_after_it(tmp_path: Path) -> None:
    """A real SIGINT while a file of the save is written: the save completes, then KeyboardInterrupt."""
    import os
    import signal

    run = RunDir(tmp_path)

    def interrupted(p: Path) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        p.write_bytes(b"state")

    with pytest.raises(InterruptedAfterSave):
        commit(run, 1, 4, {run.metrics: lambda p: p.write_text("epoch\n1\n"), run.state: interrupted})
    assert read_manifest(run)["epoch"] == 1 and run.state.read_bytes() == b"state" and temps(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_keyboard_interrupt_from_a_writer_finishes_the_save_then_goes_on(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    calls: list[Path] = []

    def once(p: Path) -> None:
        calls.append(p)
        p.write_bytes(b"half")
        if len(calls) == 1:
            raise KeyboardInterrupt
        p.write_bytes(b"state")

    with pytest.raises(InterruptedAfterSave):
        commit(run, 2, 8, {run.state: once})
    assert read_manifest(run)["epoch"] == 2 and run.state.read_bytes() == b"state" and temps(tmp_path) == []


def test_recover_removes_the_debris_of_killed_writes_and_only_that(tmp_path: Path) -> None:
    """A kill during the weights', a plot's or the report's rename leaves ``.<name>.segtmp-…`` files: resume
    removes them (and only them: a user's dot-files, eval/ and export/ stay)."""
    from segcli.io_utils import write_temp

    run = RunDir(tmp_path)
    commit(run, 1, 4, {run.state: lambda p: p.write_bytes(b"one")})
    debris = [
        write_temp(run.weights("last"), lambda p: p.write_bytes(b"w" * 64)),
        write_temp(run.plots_dir / "curves.png", lambda p: p.write_bytes(b"png")),
        write_temp(run.report, lambda p: p.write_text("<html>")),
    ]
    kept = [run.path / ".notes", run.plots_dir / ".keep", run.eval_dir / ".val.json.segtmp-1-2-3.json"]
    for p in kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("mine")
    assert recover(run)["epoch"] == 1
    assert not any(p.exists() for p in debris) and all(p.exists() for p in kept)


def test_a_second_sigint_during_a_save_stops_at_once_and_keeps_the_previous_save(tmp_path: Path) -> None:
    import os
    import signal

    run = RunDir(tmp_path)
    commit(run, 1, 4, {run.state: lambda p: p.write_bytes(b"one")})
    calls: list[Path] = []

    def insisting(p: Path) -> None:
        calls.append(p)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        p.write_bytes(b"two")

    with pytest.raises(KeyboardInterrupt) as info:
        commit(run, 2, 8, {run.state: insisting})
    assert not isinstance(info.value, InterruptedAfterSave) and len(calls) == 1  # no second try
    assert read_manifest(run)["epoch"] == 1 and run.state.read_bytes() == b"one" and temps(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
