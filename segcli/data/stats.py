"""Dataset statistics: images per split and class pixel histograms."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

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
