"""The label statistics a training run starts with: class shares, foreground share, object width, size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import make_masks_dataset

from segcli.data.format import DatasetIndex
from segcli.data.stats import label_stats, ridge_widths, split_label_stats

FG = np.array([False, True])


@pytest.mark.parametrize(("width", "expected"), [(1, 1.0), (3, 3.0), (5, 5.0), (9, 9.0), (4, 3.0)])
def test_a_line_is_as_wide_as_drawn(width: int, expected: float) -> None:
    m = np.zeros((64, 64), np.uint8)
    m[10 : 10 + width, 5:60] = 1
    widths = ridge_widths(m, FG)
    assert np.median(widths) == expected  # an even width reads one less (its ridge is two pixels wide)
    assert len(widths) >= 45  # one value per pixel of its length


def test_a_disc_gives_one_value_near_its_diameter() -> None:
    yy, xx = np.mgrid[:101, :101]
    m = ((yy - 50) ** 2 + (xx - 50) ** 2 <= 30**2).astype(np.uint8)
    widths = ridge_widths(m, FG)
    assert len(widths) == 1 and 58 <= widths[0] <= 62


def test_background_ignored_and_other_classes_bound_a_region() -> None:
    m = np.zeros((32, 32), np.uint8)
    m[:, 10:13] = 1  # a 3 px band of class 1 ...
    m[:, 13:20] = 2  # ... next to a 7 px band of class 2: each is measured on its own
    m[5:8, 22:30] = 255  # ignored pixels are neither measured nor foreground
    widths = ridge_widths(m, np.array([False, True, True]))
    assert sorted(set(widths.tolist())) == [3.0, 7.0]
    assert ridge_widths(np.zeros((8, 8), np.uint8), FG).size == 0


def test_label_stats_of_thin_lines_on_a_background() -> None:
    masks = []
    for k in range(3):
        m = np.zeros((40, 60), np.uint8)
        m[5 + 10 * k : 8 + 10 * k, :] = 1  # a 3 px line across the image
        m[0, 0] = 255
        masks.append(m)
    s = label_stats(masks, 2, 255, ("bg", "line"), masks_total=10)
    assert s.background == 0 and s.binary
    assert s.foreground_share == pytest.approx(3 * 60 / (40 * 60 - 1))
    assert sum(s.pixel_share) == pytest.approx(1.0)
    assert s.median_width == 3.0 and s.size == (40, 60)
    line = s.describe()
    assert line.startswith("data statistics (3 of 10 training masks, median size 40x60)")
    assert "foreground (all but 'bg') 7.5%" in line and "object width median 3.0 px" in line
    assert s.to_dict()["pixel_share"]["line"] == pytest.approx(s.foreground_share)


def test_the_most_frequent_class_is_the_background_and_no_foreground_has_no_width() -> None:
    s = label_stats([np.ones((8, 8), np.uint8)], 3, 255, ("a", "b", "c"), masks_total=1)
    assert s.background == 1 and s.foreground_share == 0.0 and s.width_px is None
    assert "no foreground pixel read" in s.describe()


def test_split_label_stats_reads_at_most_max_masks_evenly_spaced(tmp_path: Path) -> None:
    masks = {}
    for i in range(6):
        m = np.zeros((16, 24), np.uint8)
        m[4:9, :] = 1 if i % 2 == 0 else 2  # 5 px bands
        masks[f"{i}"] = m
    root = make_masks_dataset(tmp_path / "d", masks)
    s = split_label_stats(DatasetIndex.scan(root, ["train"]), "train", max_masks=3)
    assert (s.masks_read, s.masks_total) == (3, 6)
    assert s.pixel_share[1] > 0 and s.pixel_share[2] == 0  # masks 0, 2 and 4: class 1 only
    assert s.median_width == 5.0 and s.classes == ("bg", "a", "b")


def test_the_width_reads_fewer_masks_when_they_are_large_and_many_class(monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.data.stats as stats

    monkeypatch.setattr(stats, "WIDTH_WORK", 3 * 32 * 32)  # three masks' worth of one foreground class
    masks = []
    for k in range(12):
        m = np.zeros((32, 32), np.uint8)
        m[:, 10 : 13 + k % 2 * 2] = 1  # 3 px and 5 px bands
        masks.append(m)
    s = label_stats(masks, 2, 255, ("bg", "fg"), 12)
    assert s.masks_read == 12 and s.width_masks == 4  # every third mask, evenly spaced (0, 3, 6, 9)
    assert s.pixel_share[1] == pytest.approx((6 * 3 + 6 * 5) / (12 * 32))  # the shares still count all 12
    assert "; 4 of the masks)" in s.describe()
    monkeypatch.setattr(stats, "WIDTH_WORK", 1)
    assert label_stats(masks, 2, 255, ("bg", "fg"), 12).width_masks == 4  # never fewer than 4
