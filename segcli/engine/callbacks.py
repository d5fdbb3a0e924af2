"""Training events and the small interface everything that watches a run plugs into.

The trainer emits five events; the CLI's live display, the plain ``log.txt`` writer and later
plots, TensorBoard/W&B and the run report subscribe by overriding the methods they need (the
names follow Lightning's ``Callback``, which users know).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segcli.engine.rundir import RunDir


@dataclass(frozen=True)
class RunStart:
    """What a callback learns when training starts."""

    run: RunDir
    epochs: int  # 0 when a time budget decides the length
    iters_per_epoch: int
    first_epoch: int  # > 0 when resuming
    resumed: bool = False
    first_iter: int = 0  # > 0 when resuming from a mid-epoch save (train.save_every)


class Callback:
    """Override what you need; every method is a no-op by default."""

    def on_train_start(self, start: RunStart) -> None:
        pass

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        pass

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        """After the epoch's row is saved; ``row`` has the metrics when it was validated."""

    def on_train_end(self, result: Any) -> None:
        """With the :class:`segcli.engine.trainer.TrainResult`."""

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
