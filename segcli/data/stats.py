"""Dataset statistics: images per split, class pixel histograms, and the label statistics a training run
starts with (class shares, foreground share, object width, image size: :func:`split_label_stats`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.class_weights import histogram
from segcli.data.format import DatasetIndex, as_index, extra_channel_files, list_samples
from segcli.data.io import read_image, read_mask


def mask_histogram(mask_paths: Iterable[str | os.PathLike], num_classes: int) -> np.ndarray:
    """Pixel count per class over these masks (ignore_index and out-of-range values excluded)."""
    hist = np.zeros(num_classes, np.int64)
    for mask_path in mask_paths:
        m = read_mask(mask_path).ravel()
        counts = np.bincount(m, minlength=max(num_classes, int(m.max()) + 1))
        hist += counts[:num_classes]
    return hist


def class_histogram(
    root: str | os.PathLike, split: str, num_classes: int, ignore_index: int, max_masks: int | None = None
) -> tuple[np.ndarray, int, int]:
    """Pixel count per class over a split (ignore_index and out-of-range values excluded).

    With ``max_masks``, at most that many masks, evenly spaced, are read (a bounded cost at the start of
    training). Returns (histogram, masks read, masks in the split).
    """
    masks = [m for _, m in list_samples(root, split)]
    chosen = masks
    if max_masks is not None and len(masks) > max_masks:
        chosen = [masks[i * len(masks) // max_masks] for i in range(max_masks)]
    return mask_histogram(chosen, num_classes), len(chosen), len(masks)


def summary_dict(
    name: str, root: str | os.PathLike, classes: Iterable[str], images: dict[str, int], hist: np.ndarray
) -> dict[str, Any]:
    """The summary `seg prepare` prints: name, images per split, pixel share of each class."""
    classes = list(classes)
    total = max(int(np.sum(hist)), 1) if len(hist) else 1
    counts = list(hist) if len(hist) else [0] * len(classes)
    return {
        "name": name,
        "root": str(Path(root)),
        "classes": classes,
        "images": dict(images),
        "pixel_share": {c: float(n) / total for c, n in zip(classes, counts)},
    }


def dataset_summary(dataset: str | os.PathLike | DatasetIndex) -> dict[str, Any]:
    """Name, images per split and the pixel share of each class over all splits (reads every mask)."""
    index = as_index(dataset)
    info = index.info
    hist = mask_histogram((m for s in index.names for _, m in index.pairs(s)), info.num_classes)
    images = {s: len(index.splits[s]) for s in index.names}
    return summary_dict(info.name, index.root, info.classes, images, hist)


# ------------------------------------------------------------------ what a training run knows of its labels

LABEL_STAT_MASKS = 32  # masks read (evenly spaced over the split) for the statistics at the start of training
WIDTH_WORK = 2**24  # the object width reads at most about this many pixels x foreground classes (and >= 4 masks)


@dataclass(frozen=True)
class LabelStats:
    """What the start of training knows about a split's labels, from at most :data:`LABEL_STAT_MASKS` masks.

    ``background`` is the most frequent class; the **foreground** is every other class, ``foreground_share`` its
    share of the labelled pixels. ``width_px`` are the 10th, 50th and 90th percentiles of the foreground's
    object width (:func:`ridge_widths`, each ridge pixel weighted by its width: per foreground pixel, not per
    structure), ``None`` when no foreground pixel was read.
    """

    classes: tuple[str, ...]
    pixel_share: tuple[float, ...]  # per class, of the labelled (non-ignored) pixels read
    background: int
    foreground_share: float
    width_px: tuple[float, float, float] | None
    size: tuple[int, int]  # the median (height, width) of the masks read
    masks_read: int
    masks_total: int
    width_masks: int = 0  # masks the width was measured on (evenly spaced among those read: see WIDTH_WORK)

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    @property
    def median_width(self) -> float | None:
        return self.width_px[1] if self.width_px is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "pixel_share": dict(zip(self.classes, self.pixel_share)),
            "background": self.classes[self.background] if self.classes else "",
            "foreground_share": self.foreground_share,
            "width_px": list(self.width_px) if self.width_px is not None else None,
            "size": list(self.size),
            "masks_read": self.masks_read,
            "masks_total": self.masks_total,
            "width_masks": self.width_masks,
        }

    def describe(self, top: int = 6) -> str:
        """One line for the run log (``data statistics: ...``); the most frequent ``top`` classes are named."""
        order = sorted(range(len(self.classes)), key=lambda c: -self.pixel_share[c])
        shares = ", ".join(f"{self.classes[c]} {self.pixel_share[c]:.1%}" for c in order[:top])
        if len(order) > top:
            rest = sum(self.pixel_share[c] for c in order[top:])
            shares += f", {len(order) - top} more {rest:.1%}"
        present = sum(1 for s in self.pixel_share if s > 0)
        width = "no foreground pixel read"
        if self.width_px is not None:
            lo, mid, hi = self.width_px
            some = f"; {self.width_masks} of the masks" if self.width_masks < self.masks_read else ""
            width = f"median {mid:.1f} px (10-90%: {lo:.1f}-{hi:.1f}{some})"
        return (
            f"data statistics ({self.masks_read} of {self.masks_total} training masks, median size "
            f"{self.size[0]}x{self.size[1]}): {len(self.classes)} classes ({present} present): {shares}; "
            f"foreground (all but {self.classes[self.background]!r}) {self.foreground_share:.1%}; "
            f"object width {width}"
        )


def ridge_widths(mask: np.ndarray, foreground: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Object widths in pixels along the ridges (medial lines) of the foreground classes of ``mask``.

    Per foreground class present, one distance transform: the distance of each of its pixels to the nearest
    pixel of another label (ignored pixels included). On a region's ridge (a local maximum of that distance in
    its 3x3 neighbourhood) the region is ``2 * d - 1`` pixels wide (a 1 px line: 1, a 3 px line: 3, a disc of
    radius r: about 2r; OpenCV's 5x5 distance mask, within a few percent of the exact distance at a fifth of
    its cost). A long thin structure gives one value per pixel of its length, a compact blob about
    one (:func:`label_stats` weighs each value by the width, so a line counts by its area). ``foreground`` is a bool
    per class id.
    """
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    ids = np.flatnonzero(present) if present is not None else np.unique(mask)
    found = []
    for c in ids[(ids < len(foreground))]:
        if not foreground[int(c)]:
            continue
        inside = (mask == c).astype(np.uint8)
        dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
        ridge = (dist >= cv2.dilate(dist, kernel)) & (inside > 0)
        found.append(2.0 * dist[ridge] - 1.0)
    return np.concatenate(found).astype(np.float32) if found else np.zeros(0, np.float32)


