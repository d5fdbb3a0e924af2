"""Pictures in ``plots/``, refreshed after every validation (rank 0 only).

``curves.png`` (train and validation loss, validation metrics, per-class IoU and lr against epochs),
``confusion_matrix.png`` (row-normalised), ``samples_epochNNN.png`` (a fixed set of validation images:
image | ground truth | prediction, with a legend) and, at the start, ``class_pixels.png`` (pixels per class
in the training split, log scale). :func:`drawer` is the one place that picks how: matplotlib
(:mod:`segcli.viz.draw_mpl`, the ``plots`` extra) when it is installed, else OpenCV (:mod:`segcli.viz.draw_cv`);
``train.plots_backend`` forces either.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import torch

from segcli.core.callbacks import Callback, IterStats, RunStart, ValEnd
from segcli.data.stats import class_histogram
from segcli.viz import Panel, draw_cv, drawer, row_normalise, write_png

SAMPLES = 4  # validation images shown in samples_epochNNN.png


@torch.no_grad()
def predict_samples(val: ValEnd, indices: list[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, ground truth, prediction) at the mask's size for the dataset items ``indices``."""
    from segcli.infer.evaluator import predict_logits

    model, was = val.model, val.model.training
    model.eval()
    out = []
    try:
        for i in indices:
            image, mask = val.dataset[i]
            size = tuple(mask.shape[-2:])
            logits = predict_logits(model, image[None], [size], val.device)[0]
            rgb = image.permute(1, 2, 0).numpy()
            if rgb.shape[:2] != size:
                rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            out.append((rgb, mask.numpy(), logits.argmax(0).cpu().numpy()))
    finally:
        model.train(was)
    return out


CLASS_PIXEL_MASKS = 256  # masks read for class_pixels.png: the start of a run stays cheap on big datasets


PER_CLASS_SHOWN = 10  # per-class IoU curves drawn: all up to this many classes, else the 5 lowest and 5 highest


Series = tuple[list[float], list[float]]  # (x in epochs, y)


