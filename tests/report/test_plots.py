"""plots/: curves, confusion matrix, sample predictions and class pixels, refreshed every validation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.core.callbacks import Callback, ValEnd
from segcli.errors import PresetError
from segcli.extras import package_available
from segcli.train.trainer import train
from segcli.viz import draw_cv, drawer, row_normalise


class Snapshot(Callback):
    """Hashes of every plot after each validation (the plots callback runs before this one)."""

    def __init__(self) -> None:
        self.plots_dir: Path | None = None
        self.seen: list[dict[str, str]] = []

    def on_train_start(self, start) -> None:  # noqa: ANN001
        self.plots_dir = start.run.plots_dir

    def on_val_end(self, val: ValEnd) -> None:
        assert self.plots_dir is not None
        self.seen.append({p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in self.plots_dir.glob("*.png")})


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} does not decode"
    return img


def _sizes_opencv(plots: Path) -> None:
    assert _read(plots / "curves.png").shape == (720, 800, 3)
    cm = _read(plots / "confusion_matrix.png")
    assert cm.shape[0] > cm.shape[1] > 5 * 34  # 5 classes, cells large enough for their values
    assert _read(plots / "class_pixels.png").shape[0] == 40 + 5 * 20 + 10
    s = _read(plots / "samples_epoch002.png")
    assert s.shape[1] == 3 * (160 + 4)  # image | ground truth | prediction, square 48 px images at 160 px
    assert s.shape[0] > 4 * 164  # four samples and the legend


def _sizes_matplotlib(plots: Path) -> None:
    assert _read(plots / "curves.png").shape == (720, 800, 3)  # 8 x 7.2 in at 100 dpi
    cm = _read(plots / "confusion_matrix.png")
    assert cm.shape[1] > cm.shape[0] > 5 * 50  # 5 cells of 0.5 in, names at the side, the colour bar at the right
    assert _read(plots / "class_pixels.png").shape[0] == round((0.9 + 5 * 0.25) * 100)
    s = _read(plots / "samples_epoch002.png")
    assert s.shape[1] == round((3 * 2.2 + 0.2) * 100)  # three 2.2 in panels
    assert s.shape[0] > 4 * 220  # four rows of square 48 px images and the legend


@pytest.fixture(params=["opencv", "matplotlib"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "matplotlib":
        pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    return request.param


def test_plots_written_and_refreshed_every_validation(tiny_overrides: list[str], backend: str) -> None:
    snap = Snapshot()
    res = train("quickstart", [*tiny_overrides, "train.ema=0.9", f"train.plots_backend={backend}"], callbacks=[snap])
    plots = res.run_dir / "plots"
    names = {p.name for p in plots.iterdir()}
    assert names == {
        "curves.png",
        "confusion_matrix.png",
        "class_pixels.png",
        "samples_epoch001.png",
        "samples_epoch002.png",
    }
    {"opencv": _sizes_opencv, "matplotlib": _sizes_matplotlib}[backend](plots)
    first, second = snap.seen
    assert first["class_pixels.png"] == second["class_pixels.png"]  # drawn once, at the start
    assert (
        first["curves.png"] != second["curves.png"] and first["confusion_matrix.png"] != second["confusion_matrix.png"]
    )
    assert "samples_epoch002.png" not in first and "samples_epoch002.png" in second


def test_auto_picks_matplotlib_when_installed_else_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.extras as extras

    assert drawer("opencv") is draw_cv
    if package_available("matplotlib"):
        assert drawer("auto").__name__ == drawer("matplotlib").__name__ == "segcli.viz.draw_mpl"
    monkeypatch.setattr(extras, "package_available", lambda name: False)
    assert drawer("auto") is draw_cv
    with pytest.raises(PresetError, match=r"pip install 'segcli\[plots\]'"):
        drawer("matplotlib")


def test_no_plots_when_off(tiny_overrides: list[str]) -> None:
    res = train("quickstart", [*tiny_overrides, "train.epochs=1", "train.plots=false"])
    assert not (res.run_dir / "plots").exists()


def test_confusion_matrix_of_150_classes_stays_readable() -> None:
    rng = np.random.default_rng(0)
    names = [f"class_{i:03d}_long_name" for i in range(150)]
    counts = rng.integers(0, 100, (150, 150))
    counts[3] = 0  # a class without ground truth pixels: a NaN row
    norm = row_normalise(counts)
    assert np.isnan(norm[3]).all() and np.allclose(np.nansum(norm, 1)[[0, 1, 149]], 1.0)
    img = draw_cv.confusion(norm, names)
    assert img.shape[0] < 1400 and img.shape[1] < 1400  # one cell per 6 px, names at the side, no cell text
    assert img.dtype == np.uint8 and img.std() > 10


def test_matplotlib_confusion_matrix_of_150_classes() -> None:
    pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    from segcli.viz import draw_mpl

    names = [f"class_{i:03d}_long_name" for i in range(150)]
    counts = np.random.default_rng(0).integers(0, 100, (150, 150)) + np.eye(150, dtype=np.int64) * 10_000
    counts[3] = 0
    img = draw_mpl.confusion(row_normalise(counts), names)
    assert 1500 < img.shape[0] < 2000 and 1500 < img.shape[1] < 2100  # 0.11 in cells: names stay legible
    assert img.dtype == np.uint8 and img.std() > 10
    few = draw_mpl.confusion(row_normalise(counts[:4, :4]), names[:4])
    assert few.shape[0] < 600  # big cells with their values for a few classes


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


def test_class_histogram_reads_at_most_max_masks(shapes_root: Path) -> None:
    from segcli.data.stats import class_histogram

    full, read_all, total = class_histogram(shapes_root, "train", 5, 255)
    part, read, total2 = class_histogram(shapes_root, "train", 5, 255, max_masks=4)
    assert (read_all, total, read, total2) == (16, 16, 4, 16)
    assert 0 < part.sum() < full.sum() and (part <= full).all()
