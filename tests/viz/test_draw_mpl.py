"""The matplotlib drawing backend (segcli/viz/draw_mpl.py): the pictures of the OpenCV one, from the plots extra."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.viz import row_normalise


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


@pytest.fixture
def draw_mpl():  # noqa: ANN201
    pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    from segcli.viz import draw_mpl

    return draw_mpl


def test_finite_keeps_the_points_that_can_be_drawn(draw_mpl) -> None:  # noqa: ANN001
    xs, ys = [1, 2, 3, 4], [0.5, float("nan"), None, -1.0]
    assert draw_mpl._finite(xs, ys) == ([1, 4], [0.5, -1.0])
    assert draw_mpl._finite(xs, ys, positive=True) == ([1], [0.5])


def test_bars_grow_with_the_classes(draw_mpl) -> None:  # noqa: ANN001
    few = draw_mpl.bars(np.array([5, 50]), ["c0", "c1"], "pixels")
    many = draw_mpl.bars(np.arange(1, 11), [f"c{i}" for i in range(10)], "pixels")
    assert few.shape[1] == many.shape[1]  # names of the same length: the same width
    assert (few.shape[0], many.shape[0]) == (round((0.9 + 2 * 0.25) * 100), round((0.9 + 10 * 0.25) * 100))
    assert few.dtype == np.uint8 and few.shape[2] == 3
