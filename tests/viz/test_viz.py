"""Picking a drawing backend and what both backends draw alike (segcli/viz/__init__.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

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
