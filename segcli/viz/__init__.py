"""Pictures as RGB uint8 arrays: the two drawing backends (:mod:`segcli.viz.draw_cv`, OpenCV, always there;
:mod:`segcli.viz.draw_mpl`, matplotlib, the ``plots`` extra) with the same functions, the one place that picks
between them (:func:`drawer`), and PNG encoding. Nothing here knows about runs, models or training: inference
(overlays, confusion matrices), reports and the dataset browser all draw through it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from segcli import extras
from segcli.errors import PresetError
from segcli.io_utils import atomic_write_bytes

BACKENDS = ("auto", "matplotlib", "opencv")

# What the curves are drawn from: (x values, y values), and named series of them (one panel's lines).
Curve = tuple[Sequence[float], Sequence[float]]
NamedCurves = Sequence[tuple[str, Sequence[float], Sequence[float]]]
Panel = tuple[str, NamedCurves, bool]  # one chart of the curves: title, its named series, log scale on y
SampleRows = Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (image, ground truth, prediction) per row
CURVES_WIDTH = 1160  # px: the curves fill the run report's page (1200 px less its margins)
PANEL_HEIGHT = 300  # px per row of two charts
Palette = Sequence[Sequence[int]]  # an RGB colour per class


def drawer(backend: str = "auto") -> ModuleType:
    """The drawing module for ``train.plots_backend``: draw_mpl or draw_cv (same functions, RGB arrays out)."""
    if backend not in BACKENDS:
        raise PresetError(f"train.plots_backend = {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "opencv" or (backend == "auto" and not extras.package_available("matplotlib")):
        from segcli.viz import draw_cv

        return draw_cv
    problem = extras.missing("matplotlib", "plots", "train.plots_backend = 'matplotlib'", "train.plots_backend=opencv")
    if problem:
        raise PresetError(problem)
    from segcli.viz import draw_mpl

    return draw_mpl


def display_rgb(image: np.ndarray, channels: Sequence[int] = (0, 1, 2)) -> np.ndarray:
    """An image of any channel count (N-channel data, ``data.channels``) as RGB uint8 for overlays and previews: the
    ``channels`` chosen (the first three by default; a 1- or 2-channel image shows its first channel as grey),
    clipped to [0, 255]. An RGB uint8 image comes back as it is."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and tuple(channels) == (0, 1, 2):
        return image
    if image.ndim == 2:
        image = image[..., None]
    n = image.shape[2]
    picked = [c for c in channels if c < n] if n >= 3 else [0, 0, 0]
    rgb = image[..., (picked + [picked[-1]] * 3)[:3]]
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def encode_png(rgb: np.ndarray) -> bytes:
    """An RGB uint8 picture as PNG bytes."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("could not encode the picture as PNG")
    return buf.tobytes()


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, encode_png(rgb))


def row_normalise(confusion: np.ndarray) -> np.ndarray:
    """Each ground-truth row divided by its sum (rows without pixels are NaN)."""
    m = confusion.astype(np.float64)
    sums = m.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums > 0, m / np.maximum(sums, 1), np.nan)
