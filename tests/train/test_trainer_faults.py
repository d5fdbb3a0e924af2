"""Faults while training (issue 26): Ctrl-C inside a save, debris of killed writes, a second writer, a full disk,
non-finite numbers; each made by patching the write layer and checked by resuming."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import segcli.train.trainer as trainer_mod
from segcli.core.rundir import RunDir
from segcli.errors import TrainingInterrupted
from segcli.train.commit import read_manifest
from segcli.train.trainer import train


def epochs_in(run_dir: Path) -> list[int]:
    return [int(r["epoch"]) for r in csv.DictReader((run_dir / "metrics.csv").open())]


def run_of(tiny_overrides: list[str], n: int = 1) -> Path:
    return Path(tiny_overrides[1].split("=", 1)[1]) / "quickstart" / str(n)


def test_ctrl_c_while_the_state_is_written_keeps_the_finished_epoch(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C half-way through epoch 1's state.pt: the save is finished before stopping, the log's "1 finished
    epoch(s) saved" is true, and resume goes on with epoch 2 (before, epoch 1 was lost)."""
    real, calls = trainer_mod.state_writer, []

    def state_writer(state: dict) -> object:
        write = real(state)

        def interrupted_once(path: Path) -> None:
            calls.append(path)
            if len(calls) == 1:
                path.write_bytes(b"half a state")
                raise KeyboardInterrupt
            write(path)

        return interrupted_once

    monkeypatch.setattr(trainer_mod, "state_writer", state_writer)
    with pytest.raises(TrainingInterrupted, match="interrupted: resume with seg train --resume"):
        train("quickstart", tiny_overrides)
    monkeypatch.undo()
    run_dir = run_of(tiny_overrides)
    assert read_manifest(RunDir(run_dir))["epoch"] == 1 and epochs_in(run_dir) == [1]
    assert torch.load(run_dir / "state.pt", weights_only=True)["epoch"] == 1
    assert (run_dir / "weights" / "last.safetensors").is_file()
    assert "1 finished epoch(s) saved" in (run_dir / "log.txt").read_text()
    res = train(resume=run_dir)
    assert res.epochs == 2 and epochs_in(run_dir) == [1, 2]


def test_a_full_disk_while_saving_weights_is_one_line_exit_2(
    shapes_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """safetensors turns ENOSPC into its own SafetensorError: still one line naming the run, exit 2, the console
    never claims best.safetensors was written."""
    from cli_helpers import train_args, user_error
    from safetensors import SafetensorError

    import segcli.core.checkpoint as checkpoint_mod

    def full(*args: object, **kwargs: object) -> None:
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(checkpoint_mod, "save_file", full)
    line = user_error(
        capfd,
        train_args(shapes_root, tmp_path, "train.epochs=1"),
        "no space left on the disk",
        "seg train --resume",
        progress=True,
    )
    run_dir = tmp_path / "runs" / "quickstart" / "1"
    assert str(run_dir) in line
    assert "best.safetensors updated" not in (run_dir / "log.txt").read_text()
    assert not [p for p in run_dir.rglob("*") if p.is_file() and "segtmp" in p.name]


def test_a_kill_at_the_first_rename_is_explained_on_resume(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import segcli.io_utils as io_utils
    from segcli.errors import UserError

    real = os.replace

    def killed(src: object, dst: object) -> None:
        if Path(dst).name == "preset.toml":
            raise SystemExit("killed")  # stands for SIGKILL: nothing after it runs
        real(src, dst)

    monkeypatch.setattr(io_utils.os, "replace", killed)
    with pytest.raises(SystemExit):
        train("quickstart", tiny_overrides)
    monkeypatch.undo()
    with pytest.raises(UserError, match="has no preset.toml .a run killed while starting.*delete it or start a new"):
        train(resume=run_of(tiny_overrides))


def test_a_second_writer_of_a_run_is_refused_and_changes_nothing(
    tiny_overrides: list[str], capfd: pytest.CaptureFixture
) -> None:
    """`seg train --resume RUN --extend train.epochs=N` while another process trains RUN: one line, exit 2,
    preset.toml and metrics.csv as they were; once the writer is gone its lock is taken over."""
    import json
    import os
    import socket

    from cli_helpers import user_error

    from segcli.core.rundir import LOCK_NAME

    res = train("quickstart", [*tiny_overrides, "train.epochs=1"])
    run_dir = Path(res.run_dir)
    assert not (run_dir / LOCK_NAME).exists()  # released at the end
    before = {n: (run_dir / n).read_bytes() for n in ("preset.toml", "metrics.csv")}
    lock = {"pid": os.getppid(), "host": socket.gethostname(), "since": "2026-01-01 00:00:00"}
    (run_dir / LOCK_NAME).write_text(json.dumps(lock))
    args = ["train", "--resume", run_dir, "--extend", "train.epochs=2"]
    user_error(capfd, args, str(run_dir), "another seg train is writing this run", f"pid {os.getppid()}")
    assert {n: (run_dir / n).read_bytes() for n in before} == before


@pytest.mark.parametrize(
    "override", ["optim.lr=inf", "optim.lr=nan", "optim.lr=-inf", "data.batch_size=99999999999999999999999"]
)
def test_non_finite_and_huge_values_are_refused_before_a_run_directory_exists(
    tiny_overrides: list[str], override: str
) -> None:
    from segcli.errors import PresetError

    key, value = override.split("=")
    section, name = key.split(".")
    with pytest.raises(PresetError, match=rf"\[{section}\] {name} = {value} (must be a finite number|is out of range)"):
        train("quickstart", [*tiny_overrides, override])
    assert not run_of(tiny_overrides).parent.exists()


def test_weights_that_become_nan_are_never_saved(tiny_overrides: list[str]) -> None:
    """An update that overflows after a finite loss (here: a weight set to NaN after epoch 2's validation) stops
    the run with one line before the save; epoch 1's save, best weights included, stays as it was."""
    from safetensors.torch import load_file

    from segcli.core.callbacks import Callback, ValEnd
    from segcli.errors import TrainingError

    class Overflow(Callback):
        def on_val_end(self, val: ValEnd) -> None:
            if val.epoch == 1:  # after epoch 2's validation, before its save
                with torch.no_grad():
                    next(iter(val.model.parameters())).fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"weights became inf/NaN in epoch 2 .*lower optim.lr.*is kept"):
        train("quickstart", tiny_overrides, callbacks=[Overflow()])
    run_dir = run_of(tiny_overrides)
    assert read_manifest(RunDir(run_dir))["epoch"] == 1 and epochs_in(run_dir) == [1]
    for name in ("last", "best"):
        weights = load_file(str(run_dir / "weights" / f"{name}.safetensors"))
        assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point()), name


