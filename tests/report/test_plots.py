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
        self.val_losses: list[float | None] = []

    def on_train_start(self, start) -> None:  # noqa: ANN001
        self.plots_dir = start.run.plots_dir

    def on_val_end(self, val: ValEnd) -> None:
        assert self.plots_dir is not None
        self.seen.append({p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in self.plots_dir.glob("*.png")})
        self.val_losses.append(val.val_loss)


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} does not decode"
    return img


def _sizes_opencv(plots: Path) -> None:
    assert _read(plots / "curves.png").shape == (600, 1160, 3)  # two rows of two charts, the report's width
    cm = _read(plots / "confusion_matrix.png")
    assert min(cm.shape[:2]) > 5 * 34  # 5 classes, cells large enough for their values
    assert _read(plots / "class_pixels.png").shape[0] == 40 + 5 * 20 + 10
    s = _read(plots / "samples_epoch002.png")
    assert s.shape[1] == 3 * (160 + 4)  # image | ground truth | prediction, square 48 px images at 160 px
    assert s.shape[0] > 4 * 164  # four samples and the legend


def _sizes_matplotlib(plots: Path) -> None:
    assert _read(plots / "curves.png").shape == (600, 1160, 3)  # 11.6 x 6 in at 100 dpi
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
    assert all(v is not None and v > 0 for v in snap.val_losses)  # the validation loss reaches the plots


def test_no_plots_when_off(tiny_overrides: list[str]) -> None:
    res = train("quickstart", [*tiny_overrides, "train.epochs=1", "train.plots=false"])
    assert not (res.run_dir / "plots").exists()


def test_the_callback_draws_curves_and_the_confusion_matrix_without_a_model(tmp_path: Path) -> None:
    """Driven by hand: a resumed run's history comes from metrics.csv (one point per epoch), the iterations'
    exact losses arrive at the log points, x is in epochs; the samples need a model and data."""
    run = RunDir(tmp_path)
    run.write_metrics([{"epoch": 1, "iterations": 4, "train_loss": 1.0, "lr": 0.01, "seconds": 1.0, "mIoU": 0.25}])
    plots = Plots(backend="opencv")
    plots.on_train_start(RunStart(run, epochs=2, iters_per_epoch=4, first_epoch=1, resumed=True))
    assert plots.epoch_loss == {1: 1.0} and plots.val["val mIoU"] == ([1.0], [0.25])
    assert plots.val["EMA mIoU"] == ([], [])  # no EMA column value: nothing to draw
    plots.on_iter_stats(IterStats(1, 0, 4, 0.9, 0.006, 10.0, losses=(0.9,)))
    plots.on_iter_stats(IterStats(1, 1, 4, 0.9, 0.005, 10.0))  # between log points: no loss
    plots.on_iter_stats(IterStats(1, 3, 4, 0.6, 0.004, 10.0, losses=(0.7, 0.5)))  # iterations 3 and 4
    assert plots.loss == ([1.25, 1.75, 2.0], [0.9, 0.7, 0.5]) and plots.lr == (
        [1.0, 1.25, 1.5, 2.0],
        [0.01, 0.006, 0.005, 0.004],
    )
    confusion = np.array([[5, 1], [0, 4]])
    per_class = [{"class": "a", "iou": 0.8}, {"class": "b", "iou": float("nan")}]
    val = ValEnd(1, 8, {"mIoU": 0.5, "per_class": per_class}, confusion, ("a", "b"), ((0, 0, 0), (255, 0, 0)), True,
                 "mIoU", 0.5, val_loss=0.65)  # fmt: skip
    plots.on_val_end(val)
    assert plots.val["val mIoU"] == ([1.0, 2.0], [0.25, 0.5]) and plots.val["val loss"] == ([2.0], [0.65])
    assert plots.per_class["a"] == ([2.0], [0.8])
    loss, metrics, classes, lr = plots.panels()
    assert [name for name, *_ in loss[1]] == ["train (iterations)", "train (epoch mean)", "val"]
    _, epochs, means = loss[1][1]  # epoch 1 from metrics.csv, epoch 2 from its iterations
    assert epochs == [1.0, 2.0] and means == pytest.approx([1.0, 0.7])
    assert [name for name, *_ in metrics[1]] == ["val mIoU"]  # EMA did not run: no EMA line
    assert sorted(p.name for p in run.plots_dir.iterdir()) == ["confusion_matrix.png", "curves.png"]
    assert _read(run.plots_dir / "curves.png").shape == (600, 1160, 3)


def test_per_class_iou_of_many_classes_shows_the_lowest_and_highest_five(tmp_path: Path) -> None:
    plots = Plots(backend="opencv")
    plots.per_class = {f"c{i}": ([1.0], [i / 20]) for i in range(20)}
    title, series = plots._per_class_shown()
    assert [name for name, *_ in series] == ["c0", "c1", "c2", "c3", "c4", "c15", "c16", "c17", "c18", "c19"]
    assert title.endswith("the 5 lowest and 5 highest of 20")


def test_a_callback_that_never_started_ignores_validations() -> None:
    val = ValEnd(0, 4, {"mIoU": 0.5}, np.eye(2, dtype=np.int64), ("a", "b"), ((0, 0, 0), (1, 1, 1)), True, "mIoU", 0.5)
    plots = Plots()
    plots.on_val_end(val)  # no run directory to draw into: nothing recorded, nothing raised
    assert plots.dir is None and plots.val["val mIoU"] == ([], [])
