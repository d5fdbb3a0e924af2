"""Per-iteration progress lines in log.txt and on a non-terminal console; the validation's per-class IoU
(segcli/report/textlog.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segcli.core.callbacks import IterStats, RunStart, ValEnd
from segcli.core.rundir import RunDir
from segcli.report.textlog import (
    ProgressLines,
    ProgressMeter,
    fmt_bytes,
    fmt_duration,
    fmt_value,
    format_line,
    peak_memory,
    validation_lines,
)
from segcli.train.trainer import train

LINE = re.compile(
    r"epoch (\d+)/2 it (\d+)/4 loss [\d.]+ \(mean [\d.]+\)( \w+ [\d.]+)* lr [\d.e+-]+ [\d.]+ img/s "
    r"data-wait \d+% eta \d+:\d\d:\d\d \(run \d+:\d\d:\d\d\) mem [\d.]+[KMG] \((rss|cuda)\)"
)


def _stats(epoch: int, it: int, loss: float, wait: float, seconds: float) -> IterStats:
    return IterStats(epoch, it, 4, loss, 1e-3, 8.0, {"ce": loss / 2, "dice": loss / 2}, wait, seconds, 0.0)


def test_meter_running_mean_wait_share_and_eta(tmp_path: Path) -> None:
    meter = ProgressMeter()
    meter.start(RunStart(RunDir(tmp_path), epochs=2, iters_per_epoch=4, first_epoch=0))
    meter.update(_stats(0, 0, 1.0, 0.5, 2.0))
    f = meter.update(_stats(0, 1, 3.0, 0.5, 2.0))
    assert f["loss"] == 3.0 and f["loss_mean"] == 2.0
    assert f["data_wait"] == pytest.approx(0.25)  # 1 s of 4 s waited on the loader
    assert f["eta_epoch"] == pytest.approx(4.0)  # 2 iterations left at 2 s
    assert f["eta_run"] == pytest.approx(12.0)  # and 4 more in epoch 2
    meter.reset_window()
    f = meter.update(_stats(1, 0, 5.0, 0.0, 1.0))  # a new epoch restarts the running mean
    assert f["loss_mean"] == 5.0 and f["data_wait"] == 0.0
    assert f["memory"] is None or f["memory"] > 0


def test_lines_every_n_iterations_and_at_epoch_end(tmp_path: Path) -> None:
    lines: list[str] = []
    pl = ProgressLines(lines.append, every=3)
    pl.on_train_start(RunStart(RunDir(tmp_path), epochs=2, iters_per_epoch=4, first_epoch=0))
    for it in range(4):
        pl.on_iter_stats(_stats(0, it, 1.0, 0.1, 1.0))
    assert [ln.split(" loss")[0] for ln in lines] == ["epoch 1/2 it 3/4", "epoch 1/2 it 4/4"]
    assert all(LINE.fullmatch(ln) for ln in lines) and " ce 0.5000 dice 0.5000 " in lines[0]


def test_formatting() -> None:
    assert fmt_duration(3725.2) == "1:02:05" and fmt_duration(None) == "?"
    assert fmt_bytes(3 * 2**30) == "3.00G" and fmt_bytes(1536) == "1.50K" and fmt_bytes(None) == "?"
    kind, mem = peak_memory("cpu")
    assert kind == "rss" and (mem is None or mem > 2**20)


def test_log_txt_has_iteration_and_validation_lines(tiny_overrides: list[str]) -> None:
    over = [*tiny_overrides, "train.log_every=2", 'loss.terms=["ce","dice"]']
    res = train("quickstart", over)
    log = (res.run_dir / "log.txt").read_text()
    lines = [ln.split(" ", 2)[2] for ln in log.splitlines()]  # drop the timestamp
    progress = [ln for ln in lines if ln.startswith("epoch ") and " it " in ln]
    assert [ln.split(" loss")[0] for ln in progress] == [f"epoch {e}/2 it {i}/4" for e in (1, 2) for i in (2, 4)]
    assert all(LINE.fullmatch(ln) for ln in progress), progress
    assert all(" ce " in ln and " dice " in ln for ln in progress)
    vals = [ln for ln in lines if ln.startswith("validation epoch")]
    assert len(vals) == 2 and "new best mIoU" in vals[0]
    assert "saving weights/best.safetensors" in vals[1] or "best mIoU unchanged" in vals[1]
    per_class = [ln for ln in lines if ln.startswith("per-class IoU: ")]
    assert len(per_class) == 2
    assert re.fullmatch(r"per-class IoU: background ([\d.]+|n/a), (\w+ ([\d.]+|n/a)(, )?)+", per_class[0])


def test_piped_train_prints_plain_lines(tiny_overrides: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color", "FORCE_COLOR": ""}
    env.pop("FORCE_COLOR")
    cmd = [sys.executable, "-m", "segcli", "train", "quickstart", *tiny_overrides, "train.log_every=2"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], timeout=300)
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert "\x1b" not in text and "\r" not in text
    progress = [ln for ln in done.stderr.splitlines() if LINE.fullmatch(ln)]
    assert len(progress) == 4
    assert sum(ln.startswith("per-class IoU: background") for ln in done.stderr.splitlines()) == 2


def _val(improved: bool, ema: float | None = None) -> ValEnd:
    per_class = [{"class": "background", "iou": 0.9}, {"class": "cat", "iou": float("nan")}]
    metrics = {"mIoU": 0.9, "pixel_accuracy": 0.95, "per_class": per_class}
    return ValEnd(
        1,
        8,
        metrics,
        np.eye(2, dtype=np.int64),
        ("background", "cat"),
        ((0, 0, 0), (1, 1, 1)),
        improved,
        "mIoU",
        0.9 if improved else 0.95,
        ema_miou=ema,
    )


def test_validation_lines_say_whether_the_best_changed() -> None:
    head, classes = validation_lines(_val(improved=True, ema=0.8))
    assert head == (
        "validation epoch 2 (iteration 8): mIoU 0.9000 pixel acc 0.9500 EMA mIoU 0.8000; "
        "new best mIoU 0.9000: saving weights/best.safetensors"
    )
    assert classes == "per-class IoU: background 0.9000, cat n/a"
    head, _ = validation_lines(_val(improved=False))
    assert head.endswith("pixel acc 0.9500; best mIoU unchanged (0.9500)") and "EMA" not in head


def test_progress_lines_write_the_validation_too() -> None:
    lines: list[str] = []
    ProgressLines(lines.append, every=0).on_val_end(_val(improved=True))
    assert [ln.split(" ")[0] for ln in lines] == ["validation", "per-class"]


def test_no_lines_when_every_is_zero(tmp_path: Path) -> None:
    lines: list[str] = []
    pl = ProgressLines(lines.append, every=0)
    pl.on_train_start(RunStart(RunDir(tmp_path), epochs=1, iters_per_epoch=2, first_epoch=0))
    for it in range(2):
        pl.on_iter_stats(_stats(0, it, 1.0, 0.0, 1.0))
    assert lines == []


def test_a_budgeted_run_has_no_run_eta_and_formats_it_as_unknown(tmp_path: Path) -> None:
    meter = ProgressMeter()
    meter.start(RunStart(RunDir(tmp_path), epochs=0, iters_per_epoch=4, first_epoch=0))  # 0: a time budget
    f = meter.update(_stats(0, 0, 1.0, 0.0, 2.0))
    assert f["epochs"] == "?" and f["eta_run"] is None
    line = format_line(f)
    assert line.startswith("epoch 1/? it 1/4 loss 1.0000 (mean 1.0000) ce 0.5000 dice 0.5000 lr 1.000e-03")
    assert "eta 0:00:06 (run ?)" in line


def test_small_formatters() -> None:
    assert fmt_value(0.123456) == "0.1235" and fmt_value(None) == "n/a" and fmt_value(float("nan")) == "n/a"
    assert fmt_bytes(512) == "512B" and fmt_bytes(5 * 2**20) == "5.00M"
    assert fmt_duration(-3) == "0:00:00" and fmt_duration(float("inf")) == "?"
