"""Plain progress lines: what the live display shows, every ``train.log_every`` iterations, as text.

:class:`ProgressMeter` turns the trainer's :class:`~segcli.core.callbacks.IterStats` into the shown
quantities (running mean loss, data-wait share, ETAs, peak memory); :class:`ProgressLines` writes them
as one line every N iterations, and after each validation the per-class IoU and whether the best
checkpoint changed. ``log.txt`` gets these lines; so does the console when it is not a terminal.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from segcli.core.callbacks import Callback, IterStats, RunStart, ValEnd


def peak_memory(device: str) -> tuple[str, int | None]:
    """("cuda", peak allocated bytes) on CUDA, else ("rss", the process's peak resident set size) or None."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return "cuda", int(torch.cuda.max_memory_allocated())
    try:
        import resource
    except ImportError:  # Windows
        return "rss", None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return "rss", int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB on Linux


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def fmt_value(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.4f}"


class ProgressMeter:
    """Running statistics of the current epoch and the window since the last line."""

    def __init__(self) -> None:
        self.epochs = 0
        self.iters_per_epoch = 1
        self.epoch = -1
        self.loss_sum = self.seconds = 0.0
        self.count = 0
        self.window_wait = self.window_seconds = 0.0

    def start(self, start: RunStart) -> None:
        self.epochs, self.iters_per_epoch = start.epochs, start.iters_per_epoch

    def update(self, st: IterStats) -> dict[str, Any]:
        """Fold ``st`` in and return the shown fields (the trainer's exact running mean when ``st`` has one)."""
        if st.epoch != self.epoch:
            self.epoch, self.loss_sum, self.seconds, self.count = st.epoch, 0.0, 0.0, 0
        self.loss_sum += st.loss
        self.seconds += st.seconds
        self.count += 1
        self.window_wait += st.data_wait
        self.window_seconds += st.seconds
        per_iter = self.seconds / self.count
        left_epoch = st.iters_per_epoch - st.it - 1
        eta_run = None
        if self.epochs:
            eta_run = per_iter * (left_epoch + (self.epochs - st.epoch - 1) * st.iters_per_epoch)
        kind, mem = peak_memory(st.device)
        return {
            "epoch": st.epoch + 1,
            "epochs": self.epochs or "?",
            "it": st.it + 1,
            "iters": st.iters_per_epoch,
            "loss": st.loss,
            "loss_mean": self.loss_sum / self.count if st.loss_mean is None else st.loss_mean,
            "terms": st.terms,
            "lr": st.lr,
            "images_per_s": st.images_per_s,
            "data_wait": self.window_wait / max(self.window_seconds, 1e-12),
            "eta_epoch": per_iter * left_epoch,
            "eta_run": eta_run,
            "memory_kind": kind,
            "memory": mem,
        }

    def reset_window(self) -> None:
        self.window_wait = self.window_seconds = 0.0


def format_line(f: dict[str, Any]) -> str:
    """One plain progress line from :meth:`ProgressMeter.update`'s fields."""
    terms = "".join(f" {k} {v:.4f}" for k, v in f["terms"].items())
    return (
        f"epoch {f['epoch']}/{f['epochs']} it {f['it']}/{f['iters']} "
        f"loss {f['loss']:.4f} (mean {f['loss_mean']:.4f}){terms} lr {f['lr']:.3e} "
        f"{f['images_per_s']:.1f} img/s data-wait {f['data_wait']:.0%} "
        f"eta {fmt_duration(f['eta_epoch'])} (run {fmt_duration(f['eta_run'])}) "
        f"mem {fmt_bytes(f['memory'])} ({f['memory_kind']})"
    )


def validation_lines(val: ValEnd) -> list[str]:
    """The validation's headline (and whether the best checkpoint changed) and the per-class IoU."""
    m = val.metrics
    head = (
        f"validation epoch {val.epoch + 1} (iteration {val.iteration}): mIoU {fmt_value(m.get('mIoU'))} "
        f"pixel acc {fmt_value(m.get('pixel_accuracy'))}"
    )
    if val.ema_miou is not None:
        head += f" EMA mIoU {fmt_value(val.ema_miou)}"
    if val.improved:
        head += f"; new best {val.monitor} {fmt_value(val.best)}: saving weights/best.safetensors"
    else:
        head += f"; best {val.monitor} unchanged ({fmt_value(val.best)})"
    ious = ", ".join(f"{c['class']} {fmt_value(c['iou'])}" for c in m.get("per_class", []))
    return [head, f"per-class IoU: {ious}"]


class ProgressLines(Callback):
    """Writes :func:`format_line` every ``every`` iterations of the run (and at each epoch's last one) with
    ``write``, and :func:`validation_lines` after each validation. These are the trainer's log points, where
    the loss is read off the device, so every line's loss and running mean are exact."""

    def __init__(self, write: Callable[[str], None], every: int) -> None:
        self.write, self.every = write, every
        self.meter = ProgressMeter()

    def on_train_start(self, start: RunStart) -> None:
        self.meter.start(start)

    def on_iter_stats(self, stats: IterStats) -> None:
        fields = self.meter.update(stats)
        run_iter = stats.epoch * stats.iters_per_epoch + stats.it + 1
        if self.every and (run_iter % self.every == 0 or stats.it + 1 == stats.iters_per_epoch):
            self.write(format_line(fields))
            self.meter.reset_window()

    def on_val_end(self, val: ValEnd) -> None:
        for line in validation_lines(val):
            self.write(line)
