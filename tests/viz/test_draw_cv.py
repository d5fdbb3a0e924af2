"""The OpenCV drawing backend (segcli/viz/draw_cv.py): pictures as uint8 arrays, without matplotlib."""

from __future__ import annotations

import os

import numpy as np

from segcli.viz import draw_cv, row_normalise


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


def test_legend_entries_and_overlay() -> None:
    names, palette = ["bg", "cat", "dog"], [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    mask = np.array([[0, 2], [255, 2]], np.uint8)
    got = draw_cv.legend_entries([mask], names, palette, 255)
    assert got == (["bg", "dog", "ignore (255)"], [(0, 0, 0), (0, 255, 0), draw_cv.IGNORE_COLOUR])
    image = np.full((2, 2, 3), 100, np.uint8)
    over = draw_cv.colour_overlay(image, mask, palette, 255, alpha=0.5)
    assert over[0, 1].tolist() == [50, 178, 50] and over[1, 0].tolist() == [178, 178, 178]
    strip = draw_cv.legend(*got, 300)
    assert strip.shape == (46, 300, 3)  # two entries of 112 px fit in a row of 300


def test_nice_ticks_are_round_values_covering_the_range() -> None:
    assert draw_cv.nice_ticks(0.0, 2.04, 8) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert draw_cv.nice_ticks(0.27, 0.53, 5) == [0.3, 0.4, 0.5] and draw_cv.nice_ticks(0, 9, 4) == [0, 5]
    assert draw_cv.nice_ticks(3.0, 3.0) == [3.0]  # nothing to spread: the value itself


def test_confusion_of_a_few_classes_writes_the_values_in_the_cells() -> None:
    names = ["background", "a", "b"]
    norm = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [np.nan, np.nan, np.nan]])
    img = draw_cv.confusion(norm, names)
    assert img.shape[0] > 3 * 48 and img.shape[1] > 3 * 48  # cells of 48 px (values fit), a title above
    assert not np.array_equal(img, draw_cv.confusion(np.nan_to_num(norm), names))  # the NaN row is drawn as 0


def test_legend_wraps_to_the_width() -> None:
    names = [f"class{i}" for i in range(10)]
    palette = [(i * 20, 0, 0) for i in range(10)]
    wide, narrow = draw_cv.legend(names, palette, 1000), draw_cv.legend(names, palette, 200)
    assert wide.shape == (26, 1000, 3)  # 10 entries of 64 px: one row
    assert narrow.shape[1] == 200 and narrow.shape[0] == 4 * 20 + 6  # three per row: four rows


def test_legend_strip_names_the_given_classes_below_the_image() -> None:
    image = np.full((50, 400, 3), 7, np.uint8)
    palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    out = draw_cv.draw_legend_strip(image, [2, 1, 99], ["bg", "cat", "dog"], palette)  # 99: no such class, skipped
    assert out.shape[1] == 400 and out.shape[0] > 50 and np.array_equal(out[:50], image)  # the image untouched
    assert (out[50:] == (0, 255, 0)).all(-1).any() and (out[50:] == (255, 0, 0)).all(-1).any()
    assert draw_cv.draw_legend_strip(image, [], ["bg"], palette) is image  # nothing to name: the image as it was


def test_colour_overlay_whitens_values_outside_the_classes() -> None:
    image = np.zeros((1, 3, 3), np.uint8)
    mask = np.array([[1, 7, 255]], np.uint8)  # a class, an id past the palette, ignore
    over = draw_cv.colour_overlay(image, mask, [(0, 0, 0), (200, 100, 0)], 255, alpha=1.0)
    assert over.tolist() == [[[200, 100, 0], list(draw_cv.IGNORE_COLOUR), list(draw_cv.IGNORE_COLOUR)]]
    wide = draw_cv.colour_overlay(image, np.array([[1, 300, 0]], np.uint16), [(0, 0, 0), (9, 9, 9)], 255, 1.0)
    assert wide[0, 1].tolist() == list(draw_cv.IGNORE_COLOUR)  # 16-bit masks too


def test_grid_fits_tiles_into_cells_keeping_their_aspect() -> None:
    tall = np.full((40, 10, 3), 50, np.uint8)
    wide = np.full((10, 40, 3), 100, np.uint8)
    img = draw_cv.grid([tall, wide, tall], ["t", "w", "t2"], cols=2, size=20, title="grid")
    gap, cap = 4, 16
    assert img.shape == (24 + 2 * (20 + cap + gap) + gap, 2 * (20 + gap) + gap, 3)  # 3 tiles, 2 per row: 2 rows
    cell = img[24 : 24 + 20, gap : gap + 20]
    assert (cell[:, 10] == 50).all() and (cell[:, 0] == draw_cv.GREY).all()  # the tall tile centred, grey beside


def test_bars_of_many_classes_use_thinner_rows() -> None:
    few = draw_cv.bars(np.array([5, 50]), ["a", "b"], "t")
    many = draw_cv.bars(np.arange(50), [f"c{i}" for i in range(50)], "t")
    assert few.shape[0] == 40 + 2 * 20 + 10 and many.shape[0] == 40 + 50 * 14 + 10


def test_legend_strip_names_the_classes_present() -> None:
    from segcli.viz.draw_cv import draw_legend_strip

    image = np.full((60, 120, 3), 90, np.uint8)
    palette = [(0, 0, 0), (250, 10, 10), (10, 250, 10), (10, 10, 250)]
    names = ["background", "road", "tree", "sky"]
    out = draw_legend_strip(image, [1, 3], names, palette)
    assert out.shape[1] == 120 and out.shape[0] > 60 and np.array_equal(out[:60], image)  # image untouched
    strip = out[60:].reshape(-1, 3)
    has = {tuple(c) for c in strip.tolist()}
    assert (250, 10, 10) in has and (10, 10, 250) in has and (10, 250, 10) not in has  # present classes only
    assert draw_legend_strip(image, [], names, palette) is image
    many = draw_legend_strip(image, [0, 1, 2, 3], names, palette)
    assert many.shape[0] > out.shape[0]  # wrapped onto more rows at this width
    big = draw_legend_strip(np.zeros((100, 3200, 3), np.uint8), [1, 3], names, palette)
    assert big.shape[0] - 100 > out.shape[0] - 60  # the strip grows with the image


def test_text_that_is_not_ascii_is_drawn_as_ascii_not_a_crash() -> None:
    bad = os.fsdecode(b"bad\xffname")  # a file name that is not UTF-8: cv2.putText segfaulted on it
    assert draw_cv.drawable(bad) == "bad\\xffname"
    assert draw_cv.drawable("café\n") == "caf??" and draw_cv.drawable("plain 1") == "plain 1"
    tile = np.zeros((32, 32, 3), np.uint8)
    page = draw_cv.grid([tile], [bad], 1, 32, bad)
    strip = draw_cv.draw_legend_strip(tile, [0], [bad], [(255, 0, 0)])
    assert page.ndim == 3 and strip.shape[0] > 32
