"""Resuming: a run stopped mid-epoch continues to the same weights and one metrics row per epoch."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from segcli.core.callbacks import Callback
from segcli.train.trainer import train


class StopAt(Callback):
    """Raises inside the loop at (epoch, iteration), like a kill mid-epoch."""

    def __init__(self, epoch: int, it: int) -> None:
        self.at = (epoch, it)

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        if (epoch, it) == self.at:
            raise KeyboardInterrupt


def epochs_in(run_dir: Path) -> list[int]:
    return [int(r["epoch"]) for r in csv.DictReader((run_dir / "metrics.csv").open())]


@pytest.mark.slow
def test_resume_is_bitwise_identical(tiny_overrides: list[str]) -> None:
    over = [*tiny_overrides, "train.epochs=3", "train.deterministic=true", "data.num_workers=0"]
    full = train("quickstart", over)
    with pytest.raises(KeyboardInterrupt):
        train("quickstart", over, callbacks=[StopAt(epoch=1, it=1)])
    stopped = full.run_dir.parent / "2"
    assert epochs_in(stopped) == [1]
    resumed = train(resume=stopped)
    assert resumed.run_dir == stopped and epochs_in(stopped) == [1, 2, 3]
    a = load_file(str(full.run_dir / "weights" / "last.safetensors"))
    b = load_file(str(stopped / "weights" / "last.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # resuming a finished run does nothing and keeps the rows
    train(resume=stopped)
    assert epochs_in(stopped) == [1, 2, 3]


def test_resume_needs_a_run_dir(tmp_path: Path) -> None:
    from segcli.errors import UserError

    with pytest.raises(UserError, match="not a run directory"):
        train(resume=tmp_path)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tiny_overrides: list[str], tmp_path: Path) -> None:
    over = [o for o in tiny_overrides if not o.startswith("train.epochs")] + ["train.epochs=4"]
    cmd = [sys.executable, "-m", "segcli", "train", "quickstart", *over]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    run_dir = tmp_path / "runs" / "quickstart" / "1"
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "state.pt").is_file():
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = epochs_in(run_dir)
    assert 1 <= len(done) < 4, "the kill should land mid-run"
    rc = subprocess.run(
        [sys.executable, "-m", "segcli", "train", "--resume", str(run_dir)], env=env, capture_output=True, text=True
    )
    assert rc.returncode == 0, rc.stderr
    assert epochs_in(run_dir) == [1, 2, 3, 4]
    assert str(run_dir) in rc.stdout


def test_resume_reads_a_run_written_before_loss_keys_moved(tiny_overrides: list[str]) -> None:
    """A run directory whose preset.toml still has flat loss keys (segcli <= 0.1) resumes."""
    from segcli.config.toml_io import dumps_toml, load_toml

    res = train("quickstart", [*tiny_overrides, "train.epochs=1", 'loss.terms=["ohem"]'])
    raw = load_toml(res.run_dir / "preset.toml")
    assert "ohem" in raw["loss"]
    del raw["loss"]["ohem"]
    raw["loss"]["ohem_thresh"] = 0.6  # the old flat key
    (res.run_dir / "preset.toml").write_text(dumps_toml(raw))
    again = train(resume=res.run_dir)  # finished, so nothing to train, but the old preset must load
    assert again.run_dir == res.run_dir and epochs_in(res.run_dir) == [1]


def test_resume_finished_trains_nothing_then_extend_trains_one_more_epoch(tiny_overrides: list[str]) -> None:
    from segcli.config.toml_io import load_toml

    res = train("quickstart", tiny_overrides)  # 2 epochs
    steps = torch.load(res.run_dir / "state.pt", weights_only=True)["step"]
    again = train(resume=res.run_dir)
    assert again.run_dir == res.run_dir and epochs_in(res.run_dir) == [1, 2]
    assert torch.load(res.run_dir / "state.pt", weights_only=True)["step"] == steps

    longer = train(resume=res.run_dir, extend=["train.epochs=3"])
    assert longer.epochs == 3 and epochs_in(res.run_dir) == [1, 2, 3]
    state = torch.load(res.run_dir / "state.pt", weights_only=True)
    assert state["finished"] is True and state["step"] == steps * 3 // 2
    assert load_toml(res.run_dir / "preset.toml")["train"]["epochs"] == 3
    assert "extended train.epochs from 2 to 3" in (res.run_dir / "log.txt").read_text()
    # the schedule is recomputed from the new total: the last epoch ends annealed (poly lr near zero)
    rows = list(csv.DictReader((res.run_dir / "metrics.csv").open()))
    assert float(rows[-1]["lr"]) < float(rows[1]["lr"])


def test_extend_needs_resume(tiny_overrides: list[str]) -> None:
    from segcli.errors import UserError

    with pytest.raises(UserError, match="use it with --resume"):
        train("quickstart", tiny_overrides, extend=["train.epochs=3"])


def test_extend_iters_after_a_cut_short_epoch(tiny_overrides: list[str]) -> None:
    res = train("quickstart", [*tiny_overrides, "train.iters=5"])  # 4 steps per epoch: 2 epochs, the last cut short
    assert epochs_in(res.run_dir) == [1, 2]
    train(resume=res.run_dir, extend=["train.iters=7"])
    assert epochs_in(res.run_dir) == [1, 2, 3]
    assert torch.load(res.run_dir / "state.pt", weights_only=True)["step"] == 7


def test_ctrl_c_keeps_the_last_finished_epoch_and_resume_finishes(tiny_overrides: list[str]) -> None:
    from segcli.errors import TrainingInterrupted

    over = [*tiny_overrides, "train.epochs=3"]
    with pytest.raises(TrainingInterrupted, match=r"interrupted: resume with seg train --resume .*runs/quickstart/1"):
        train("quickstart", over, callbacks=[StopAt(epoch=1, it=2)])
    run_dir = Path(tiny_overrides[1].split("=", 1)[1]) / "quickstart" / "1"
    state = torch.load(run_dir / "state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 4 and not state["finished"]  # epoch 1's state, not a partial one
    assert epochs_in(run_dir) == [1]
    assert "interrupted during epoch 2; 1 finished epoch(s) saved" in (run_dir / "log.txt").read_text()
    train(resume=run_dir)
    assert epochs_in(run_dir) == [1, 2, 3]


def test_sigint_exits_130_with_the_resume_hint(tiny_overrides: list[str], tmp_path: Path) -> None:
    over = [o for o in tiny_overrides if not o.startswith("train.epochs")] + ["train.epochs=200"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "segcli", "train", "quickstart", *over],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    run_dir = tmp_path / "runs" / "quickstart" / "1"
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "state.pt").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if "interrupted" in line]
    assert lines == [f"interrupted: resume with seg train --resume {run_dir}"]
    state = torch.load(run_dir / "state.pt", weights_only=True)
    assert epochs_in(run_dir) == list(range(1, state["epoch"] + 1))


def test_a_run_stopped_before_its_first_save_starts_over_in_place(tiny_overrides: list[str]) -> None:
    from segcli.errors import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        train("quickstart", tiny_overrides, callbacks=[StopAt(epoch=0, it=1)])
    run_dir = next((Path(tiny_overrides[1].split("=", 1)[1]) / "quickstart").iterdir())
    assert not (run_dir / "state.pt").exists() and (run_dir / "preset.toml").is_file()
    res = train(resume=run_dir)
    assert res.run_dir == run_dir and epochs_in(run_dir) == [1, 2]
    assert "stopped before its first checkpoint" in (run_dir / "log.txt").read_text()