def _weighted_percentiles(widths: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """Percentiles of the ridge ``widths`` weighted by the widths themselves: a ridge pixel stands for a cross-section
    of that many pixels, so the median is the width of the structure the median foreground pixel lies in (a road
    crossed by a few thin poles is wide; a membrane network is thin)."""
    order = np.sort(widths.astype(np.float64))
    cum = np.cumsum(order)
    return tuple(float(order[min(int(np.searchsorted(cum, q * cum[-1])), len(order) - 1)]) for q in qs)


def label_stats(
    masks: Iterable[np.ndarray], num_classes: int, ignore_index: int, classes: Iterable[str], masks_total: int
) -> LabelStats:
    """:class:`LabelStats` of ``masks`` (already decoded): a histogram of each, and per foreground class present
    a distance transform, on masks evenly spaced among them up to :data:`WIDTH_WORK` (large many-class masks
    cost one transform per class: 2048x1024 with 19 classes, 0.2-0.5 s)."""
    masks = list(masks)
    names = tuple(classes) or tuple(str(c) for c in range(num_classes))
    counts = [histogram(m, num_classes)[:num_classes] for m in masks]
    hist = np.sum(counts, axis=0) if counts else np.zeros(num_classes, np.int64)
    total = max(int(hist.sum()), 1)
    background = int(np.argmax(hist)) if num_classes else 0
    foreground = np.ones(num_classes, bool)
    if num_classes:
        foreground[background] = False
    work = sum(m.size * int(np.count_nonzero(c[foreground])) for m, c in zip(masks, counts))
    stride = max(1, min(-(-work // WIDTH_WORK), len(masks) // 4))
    widths = [ridge_widths(m, foreground, c > 0) for m, c in zip(masks[::stride], counts[::stride])]
    found = np.concatenate(widths) if widths else np.zeros(0, np.float32)
    width = _weighted_percentiles(found, (0.1, 0.5, 0.9)) if found.size else None
    sizes = np.array([m.shape[:2] for m in masks]) if masks else np.zeros((1, 2))
    size = (int(np.median(sizes[:, 0])), int(np.median(sizes[:, 1])))
    return LabelStats(
        names,
        tuple(float(n) / total for n in hist),
        background,
        float(hist[foreground].sum()) / total if num_classes else 0.0,
        width,  # type: ignore[arg-type]
        size,
        len(masks),
        masks_total,
        len(widths),
    )


def split_label_stats(index: DatasetIndex, split: str, max_masks: int = LABEL_STAT_MASKS) -> LabelStats:
    """:func:`label_stats` of at most ``max_masks`` masks of ``split``, evenly spaced (a bounded cost at the
    start of training: one decode, one histogram and one distance transform per mask read)."""
    paths = [m for _, m in index.pairs(split)]
    chosen = paths if len(paths) <= max_masks else [paths[i * len(paths) // max_masks] for i in range(max_masks)]
    info = index.info
    return label_stats((read_mask(p) for p in chosen), info.num_classes, info.ignore_index, info.classes, len(paths))


# ------------------------------------------------------------------ per-channel statistics of N-channel images


def channel_stats(
    dataset: str | os.PathLike | DatasetIndex, split: str, channels: int | None = None, max_images: int | None = None
) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """(channels, mean, std) of a split's images, per channel, in ``model.mean``/``std`` units (the model's
    [0, 255] input divided by 255: 8-bit value / 255, 16-bit value / 65535, float as stored).

    ``channels``: dataset.toml's when it states them, else those of the first image; every image must have
    that many (a DataError naming the first that does not). With ``max_images``, that many evenly spaced images.
    """
    index = as_index(dataset, [split])
    info = index.info
    images = [image for image, _ in index.pairs(split)]
    if max_images is not None and len(images) > max_images:
        images = [images[i * len(images) // max_images] for i in range(max_images)]
    n = channels or (info.channels if info.states_channels else None)
    total = sums = squares = None
    for path in images:
        image = read_image(path, n, extra_channel_files(path, info)).astype(np.float64) / 255.0
        n = image.shape[2]
        flat = image.reshape(-1, n)
        if sums is None:
            total, sums, squares = 0, np.zeros(n), np.zeros(n)
        total += flat.shape[0]
        sums += flat.sum(axis=0)
        squares += np.square(flat).sum(axis=0)
    assert sums is not None and squares is not None and total
    mean = sums / total
    std = np.sqrt(np.maximum(squares / total - np.square(mean), 0.0))
    return int(n), tuple(round(float(v), 6) for v in mean), tuple(round(max(float(v), 1e-6), 6) for v in std)
