"""Picking a drawing backend and what both backends draw alike (segcli/viz/__init__.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segcli.errors import PresetError
from segcli.extras import package_available
from segcli.viz import draw_cv, drawer, encode_png, row_normalise, write_png


def test_auto_picks_matplotlib_when_installed_else_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.extras as extras

    assert drawer("opencv") is draw_cv
    if package_available("matplotlib"):
        assert drawer("auto").__name__ == drawer("matplotlib").__name__ == "segcli.viz.draw_mpl"
    monkeypatch.setattr(extras, "package_available", lambda name: False)
    assert drawer("auto") is draw_cv
    with pytest.raises(PresetError, match=r"pip install 'segcli\[plots\]'"):
        drawer("matplotlib")


@pytest.mark.parametrize("backend", ["draw_cv", "draw_mpl"])
def test_bars_and_samples_of_each_backend(backend: str) -> None:
    if backend == "draw_mpl":
        pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    import importlib

    mod = importlib.import_module(f"segcli.viz.{backend}")
    names = ["background", "a", "b"]
    img = mod.bars(np.array([10_000, 0, 7]), names, "pixels per class")
    assert img.ndim == 3 and img.dtype == np.uint8 and img.std() > 5
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 3, (20, 30))
    gt[:2] = 255  # ignored pixels
    rows = [(np.full((20, 30, 3), 128, np.uint8), gt, rng.integers(0, 3, (20, 30)))]
    sample = mod.samples(rows, names, [(0, 0, 0), (255, 0, 0), (0, 255, 0)], 255, "title")
    assert sample.ndim == 3 and sample.shape[1] > sample.shape[0] > 20  # one wide row: image | gt | prediction


def test_an_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(PresetError, match=r"train.plots_backend = 'svg'; choose one of auto, matplotlib, opencv"):
        drawer("svg")


def test_row_normalise_divides_each_row_by_its_sum() -> None:
    norm = row_normalise(np.array([[3, 1], [0, 0], [0, 5]]))
    assert norm.dtype == np.float64
    np.testing.assert_allclose(norm[0], [0.75, 0.25])
    assert np.isnan(norm[1]).all()  # no ground-truth pixels: unknown, not zero
    np.testing.assert_allclose(norm[2], [0.0, 1.0])


def test_png_encoding_round_trips_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # red stays red: the BGR swap is done once, inside
    rgb[2, 3] = (0, 0, 255)
    data = encode_png(rgb)
    assert data.startswith(b"\x89PNG")
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(back, rgb)
    path = write_png(tmp_path / "sub" / "a.png", rgb)  # the folder is made
    assert path == tmp_path / "sub" / "a.png" and path.read_bytes() == data


PANELS = [
    (
        "loss (log scale)",
        [("train", [0.25, 0.5, 0.75, 1.0], [2.0, 1.0, 0.0, float("nan")]), ("val", [1.0], [0.9])],
        True,
    ),
    ("validation", [("val mIoU", [1.0, 2.0], [0.3, None])], False),
    ("per-class IoU", [("a", [1.0, 2.0], [0.1, 0.3]), ("b", [1.0, 2.0], [0.8, 0.9])], False),
    ("learning rate", [("lr", [], [])], False),  # nothing yet: the chart says so
]


def _ink(img: np.ndarray) -> float:
    """The share of pixels that are not white."""
    return float((img.min(axis=2) < 245).mean())


def _colour(img: np.ndarray) -> float:
    """The share of coloured pixels (the series' lines; grid, text and frame are grey)."""
    return float((img.max(axis=2).astype(int) - img.min(axis=2) > 80).mean())


@pytest.mark.parametrize("backend", ["draw_cv", "draw_mpl"])
def test_curves_fill_the_report_width_with_four_labelled_charts(backend: str) -> None:
    """Reported: curves with only min/max tick labels and no grid, 800 of the page's 1400 px. Each backend draws
    two charts a row, 1160 px wide, every chart holding its lines, grid and tick labels (ink in each quarter)."""
    if backend == "draw_mpl":
        pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    import importlib

    img = importlib.import_module(f"segcli.viz.{backend}").curves(PANELS, "epoch")
    assert img.shape == (600, 1160, 3) and img.dtype == np.uint8
    quarters = [img[r : r + 300, c : c + 580] for r in (0, 300) for c in (0, 580)]
    assert all(_ink(q) > 0.01 and _colour(q) > 0.0002 for q in quarters[:3])  # coloured lines, grid, tick labels
    assert _ink(quarters[3]) > 0.002 and _colour(quarters[3]) == 0.0  # a frame and "no data yet", no line


@pytest.mark.parametrize("backend", ["draw_cv", "draw_mpl"])
def test_the_confusion_matrix_title_of_two_classes_is_whole(backend: str) -> None:
    """Reported: a cut-off confusion-matrix title. Its band at the top keeps a white margin at both sides."""
    if backend == "draw_mpl":
        pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    import importlib

    img = importlib.import_module(f"segcli.viz.{backend}").confusion(
        row_normalise(np.array([[9, 1], [2, 8]])), ["a", "b"]
    )
    band = img[:24]
    assert _ink(band) > 0.01  # the title is there
    assert _ink(band[:, :4]) == 0.0 and _ink(band[:, -4:]) == 0.0  # and it ends inside the picture


@pytest.mark.parametrize("backend", ["draw_cv", "draw_mpl"])
def test_the_reliability_diagram_draws_bars_the_diagonal_and_counts(backend: str) -> None:
    """Per-bin accuracy bars (blue) where a bin has pixels, none where it is empty, and the counts below."""
    if backend == "draw_mpl":
        pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    import importlib

    from segcli.metrics import ReliabilityBins

    bins = ReliabilityBins(2)
    scores = torch.tensor([[2.0, 0.0, -1.0, 3.0], [0.0, 2.0, 1.0, -3.0]])[:, None, :]  # (K=2, 1, 4)
    bins.update(scores, torch.tensor([[0, 0, 1, 0]]))
    rows = bins.summary()["reliability"]
    assert sum(r["accuracy"] is not None for r in rows) == 2  # confidences 0.88 (3 pixels) and 0.98: two bins
    draw = importlib.import_module(f"segcli.viz.{backend}").reliability
    img = draw(rows, "ECE 0.1")
    empty = draw([{**r, "pixels": 0, "confidence": None, "accuracy": None} for r in rows], "no pixels")
    assert img.ndim == 3 and img.dtype == np.uint8 and empty.shape == img.shape
    blue = lambda a: int(((a[..., 2].astype(int) - a[..., 0]) > 100).sum())  # noqa: E731
    assert blue(img) > 10 * blue(empty) + 500  # the accuracy bars only where bins have pixels (a legend swatch)
    assert _ink(empty) > 0.01  # frame, diagonal, labels still drawn


def test_display_rgb_shows_the_first_three_or_chosen_channels() -> None:
    from segcli.viz import display_rgb

    rgb = np.zeros((2, 2, 3), np.uint8)
    assert display_rgb(rgb) is rgb
    image = np.stack([np.full((2, 2), v, np.float32) for v in (10.4, 20.6, 300.0, 40.0)], -1)
    assert display_rgb(image)[0, 0].tolist() == [10, 21, 255]  # rounded, clipped to uint8
    assert display_rgb(image, (3, 0, 1))[0, 0].tolist() == [40, 10, 21]  # chosen channels: NIR as red
    assert display_rgb(image[..., :1])[0, 0].tolist() == [10, 10, 10]  # one channel: grey
    assert display_rgb(image[..., 0])[0, 0].tolist() == [10, 10, 10]
