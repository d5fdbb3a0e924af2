"""Dataset statistics: images per split and class pixel histograms."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.format import DatasetIndex, as_index, list_samples
from segcli.data.io import read_mask


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
