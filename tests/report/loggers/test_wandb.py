"""The W&B logger (segcli/report/loggers/wandb.py): offline runs with no key and no network, the mode from the
environment, a one-line error when it cannot start, one W&B run across resumes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from segcli.cli.app import run
from segcli.train.trainer import train


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B in offline mode with every directory it writes in tmp_path and no key (no network, no prompt)."""
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'segcli[wandb]')")
    home = tmp_path / "wandb_home"
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(home / "dir"))
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # any attempt to reach a server fails at once
    return home


def test_wandb_offline_run(tiny_overrides: list[str], wandb_offline: Path) -> None:
    res = train("quickstart", [*tiny_overrides, 'train.loggers=["csv","wandb"]', "train.log_every=2"])
    runs = list((res.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((res.run_dir / "wandb").iterdir())
    assert list(runs[0].glob("run-*.wandb")) and (runs[0] / "files").is_dir()
    run_id = (res.run_dir / "wandb" / "run_id.txt").read_text().strip()
    assert runs[0].name.endswith(run_id)
    # offline, config, history and summary live in the run's record file, written by W&B's service process
    needles = (b"optim", b"train/loss", b"train/lr", b"val/mIoU", b"val_iou/background", b"best/mIoU")
    record_file = next(runs[0].glob("run-*.wandb"))
    for _ in range(60):  # the service may still be writing it on a loaded machine: wait for it, up to ~30 s
        records = record_file.read_bytes()
        if all(n in records for n in needles):
            break
        time.sleep(0.5)
    missing = [n for n in needles if n not in records]
    assert not missing, (missing, len(records), sorted(p.name for p in runs[0].rglob("*")))
    files = runs[0] / "files"
    media = list((files / "media" / "images").rglob("*.png"))
    assert any("samples" in str(m) for m in media) and any("confusion_matrix" in str(m) for m in media)


def test_wandb_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from segcli.report.loggers.wandb import wandb_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode() == "offline"  # no key: never a login prompt
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "Disabled")
    assert wandb_mode() == "disabled"


def test_wandb_that_cannot_start_is_one_line(
    tiny_overrides: list[str], wandb_offline: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_MODE", "sideways")  # not a mode wandb knows
    rc = run(["train", "quickstart", *tiny_overrides, 'train.loggers=["wandb"]', "train.epochs=1"])
    err = capfd.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error:") and "W&B could not start in sideways mode" in line and "WANDB_MODE=offline" in line


@pytest.mark.slow
def test_train_to_a_file_with_loggers_is_plain_text(
    tiny_overrides: list[str], wandb_offline: Path, tmp_path: Path
) -> None:
    """`seg train ... > file 2>&1` with TensorBoard and W&B on: plain lines, no terminal control codes."""
    import os
    import subprocess

    pytest.importorskip("tensorboard")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
    env.pop("FORCE_COLOR", None)
    env.pop("WANDB_SILENT", None)  # let W&B print what it prints to a file
    cmd = [sys.executable, "-m", "segcli", "train", "quickstart", *tiny_overrides, "train.log_every=2"]
    cmd.append('train.loggers=["csv","tensorboard","wandb"]')
    out = tmp_path / "train.out"
    with out.open("wb") as f:
        done = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[3], timeout=300
        )
    text = out.read_text()
    assert done.returncode == 0, text
    assert "\x1b" not in text and "\r" not in text, repr(text[:2000])
    assert sum(line.startswith("epoch 2/2 it 4/4") for line in text.splitlines()) == 1


def test_wandb_continues_a_resumed_run(tiny_overrides: list[str], wandb_offline: Path) -> None:
    first = train("quickstart", [*tiny_overrides, 'train.loggers=["wandb"]', "train.epochs=1"])
    run_id = (first.run_dir / "wandb" / "run_id.txt").read_text().strip()
    train(resume=first.run_dir, extend=["train.epochs=2"])
    runs = sorted((first.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)  # one W&B run, two attempts
