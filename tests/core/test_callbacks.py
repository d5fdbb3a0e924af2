"""The training events and the callbacks that fan them out and log them (segcli/core/callbacks.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcli.core.callbacks import Callback, CallbackList, IterStats, LogFile, RunStart, ValEnd
from segcli.core.rundir import RunDir


class Recorder(Callback):
    """Keeps ``(tag, event)`` for every event it sees."""

    def __init__(self, tag: str, seen: list) -> None:
        self.tag, self.seen = tag, seen

    def on_train_start(self, start: RunStart) -> None:
        self.seen.append((self.tag, "start", start.first_epoch))

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        self.seen.append((self.tag, "iter", (epoch, it, loss, lr, images_per_s)))

    def on_iter_stats(self, stats: IterStats) -> None:
        self.seen.append((self.tag, "stats", stats.loss))

    def on_val_end(self, val: ValEnd) -> None:
        self.seen.append((self.tag, "val", val.iteration))

    def on_epoch_end(self, epoch: int, row: dict, improved: bool) -> None:
        self.seen.append((self.tag, "epoch", (epoch, row["epoch"], improved)))

    def on_train_end(self, result: object) -> None:
        self.seen.append((self.tag, "end", result))

    def on_message(self, text: str) -> None:
        self.seen.append((self.tag, "message", text))


def val_end() -> ValEnd:
    return ValEnd(0, 4, {"mIoU": 0.5}, np.eye(2, dtype=np.int64), ("a", "b"), ((0, 0, 0), (1, 1, 1)), True, "mIoU", 0.5)


def test_the_base_callback_ignores_every_event(tmp_path: Path) -> None:
    cb = Callback()
    cb.on_train_start(RunStart(RunDir(tmp_path), epochs=1, iters_per_epoch=1, first_epoch=0))
    cb.on_iter_end(0, 0, 1.0, 1e-3, 10.0)
    cb.on_iter_stats(IterStats(0, 0, 1, 1.0, 1e-3, 10.0))
    cb.on_val_end(val_end())
    cb.on_epoch_end(0, {"epoch": 1}, False)
    cb.on_train_end(None)
    cb.on_message("x")
    assert not any(tmp_path.iterdir())  # nothing written, nothing raised


def test_callback_list_fans_every_event_out_in_order(tmp_path: Path) -> None:
    seen: list = []
    callbacks = CallbackList([Recorder("a", seen)])
    callbacks.append(Recorder("b", seen))
    callbacks.on_train_start(RunStart(RunDir(tmp_path), epochs=2, iters_per_epoch=3, first_epoch=1))
    callbacks.on_iter_end(1, 2, 0.5, 1e-3, 8.0)
    callbacks.on_iter_stats(IterStats(1, 2, 3, 0.5, 1e-3, 8.0))
    callbacks.on_val_end(val_end())
    callbacks.on_epoch_end(1, {"epoch": 2}, True)
    callbacks.on_message("early stop")
    callbacks.on_train_end("result")
    events = [
        ("start", 1),
        ("iter", (1, 2, 0.5, 1e-3, 8.0)),
        ("stats", 0.5),
        ("val", 4),
        ("epoch", (1, 2, True)),
        ("message", "early stop"),
        ("end", "result"),
    ]
    assert seen == [(tag, *e) for e in events for tag in ("a", "b")]  # each event to a, then b


def test_iter_stats_defaults() -> None:
    s = IterStats(0, 1, 4, 1.0, 1e-3, 16.0)
    assert (s.terms, s.data_wait, s.seconds, s.elapsed, s.device) == ({}, 0.0, 0.0, 0.0, "cpu")


def test_log_file_writes_the_start_each_epoch_and_each_message(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    log = LogFile(run, header="device=cpu")
    log.on_train_start(RunStart(run, epochs=2, iters_per_epoch=4, first_epoch=0))
    log.on_epoch_end(0, {"epoch": 1, "train_loss": 0.123456789, "iterations": 4}, improved=True)
    log.on_message("a warning")
    LogFile(run).on_train_start(RunStart(run, epochs=2, iters_per_epoch=4, first_epoch=1, resumed=True))
    lines = [ln.split(" ", 2)[2] for ln in run.log_file.read_text().splitlines()]  # without the timestamp
    assert lines == ["start: device=cpu", "epoch=1 train_loss=0.12346 iterations=4", "a warning", "resume:"]
