"""Weights & Biases (``train.loggers = ["wandb"]``): a W&B run whose files live under ``<run>/wandb/``.

Keys come only from the environment (``WANDB_API_KEY``; nothing secret is ever read from or written
to a preset). ``WANDB_MODE`` picks the mode; when it is unset and no key is set the run is recorded
offline, with no network and no login prompt, and ``wandb sync <run>/wandb/offline-run-*`` uploads it
later. ``WANDB_PROJECT`` names the project (default ``segcli``); the W&B run is named after the run
directory and its config is the resolved preset. Logged: the same scalars as the TensorBoard logger
and, after each validation, the confusion matrix and sample predictions from ``plots/``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from segcli.config.load import preset_to_dict
from segcli.config.schema import METRIC_KEYS
from segcli.core.callbacks import Callback, IterStats, RunStart, ValEnd
from segcli.errors import UserError
from segcli.report.loggers import plot_images


def wandb_mode() -> str:
    """WANDB_MODE when set; else online with a key in the environment, offline without one."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode:
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class WandbLogger(Callback):
    """Logs scalars and pictures to a W&B run (``wandb.init(dir=<run>, config=preset)``)."""

    def __init__(self) -> None:
        self.wb: Any = None
        self.run_obj: Any = None
        self.every, self.step = 1, 0
        self.plots_dir: Any = None

    def on_train_start(self, start: RunStart) -> None:
        import wandb

        self.wb = wandb
        self.every = max(start.log_every, 1)
        self.step = start.first_epoch * start.iters_per_epoch + start.first_iter
        self.plots_dir = start.run.plots_dir
        run = start.run.path
        start.run.wandb_dir.mkdir(parents=True, exist_ok=True)
        mode = wandb_mode()
        try:
            self.run_obj = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "segcli"),
                name=f"{run.parent.name}/{run.name}",
                dir=str(run),
                config=preset_to_dict(start.preset) if start.preset is not None else None,
                mode=mode,
                resume="allow" if start.resumed else None,
                id=_run_id(start) if start.resumed else None,
            )
        except Exception as e:  # no network, a rejected key, a bad WANDB_MODE: one line, not a traceback
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(
                f"W&B could not start in {mode} mode ({first}); set WANDB_MODE=offline to record without "
                "network (sync later with `wandb sync`), or remove 'wandb' from train.loggers"
            ) from None
        if not start.resumed:
            _remember_id(start, self.run_obj.id)
            pixels = self.plots_dir / "class_pixels.png"
            if pixels.is_file():
                self.run_obj.log({"dataset/class_pixels": wandb.Image(str(pixels))}, step=0)

    def _log(self, values: dict[str, Any]) -> None:
        clean = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
        if clean:
            self.run_obj.log(clean, step=self.step)

    def on_iter_stats(self, stats: IterStats) -> None:
        self.step = stats.epoch * stats.iters_per_epoch + stats.it + 1
        if self.run_obj is None or self.step % self.every:
            return  # the loss is read from the device every log_every iterations; in between it is stale
        values = {"train/loss": stats.loss, "train/lr": stats.lr, "train/images_per_s": stats.images_per_s}
        values.update({f"train/loss_{t}": v for t, v in stats.terms.items()})
        self._log(values)

    def on_val_end(self, val: ValEnd) -> None:
        if self.run_obj is None:
            return
        values: dict[str, Any] = {f"val/{k}": val.metrics.get(k) for k in METRIC_KEYS}
        values["val/ema_mIoU"] = val.ema_miou
        values["val/loss"] = val.val_loss
        values.update({f"val_iou/{c['class']}": c["iou"] for c in val.metrics.get("per_class", [])})
        self._log(values)
        images = {f"val/{tag}": self.wb.Image(str(p)) for tag, p in plot_images(self.plots_dir, val.epoch).items()}
        if images:
            self.run_obj.log(images, step=self.step)

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        if self.run_obj is not None:
            self._log({"train/epoch_loss": row.get("train_loss")})

    def on_train_end(self, result: Any) -> None:
        if self.run_obj is not None:
            best = result.best or {}
            for k in METRIC_KEYS:
                if isinstance(best.get(k), float) and math.isfinite(best[k]):
                    self.run_obj.summary[f"best/{k}"] = best[k]
            self.run_obj.finish()
            self.run_obj = None


def _run_id(start: RunStart) -> str | None:
    """The W&B run id a resumed run continues (written at its start), or None."""
    f = start.run.wandb_dir / "run_id.txt"
    return f.read_text().strip() or None if f.is_file() else None


def _remember_id(start: RunStart, run_id: str) -> None:
    from segcli.io_utils import atomic_write_text

    atomic_write_text(start.run.wandb_dir / "run_id.txt", run_id + "\n")