class Plots(Callback):
    """Draws the run's pictures into ``run.plots_dir``.

    ``curves.png`` is four charts against epochs (a fractional epoch for what happens inside one): the train
    loss of every iteration and its epoch means with the validation loss; the validation metrics (EMA mIoU only
    when EMA ran); the per-class IoU over time; the learning rate.
    """

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend  # None: the preset's train.plots_backend
        self.draw: ModuleType = draw_cv
        self.dir: Path | None = None
        self.loss: Series = ([], [])  # every iteration's exact loss
        self.lr: Series = ([], [])
        self.epoch_loss: dict[int, float] = {}  # finished epochs' train_loss (metrics.csv), by 1-based epoch
        self.val: dict[str, Series] = {"val mIoU": ([], []), "EMA mIoU": ([], []), "val loss": ([], [])}
        self.per_class: dict[str, Series] = {}

    def on_train_start(self, start: RunStart) -> None:
        self.dir = start.run.plots_dir
        self.draw = drawer(self.backend or (start.preset.train.plots_backend if start.preset is not None else "auto"))
        for r in start.run.read_metrics():  # a resumed run's history, one point per finished epoch
            x = r["epoch"]
            if r.get("train_loss") is not None:
                self.epoch_loss[int(x)] = float(r["train_loss"])
            self._add(self.lr, x, r.get("lr"))
            for name, key in (("val mIoU", "mIoU"), ("EMA mIoU", "ema_mIoU"), ("val loss", "val_loss")):
                self._add(self.val[name], x, r.get(key))
        info, p = start.info, start.preset
        if info is not None and p is not None and not start.resumed:
            hist, read, total = class_histogram(
                p.data.root, p.data.train_split, info.num_classes, info.ignore_index, max_masks=CLASS_PIXEL_MASKS
            )
            sampled = f", {read} of {total} masks" if read < total else ""
            title = f"pixels per class, {p.data.train_split} split{sampled} (log scale)"
            write_png(self.dir / "class_pixels.png", self.draw.bars(hist, list(info.classes), title))

    @staticmethod
    def _add(series: Series, x: Any, y: Any) -> None:
        if x is not None and y is not None:
            series[0].append(float(x))
            series[1].append(float(y))

    def on_iter_stats(self, stats: IterStats) -> None:
        n = max(stats.iters_per_epoch, 1)
        at = stats.epoch * n + stats.it + 1  # iterations since the run began
        for k, value in enumerate(stats.losses):  # read at log points: every iteration's exact loss
            self._add(self.loss, (at - len(stats.losses) + 1 + k) / n, value)
        self._add(self.lr, at / n, stats.lr)

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        if row.get("train_loss") is not None:
            self.epoch_loss[epoch + 1] = float(row["train_loss"])

    def _epoch_means(self) -> Series:
        """The train loss per epoch: finished epochs from their rows, the current one from its iterations."""
        sums: dict[int, list[float]] = {}
        for x, y in zip(*self.loss):
            sums.setdefault(math.ceil(x - 1e-9), []).append(y)
        means = {e: sum(v) / len(v) for e, v in sums.items()} | self.epoch_loss
        epochs = sorted(means)
        return [float(e) for e in epochs], [means[e] for e in epochs]

    def _per_class_shown(self) -> tuple[str, list[tuple[str, list[float], list[float]]]]:
        """The per-class IoU chart's title and series: every class, or the lowest and highest five by last IoU."""
        last = {c: ys[-1] if ys and math.isfinite(ys[-1]) else -1.0 for c, (_, ys) in self.per_class.items()}
        names = list(self.per_class)
        title = "per-class IoU (validation)"
        if len(names) > PER_CLASS_SHOWN:
            ranked = sorted(names, key=lambda c: last[c])  # a class without an IoU (absent) counts as lowest
            half = PER_CLASS_SHOWN // 2
            names = ranked[:half] + ranked[-half:]
            title = f"per-class IoU (validation): the {half} lowest and {half} highest of {len(self.per_class)}"
        return title, [(c, *self.per_class[c]) for c in names]

    def panels(self) -> list[Panel]:
        """The four charts of curves.png (a series without points is left out: no EMA line without EMA)."""
        loss = [("train (iterations)", *self.loss), ("train (epoch mean)", *self._epoch_means())]
        loss.append(("val", *self.val["val loss"]))
        metrics = [(k, *v) for k, v in self.val.items() if k != "val loss" and v[0]]
        title, per_class = self._per_class_shown()
        return [
            ("loss (log scale)", [s for s in loss if s[1]], True),
            ("validation", metrics, False),
            (title, per_class, False),
            ("learning rate", [("lr", *self.lr)], False),
        ]

    def on_val_end(self, val: ValEnd) -> None:
        if self.dir is None:
            return
        x = self.lr[0][-1] if self.lr[0] else float(val.epoch + 1)  # where training is, in epochs
        self._add(self.val["val mIoU"], x, val.metrics.get("mIoU"))
        self._add(self.val["EMA mIoU"], x, val.ema_miou)
        self._add(self.val["val loss"], x, val.val_loss)
        for c in val.metrics.get("per_class", []):
            self._add(self.per_class.setdefault(str(c["class"]), ([], [])), x, c.get("iou"))
        write_png(self.dir / "curves.png", self.draw.curves(self.panels(), "epoch"))
        if val.confusion.size:
            write_png(self.dir / "confusion_matrix.png", self.draw.confusion(row_normalise(val.confusion), val.classes))
        if val.model is not None and val.dataset is not None and len(val.dataset):
            n = len(val.dataset)
            indices = sorted({round(k * (n - 1) / max(SAMPLES - 1, 1)) for k in range(min(SAMPLES, n))})
            rows = predict_samples(val, indices)
            title = f"epoch {val.epoch + 1}, iteration {val.iteration}"
            img = self.draw.samples(rows, val.classes, val.palette, val.ignore_index, title)
            write_png(self.dir / f"samples_epoch{val.epoch + 1:03d}.png", img)
