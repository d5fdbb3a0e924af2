"""Dataset statistics: images per split and class pixel histograms."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.format import list_samples, list_splits, read_dataset_info
from segcli.data.io import read_mask


def class_histogram(root: str | os.PathLike, split: str, num_classes: int, ignore_index: int) -> np.ndarray:
    """Pixel count per class over a split (ignore_index and out-of-range values excluded)."""
    hist = np.zeros(num_classes, np.int64)
    for _, mask_path in list_samples(root, split):
        m = read_mask(mask_path).ravel()
        counts = np.bincount(m, minlength=max(num_classes, int(m.max()) + 1))
        hist += counts[:num_classes]
    return hist


def dataset_summary(root: str | os.PathLike) -> dict[str, Any]:
    """Name, images per split and the pixel share of each class over all splits."""
    info = read_dataset_info(root)
    splits = list_splits(root)
    images = {s: len(list_samples(root, s)) for s in splits}
    hist = sum((class_histogram(root, s, info.num_classes, info.ignore_index) for s in splits),
               np.zeros(info.num_classes, np.int64))
    total = max(int(hist.sum()), 1)
    return {
        "name": info.name,
        "root": str(Path(root)),
        "classes": list(info.classes),
        "images": images,
        "pixel_share": {c: float(n) / total for c, n in zip(info.classes, hist)},
    }
