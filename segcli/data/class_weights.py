"""`seg class-weights`: per-class loss weights from one streaming pass over a split's masks.

The pass builds two histograms at once (so no mask is read twice): the pixel count of every
class, and, per class, the total pixels of the images that contain it (for median-frequency
balancing). Each mask is decoded once and counted into a fixed-length histogram (see
:func:`histogram`); chunks of masks go to a process pool.

Weights (``f`` = a class's share of the non-ignored pixels, ``n`` = its pixel count):

* ``inv``: 1 / f
* ``inv-sqrt``: 1 / sqrt(f)
* ``inv-log``: 1 / ln(1.02 + f) (ENet, Paszke et al. 2016)
* ``effective-num``: (1 - beta) / (1 - beta**n) (Cui et al. 2019)
* ``median-freq``: median(freq) / freq(c), freq(c) = pixels of c / total pixels of the images
  containing c (SegNet, Badrinarayanan et al. 2017; the median is over the present classes)

Classes with no pixels get weight 0. By default the weights of present classes are scaled to
mean 1, so the loss keeps its usual magnitude.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.config.toml_io import dumps_toml
from segcli.data.format import list_samples, read_dataset_info
from segcli.data.io import read_mask
from segcli.errors import DataError, UserError, arg
from segcli.io_utils import atomic_write_text

METHODS = ("inv", "inv-sqrt", "inv-log", "effective-num", "median-freq")


@dataclass
class ClassStats:
    """Histograms of one split: pixels per class, and total pixels of the images containing each class."""

    pixels: np.ndarray  # int64 (C,)
    image_pixels: np.ndarray  # int64 (C,)
    ignored: int = 0
    out_of_range: int = 0
    images: int = 0
    bad_files: list[str] = field(default_factory=list)

    def merge(self, other: ClassStats) -> None:
        self.pixels += other.pixels
        self.image_pixels += other.image_pixels
        self.ignored += other.ignored
        self.out_of_range += other.out_of_range
        self.images += other.images
        self.bad_files.extend(other.bad_files[: max(0, 3 - len(self.bad_files))])


def _read_ids(path: str) -> np.ndarray:
    """Fast path: one OpenCV decode of the bytes (``cv2.imread`` crashes on names that are not UTF-8);
    palette PNGs (3 channels to OpenCV) go through read_mask."""
    try:
        m = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError, cv2.error):
        m = None
    if m is None or m.ndim != 2:
        return read_mask(path)  # palette indices, or the clear error (empty, corrupt, RGB)
    return m


def histogram(mask: np.ndarray, minlength: int) -> np.ndarray:
    """Exact int64 count of every value in ``mask`` (at least ``minlength`` bins).

    uint8 masks go through ``cv2.calcHist`` (a tight 256-bin loop, about twice as fast as
    ``np.bincount``, which first widens the array to int64); its float32 counts are exact below
    2**24 pixels, so larger masks use ``np.bincount``.
    """
    if mask.dtype == np.uint8 and mask.size < 2**24:
        counts = cv2.calcHist([mask], [0], None, [256], [0, 256]).ravel().astype(np.int64)
        return np.pad(counts, (0, max(0, minlength - 256)))
    return np.bincount(mask.ravel(), minlength=minlength)


def count_masks(paths: list[str], num_classes: int, ignore_index: int) -> ClassStats:
    """Histograms of a list of masks (one worker's chunk)."""
    stats = ClassStats(np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64))
    for path in paths:
        m = _read_ids(path)
        counts = histogram(m, max(num_classes, ignore_index + 1))
        cls = counts[:num_classes]
        stats.pixels += cls
        stats.image_pixels[cls > 0] += m.size
        ign = int(counts[ignore_index]) if ignore_index < counts.size else 0
        oor = int(counts.sum() - cls.sum() - ign)
        stats.ignored += ign
        if oor:
            stats.out_of_range += oor
            if len(stats.bad_files) < 3:
                stats.bad_files.append(path)
        stats.images += 1
    return stats


def class_stats(
    root: str | os.PathLike,
    split: str = "train",
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> ClassStats:
    """One pass over the split's masks (``workers`` processes; 0 or 1 = in this process).

    ``progress(n, total)`` is called once with n = 0, then after every chunk with its size.
    """
    info = read_dataset_info(root)
    paths = [str(m) for _, m in list_samples(root, split)]
    c, ign = info.num_classes, info.ignore_index
    total = ClassStats(np.zeros(c, np.int64), np.zeros(c, np.int64))
    workers = max(0, min(workers, len(paths)))
    chunk = max(1, min(64, math.ceil(len(paths) / max(1, workers * 8))))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    if progress:
        progress(0, len(paths))
    if workers <= 1:
        for part in chunks:
            total.merge(count_masks(part, c, ign))
            if progress:
                progress(len(part), len(paths))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(count_masks, part, c, ign) for part in chunks]
            for part, fut in zip(chunks, futures):
                total.merge(fut.result())
                if progress:
                    progress(len(part), len(paths))
    if total.out_of_range:
        raise DataError(
            f"{total.bad_files[0]}: {total.out_of_range} pixels (in {split!r}) hold values that are neither class ids "
            f"0..{c - 1} nor ignore_index {ign}; run `seg check {root}` for the cause and the fix"
        )
    return total


