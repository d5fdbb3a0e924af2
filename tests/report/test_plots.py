"""plots/: curves, confusion matrix, sample predictions and class pixels, refreshed every validation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.core.callbacks import Callback, IterStats, RunStart, ValEnd
from segcli.core.rundir import RunDir
from segcli.report.plots import Plots
from segcli.train.trainer import train


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


def test_no_plots_when_off(tiny_overrides: list[str]) -> None:
    res = train("quickstart", [*tiny_overrides, "train.epochs=1", "train.plots=false"])
    assert not (res.run_dir / "plots").exists()


def test_the_callback_draws_curves_and_the_confusion_matrix_without_a_model(tmp_path: Path) -> None:
    """Driven by hand: a resumed run's history comes from metrics.csv, the samples need a model and data."""
    run = RunDir(tmp_path)
    run.write_metrics([{"epoch": 1, "iterations": 4, "train_loss": 1.0, "lr": 0.01, "seconds": 1.0, "mIoU": 0.25}])
    plots = Plots(backend="opencv")
    plots.on_train_start(RunStart(run, epochs=2, iters_per_epoch=4, first_epoch=1, resumed=True))
    assert plots.loss == ([4.0], [1.0]) and plots.val["val mIoU"] == ([4.0], [0.25])
    assert plots.val["EMA mIoU"] == ([], [])  # no EMA column value: nothing to draw
    plots.on_iter_stats(IterStats(1, 3, 4, 0.5, 0.005, 10.0, losses=(0.5,)))
    assert plots.loss == ([4.0, 8.0], [1.0, 0.5]) and plots.lr == ([4.0, 8.0], [0.01, 0.005])
    confusion = np.array([[5, 1], [0, 4]])
    plots.on_val_end(ValEnd(1, 8, {"mIoU": 0.5}, confusion, ("a", "b"), ((0, 0, 0), (255, 0, 0)), True, "mIoU", 0.5))
    assert plots.val["val mIoU"] == ([4.0, 8.0], [0.25, 0.5])
    assert sorted(p.name for p in run.plots_dir.iterdir()) == ["confusion_matrix.png", "curves.png"]
    assert _read(run.plots_dir / "curves.png").shape == (720, 800, 3)


def test_a_callback_that_never_started_ignores_validations() -> None:
    val = ValEnd(0, 4, {"mIoU": 0.5}, np.eye(2, dtype=np.int64), ("a", "b"), ((0, 0, 0), (1, 1, 1)), True, "mIoU", 0.5)
    plots = Plots()
    plots.on_val_end(val)  # no run directory to draw into: nothing recorded, nothing raised
    assert plots.dir is None and plots.val["val mIoU"] == ([], [])
