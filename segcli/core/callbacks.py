"""Training events and the small interface everything that watches a run plugs into.

The trainer emits eight events; the CLI's live display, the plain ``log.txt`` writer and later
plots, TensorBoard/W&B and the run report subscribe by overriding the methods they need (the
names follow Lightning's ``Callback``, which users know).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from segcli.core.rundir import RunDir


@dataclass(frozen=True)
class RunStart:
    """What a callback learns when training starts."""

    run: RunDir
    epochs: int  # 0 when a time budget decides the length
    iters_per_epoch: int
    first_epoch: int  # > 0 when resuming
    resumed: bool = False
    first_iter: int = 0  # > 0 when resuming from a mid-epoch save (train.save_every)
    log_every: int = 0  # train.log_every: plain progress lines every N iterations (0 = none)
    preset: Any = None  # the resolved Preset
    info: Any = None  # the DatasetInfo (classes, palette, ignore_index)


@dataclass(frozen=True)
class IterStats:
    """Everything measured about one training iteration (emitted right after ``on_iter_end``)."""

    epoch: int  # 0-based
    it: int  # 0-based iteration inside the epoch
    iters_per_epoch: int
    loss: float
    lr: float
    images_per_s: float
    terms: dict[str, float] = field(default_factory=dict)  # per loss term, when there are several
    data_wait: float = 0.0  # seconds this iteration waited on the loader
    seconds: float = 0.0  # seconds the whole iteration took (wait included)
    elapsed: float = 0.0  # seconds since the run began (resumed runs included)
    device: str = "cpu"
    loss_mean: float | None = None  # the epoch's exact mean loss so far, as of the last read (None: unknown)
    losses: tuple[float, ...] = ()  # at a read: each iteration's exact loss since the previous read, ending with
    # this one (``loss`` is their mean); empty between reads, where ``loss`` and ``loss_mean`` are the last read

    @property
    def fresh(self) -> bool:
        """The loss was read off the device at this iteration (``loss`` and ``loss_mean`` are current)."""
        return bool(self.losses)


@dataclass(frozen=True)
class ValEnd:
    """What a callback learns after each validation (rank 0)."""

    epoch: int  # 0-based epoch the validation happened in
    iteration: int  # optimiser steps so far
    metrics: dict[str, Any]  # metrics_from_confusion's dict (per_class included)
    confusion: np.ndarray  # (C, C) counts, rows = ground truth
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    improved: bool  # the best checkpoint changed
    monitor: str
    best: float | None  # the monitored value of the best validation so far
    ema_miou: float | None = None
    model: Any = None  # the model (eval mode is the callback's business), for sample predictions
    dataset: Any = None  # the validation dataset (image tensor, mask tensor) pairs
    device: Any = None
    ignore_index: int = 255
    val_loss: float | None = None  # the training criterion over the validation images (mean per image)


class Callback:
    """Override what you need; every method is a no-op by default."""

    def on_train_start(self, start: RunStart) -> None:
        pass

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        pass

    def on_iter_stats(self, stats: IterStats) -> None:
        """After ``on_iter_end``, with the loss terms, timings and the run's clock."""

    def on_val_progress(self, done: int, total: int) -> None:
        """During a validation (rank 0): ``done`` of this process's ``total`` validation images scored (first
        with 0, last with ``total``)."""

    def on_val_end(self, val: ValEnd) -> None:
        """After each validation (at an epoch end or inside an epoch), before the checkpoint is written."""

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        """After the epoch's row is saved; ``row`` has the metrics when it was validated."""

    def on_train_end(self, result: Any) -> None:
        """With the :class:`segcli.train.trainer.TrainResult`."""

    def on_message(self, text: str) -> None:
        """A line worth showing (warnings, checkpoint load reports, early stop)."""


class CallbackList(Callback):
    """Fans every event out to its callbacks, in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def on_train_start(self, start: RunStart) -> None:
        for c in self.callbacks:
            c.on_train_start(start)

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        for c in self.callbacks:
            c.on_iter_end(epoch, it, loss, lr, images_per_s)

    def on_iter_stats(self, stats: IterStats) -> None:
        for c in self.callbacks:
            c.on_iter_stats(stats)

    def on_val_progress(self, done: int, total: int) -> None:
        for c in self.callbacks:
            c.on_val_progress(done, total)

    def on_val_end(self, val: ValEnd) -> None:
        for c in self.callbacks:
            c.on_val_end(val)

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        for c in self.callbacks:
            c.on_epoch_end(epoch, row, improved)

    def on_train_end(self, result: Any) -> None:
        for c in self.callbacks:
            c.on_train_end(result)

    def on_message(self, text: str) -> None:
        for c in self.callbacks:
            c.on_message(text)


class LogFile(Callback):
    """``log.txt``: the start line, every message and one line per epoch (rank 0 only)."""

    def __init__(self, run: RunDir, header: str = "") -> None:
        self.run, self.header = run, header

    def on_train_start(self, start: RunStart) -> None:
        self.run.log(f"{'resume' if start.resumed else 'start'}: {self.header}".rstrip())

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        self.run.log(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))

    def on_message(self, text: str) -> None:
        self.run.log(text)
