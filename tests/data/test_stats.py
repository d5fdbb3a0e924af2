"""Dataset statistics: class pixel histograms (ignore and out-of-range ids left out) and the summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import make_toy_dataset

from segcli.data.format import list_samples
from segcli.data.io import read_mask, write_mask
from segcli.data.stats import class_histogram, dataset_summary, mask_histogram, summary_dict


def test_mask_histogram_counts_class_pixels_only(tmp_path: Path) -> None:
    a = write_mask(tmp_path / "a.png", np.array([[0, 0, 1], [255, 2, 7]], np.uint8))
    b = write_mask(tmp_path / "b.png", np.array([[1, 1]], np.uint8))
    assert mask_histogram([a, b], 3).tolist() == [2, 3, 1]  # 255 (ignore) and 7 (no such class) not counted
    assert mask_histogram([], 4).tolist() == [0, 0, 0, 0]
    big = write_mask(tmp_path / "c.png", np.array([[0, 300]], np.uint16))
    assert mask_histogram([big], 2).tolist() == [1, 0]


def test_class_histogram_of_a_split_matches_a_plain_count(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d", n=5, classes=3)
    hist, read, total = class_histogram(root, "train", 3, 255)
    masks = [read_mask(m) for _, m in list_samples(root, "train")]
    assert (read, total) == (5, 5)
    assert hist.tolist() == [int(sum((m == c).sum() for m in masks)) for c in range(3)]
    assert hist.sum() == 5 * 16 * 16


@pytest.mark.parametrize(("max_masks", "expected_read"), [(2, 2), (5, 5), (9, 5)])
def test_class_histogram_reads_at_most_max_masks(tmp_path: Path, max_masks: int, expected_read: int) -> None:
    root = make_toy_dataset(tmp_path / "d", n=5)
    hist, read, total = class_histogram(root, "val", 3, 255, max_masks=max_masks)
    assert (read, total) == (expected_read, 5) and hist.sum() == expected_read * 16 * 16


def test_summary_dict_gives_pixel_shares_and_survives_an_empty_histogram() -> None:
    s = summary_dict("toy", Path("data/toy"), ["a", "b"], {"train": 2}, np.array([3, 1]))
    assert s == {
        "name": "toy",
        "root": str(Path("data/toy")),
        "classes": ["a", "b"],
        "images": {"train": 2},
        "pixel_share": {"a": 0.75, "b": 0.25},
    }
    assert summary_dict("toy", "x", ["a", "b"], {}, np.array([]))["pixel_share"] == {"a": 0.0, "b": 0.0}
    assert summary_dict("toy", "x", ["a"], {}, np.array([0]))["pixel_share"] == {"a": 0.0}


def test_dataset_summary_covers_every_split(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d", n=2, classes=2)
    write_mask(root / "masks" / "val" / "0.png", np.full((16, 16), 255, np.uint8))  # all ignore: no pixel counted
    s = dataset_summary(root)
    assert s["name"] == "toy" and s["classes"] == ["c0", "c1"] and s["images"] == {"train": 2, "val": 2}
    masks = [read_mask(m) for split in ("train", "val") for _, m in list_samples(root, split)]
    ones = sum(int((m == 1).sum()) for m in masks)
    assert s["pixel_share"]["c1"] == pytest.approx(ones / (3 * 16 * 16))


def test_class_histogram_of_the_shared_shapes_set_reads_at_most_max_masks(shapes_root: Path) -> None:
    full, read_all, total = class_histogram(shapes_root, "train", 5, 255)
    part, read, total2 = class_histogram(shapes_root, "train", 5, 255, max_masks=4)
    assert (read_all, total, read, total2) == (16, 16, 4, 16)
    assert 0 < part.sum() < full.sum() and (part <= full).all()


def test_channel_stats_are_per_channel_in_model_units(tmp_path: Path) -> None:
    from segcli.data.io import read_image
    from segcli.data.stats import channel_stats

    root = make_toy_dataset(tmp_path, n=3)
    images = [read_image(i).astype(np.float64) / 255 for i, _ in list_samples(root, "train")]
    pixels = np.concatenate([im.reshape(-1, 3) for im in images])
    channels, mean, std = channel_stats(root, "train")
    assert channels == 3  # dataset.toml states none: the first image's count
    np.testing.assert_allclose(mean, pixels.mean(0), atol=1e-6)
    np.testing.assert_allclose(std, pixels.std(0), atol=1e-6)
    assert channel_stats(root, "train", max_images=1)[1] == pytest.approx(tuple(images[0].reshape(-1, 3).mean(0)))
