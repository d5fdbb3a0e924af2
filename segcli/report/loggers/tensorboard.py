"""TensorBoard (``train.loggers = ["tensorboard"]``): event files under ``<run>/tensorboard/``.

Scalars against iterations (batches since the run began): the training loss (per term too when there
are several), lr and images/s every ``train.log_every`` iterations, when the trainer reads the loss;
after each validation the metrics, EMA mIoU and per-class IoU, and the confusion matrix and sample
predictions from ``plots/`` as images. The resolved preset goes in as hyperparameters (the HPARAMS
tab) and as text. A resumed run purges events past its resume point, so a crashed attempt's tail
does not double the curves.
"""

from __future__ import annotations

import math
from typing import Any

from segcli.config.load import preset_to_toml
from segcli.config.schema import METRIC_KEYS
from segcli.core.callbacks import Callback, IterStats, RunStart, ValEnd
from segcli.report.loggers import flat_preset, plot_images


class TensorBoardLogger(Callback):
    """Writes the run's scalars, pictures and preset with ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self) -> None:
        self.writer: Any = None
        self.every, self.step = 1, 0
        self.plots_dir: Any = None

    def on_train_start(self, start: RunStart) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.every = max(start.log_every, 1)
        self.step = start.first_epoch * start.iters_per_epoch + start.first_iter
        self.plots_dir = start.run.plots_dir
        log_dir = start.run.tensorboard_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=self.step + 1 if start.resumed else None)
        if start.preset is not None and not start.resumed:
            self._hparams(start.preset)
            self.writer.add_text("preset", "```toml\n" + preset_to_toml(start.preset) + "\n```", 0)
        pixels = self.plots_dir / "class_pixels.png"
        if pixels.is_file() and not start.resumed:
            self._image("dataset/class_pixels", pixels, 0)

    def _hparams(self, preset: Any) -> None:
        """The flattened preset in the HPARAMS tab, linked to the validation metrics' tags."""
        from torch.utils.tensorboard.summary import hparams

        metrics = {f"val/{k}": math.nan for k in METRIC_KEYS}
        for summary in hparams(flat_preset(preset), metrics):
            self.writer.file_writer.add_summary(summary)

    def _image(self, tag: str, path: Any, step: int) -> None:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None:
            self.writer.add_image(tag, img[..., ::-1].copy(), step, dataformats="HWC")

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        if value is not None and math.isfinite(float(value)):
            self.writer.add_scalar(tag, float(value), step)

    def on_iter_stats(self, stats: IterStats) -> None:
        self.step = stats.epoch * stats.iters_per_epoch + stats.it + 1
        if self.writer is None or self.step % self.every:
            return  # the loss is read from the device every log_every iterations; in between it is stale
        self._scalar("train/loss", stats.loss, self.step)
        for term, value in stats.terms.items():
            self._scalar(f"train/loss_{term}", value, self.step)
        self._scalar("train/lr", stats.lr, self.step)
        self._scalar("train/images_per_s", stats.images_per_s, self.step)

    def on_val_end(self, val: ValEnd) -> None:
        if self.writer is None:
            return
        for k in METRIC_KEYS:
            self._scalar(f"val/{k}", val.metrics.get(k), self.step)
        self._scalar("val/ema_mIoU", val.ema_miou, self.step)
        self._scalar("val/loss", val.val_loss, self.step)
        for c in val.metrics.get("per_class", []):
            self._scalar(f"val_iou/{c['class']}", c["iou"], self.step)
        for tag, path in plot_images(self.plots_dir, val.epoch).items():
            self._image(f"val/{tag}", path, self.step)
        self.writer.flush()

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        if self.writer is not None:
            self._scalar("train/epoch_loss", row.get("train_loss"), self.step)
            self.writer.flush()

    def on_train_end(self, result: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