def test_every_output_gets_0644_under_umask_022(
    tiny_overrides: list[str], shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Weights went through mkstemp (0600) while every other output was 0644: now each file of a run, and
    convert-ckpt's output, has the mode a plain open() gives under the user's umask."""
    import os
    import stat

    from safetensors.torch import load_file

    from segcli.cli.app import run

    old = os.umask(0o022)
    try:
        res = train("quickstart", [*tiny_overrides, "train.epochs=1", "train.ema=0.9"])
        run_dir = Path(res.run_dir)
        pth = tmp_path / "model.pth"
        torch.save(load_file(str(run_dir / "weights" / "last.safetensors")), pth)
        out = tmp_path / "converted.safetensors"
        args = ["convert-ckpt", pth, out, "--check", run_dir / "preset.toml", "--data", shapes_root]
        assert run([str(a) for a in args]) == 0, capsys.readouterr().err
    finally:
        os.umask(old)
    files = [p for p in run_dir.rglob("*") if p.is_file() and "tensorboard" not in p.parts]
    assert {"last.safetensors", "best.safetensors", "ema.safetensors", "state.pt"} <= {p.name for p in files}
    modes = {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in [*files, out]}
    assert {k: v for k, v in modes.items() if v != "0o644"} == {}


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_save(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loss turns NaN in epoch 2: the run stops with one line (exit 1: the run diverged) before validating or
    saving, and epoch 1's save stays the run's checkpoint, with finite weights; resume can go on from it."""
    from safetensors.torch import load_file

    from segcli.errors import TrainingError

    real, calls = trainer_mod.loss_from_preset, []

    def nan_from_epoch_2(*args: object, **kwargs: object) -> torch.nn.Module:
        criterion = real(*args, **kwargs)

        class Diverging(torch.nn.Module):
            def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                calls.append(1)
                loss = criterion(logits, target)
                return loss * float("nan") if len(calls) > 4 else loss  # 4 iterations per epoch

        return Diverging()

    monkeypatch.setattr(trainer_mod, "loss_from_preset", nan_from_epoch_2)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2.*the last save in the run directory is kept"):
        train("quickstart", tiny_overrides)
    run_dir = run_of(tiny_overrides)
    assert read_manifest(RunDir(run_dir))["epoch"] == 1 and epochs_in(run_dir) == [1]
    weights = load_file(str(run_dir / "weights" / "last.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


@pytest.mark.slow
def test_under_torchrun_a_second_writer_is_refused_on_every_rank(tiny_overrides: list[str]) -> None:
    """Rank 0 takes the lock and tells the others: both ranks stop with the one line, none waits for the other."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from segcli.core.rundir import LOCK_NAME

    run_dir = Path(train("quickstart", [*tiny_overrides, "train.epochs=1"]).run_dir)
    lock = {"pid": os.getppid(), "host": socket.gethostname(), "since": "2026-01-01 00:00:00"}
    (run_dir / LOCK_NAME).write_text(json.dumps(lock))
    before = (run_dir / "preset.toml").read_bytes()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "segcli"]
    cmd += ["train", "--resume", str(run_dir), "--extend", "train.epochs=2"]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode != 0
    assert res.stderr.count("another seg train is writing this run") == 2, res.stderr[-3000:]
    assert (run_dir / "preset.toml").read_bytes() == before and epochs_in(run_dir) == [1]
