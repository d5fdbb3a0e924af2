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

from segcli.engine.callbacks import Callback
from segcli.engine.trainer import train


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