def compute_weights(
    method: str,
    pixels: np.ndarray,
    image_pixels: np.ndarray | None = None,
    beta: float = 0.999,
    normalize: bool = True,
) -> np.ndarray:
    """Class weights (float64) from the pixel histogram; zero-count classes get 0."""
    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    n = np.asarray(pixels, np.float64)
    present = n > 0
    if not present.any():
        raise DataError("no labelled pixels: every mask is empty or ignore_index; nothing to weigh")
    w = np.zeros_like(n)
    f = n[present] / n.sum()
    if method == "inv":
        w[present] = 1.0 / f
    elif method == "inv-sqrt":
        w[present] = 1.0 / np.sqrt(f)
    elif method == "inv-log":
        w[present] = 1.0 / np.log(1.02 + f)
    elif method == "effective-num":
        if not 0.0 < beta < 1.0:
            raise UserError(f"--beta {beta}: must be strictly between 0 and 1 (typical: 0.99-0.9999)")
        # 1 - beta**n computed as -expm1(n*log(beta)) so it stays accurate for beta near 1.
        w[present] = (1.0 - beta) / -np.expm1(n[present] * math.log(beta))
    else:
        if image_pixels is None:
            raise ValueError("median-freq needs image_pixels")
        freq = n[present] / np.asarray(image_pixels, np.float64)[present]
        w[present] = np.median(freq) / freq
    if normalize:
        w[present] /= w[present].mean()
    return w


@dataclass
class ClassWeightsResult:
    """What `seg class-weights` computed and where it wrote it."""

    method: str
    weights: list[float]
    classes: list[str]
    pixels: list[int]
    image_pixels: list[int]
    missing: list[str]
    normalized: bool
    beta: float | None
    split: str
    dataset: str
    images: int
    ignored: int
    out: Path

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["out"] = str(self.out)
        d["normalization"] = self.normalization
        return d

    @property
    def normalization(self) -> str:
        return "scaled to mean 1 over present classes" if self.normalized else "raw (not normalised)"


@dataclass(frozen=True)
class WeightOptions:
    """What is counted and how the weights are scaled: the ``split`` counted by ``workers`` processes (0: in
    this one), effective-num's ``beta``, and whether the weights are normalised to a mean of 1 over the classes
    present."""

    split: str = "train"
    beta: float = 0.999
    normalize: bool = True
    workers: int = 2


def class_weights(
    root: str | os.PathLike,
    method: str,
    options: WeightOptions = WeightOptions(),
    out: str | os.PathLike | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ClassWeightsResult:
    """Count the split's class pixels, compute the weights and write them to a TOML file.

    The file (default ``<root>/class_weights_<method>.toml``) is what ``loss.class_weights``
    reads; an existing file is kept unless ``force``.
    """
    split, beta, normalize, workers = options.split, options.beta, options.normalize, options.workers
    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    root = Path(root)
    out_path = Path(out) if out is not None else root / f"class_weights_{method}.toml"
    if out_path.exists() and not force:
        raise UserError(f"{out_path}: already exists; pass {arg('force')} to replace it or --out to write elsewhere")
    if out_path.exists() and out_path.is_dir():
        raise UserError(f"{out_path}: is a folder; give a file name with --out")
    info = read_dataset_info(root)
    if method == "effective-num" and not 0.0 < beta < 1.0:
        raise UserError(f"--beta {beta}: must be strictly between 0 and 1 (typical: 0.99-0.9999)")
    stats = class_stats(root, split, workers=workers, progress=progress)
    weights = compute_weights(method, stats.pixels, stats.image_pixels, beta=beta, normalize=normalize)
    missing = [c for c, n in zip(info.classes, stats.pixels) if n == 0]
    res = ClassWeightsResult(
        method=method,
        weights=[float(w) for w in weights],
        classes=list(info.classes),
        pixels=[int(v) for v in stats.pixels],
        image_pixels=[int(v) for v in stats.image_pixels],
        missing=missing,
        normalized=normalize,
        beta=beta if method == "effective-num" else None,
        split=split,
        dataset=str(root.resolve()),
        images=stats.images,
        ignored=stats.ignored,
        out=out_path,
    )
    _write(res)
    return res


def _write(res: ClassWeightsResult) -> None:
    doc = {
        "method": res.method,
        "beta": res.beta,
        "normalized": res.normalized,
        "normalization": res.normalization,
        "dataset": res.dataset,
        "split": res.split,
        "images": res.images,
        "ignored_pixels": res.ignored,
        "classes": res.classes,
        "pixel_counts": res.pixels,
        "image_pixel_counts": res.image_pixels,
        "missing_classes": res.missing,
        "weights": res.weights,
    }
    header = (
        '# Class weights written by `seg class-weights`; use them with loss.class_weights = "<this file>".\n'
        "# Classes with no pixels get weight 0. image_pixel_counts: total pixels of the images containing each class.\n"
    )
    atomic_write_text(res.out, header + dumps_toml(doc))
