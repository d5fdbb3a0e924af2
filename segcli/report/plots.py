"""Pictures in ``plots/``, refreshed after every validation (rank 0 only).

``curves.png`` (train loss, val mIoU and EMA mIoU, lr against iterations), ``confusion_matrix.png``
(row-normalised), ``samples_epochNNN.png`` (a fixed set of validation images: image | ground truth |
prediction, with a legend) and, at the start, ``class_pixels.png`` (pixels per class in the training
split, log scale). :func:`drawer` is the one place that picks how: matplotlib (:mod:`segcli.viz.draw_mpl`,
the ``plots`` extra) when it is installed, else OpenCV (:mod:`segcli.viz.draw_cv`); ``train.plots_backend``
forces either.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import torch

from segcli.core.callbacks import Callback, IterStats, RunStart, ValEnd
from segcli.data.stats import class_histogram
from segcli.viz import draw_cv, drawer, row_normalise, write_png

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


class Plots(Callback):
    """Draws the run's pictures into ``run.plots_dir``."""

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend  # None: the preset's train.plots_backend
        self.draw: ModuleType = draw_cv
        self.dir: Path | None = None
        self.loss: tuple[list[float], list[float]] = ([], [])
        self.lr: tuple[list[float], list[float]] = ([], [])
        self.val: dict[str, tuple[list[float], list[float]]] = {"val mIoU": ([], []), "EMA mIoU": ([], [])}

    def on_train_start(self, start: RunStart) -> None:
        self.dir = start.run.plots_dir
        self.draw = drawer(self.backend or (start.preset.train.plots_backend if start.preset is not None else "auto"))
        for r in start.run.read_metrics():  # a resumed run's history
            self._add(self.loss, r["iterations"], r.get("train_loss"))
            self._add(self.lr, r["iterations"], r.get("lr"))
            self._add(self.val["val mIoU"], r["iterations"], r.get("mIoU"))
            self._add(self.val["EMA mIoU"], r["iterations"], r.get("ema_mIoU"))
        info, p = start.info, start.preset
        if info is not None and p is not None and not start.resumed:
            hist, read, total = class_histogram(
                p.data.root, p.data.train_split, info.num_classes, info.ignore_index, max_masks=CLASS_PIXEL_MASKS
            )
            sampled = f", {read} of {total} masks" if read < total else ""
            title = f"pixels per class, {p.data.train_split} split{sampled} (log scale)"
            write_png(self.dir / "class_pixels.png", self.draw.bars(hist, list(info.classes), title))

    @staticmethod
    def _add(series: tuple[list[float], list[float]], x: Any, y: Any) -> None:
        if x is not None and y is not None:
            series[0].append(float(x))
            series[1].append(float(y))

    def on_iter_stats(self, stats: IterStats) -> None:
        step = stats.epoch * stats.iters_per_epoch + stats.it + 1
        for k, value in enumerate(stats.losses):  # read at log points: every iteration's exact loss
            self._add(self.loss, step - len(stats.losses) + 1 + k, value)
        self._add(self.lr, step, stats.lr)

    def on_val_end(self, val: ValEnd) -> None:
        if self.dir is None:
            return
        x = self.loss[0][-1] if self.loss[0] else val.iteration
        self._add(self.val["val mIoU"], x, val.metrics.get("mIoU"))
        self._add(self.val["EMA mIoU"], x, val.ema_miou)
        val_series = [(k, *v) for k, v in self.val.items() if v[0]]
        write_png(self.dir / "curves.png", self.draw.curves(self.loss, val_series, self.lr))
        if val.confusion.size:
            write_png(self.dir / "confusion_matrix.png", self.draw.confusion(row_normalise(val.confusion), val.classes))
        if val.model is not None and val.dataset is not None and len(val.dataset):
            n = len(val.dataset)
            indices = sorted({round(k * (n - 1) / max(SAMPLES - 1, 1)) for k in range(min(SAMPLES, n))})
            rows = predict_samples(val, indices)
            title = f"epoch {val.epoch + 1}, iteration {val.iteration}"
            img = self.draw.samples(rows, val.classes, val.palette, val.ignore_index, title)
            write_png(self.dir / f"samples_epoch{val.epoch + 1:03d}.png", img)
