"""`seg browse`: grid pages of a dataset with masks overlaid and a legend, optionally augmented."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.cli.app import run
from segcli.report.browser import PageLayout, browse, pick


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} does not decode"
    return img


def test_pages_of_the_stored_samples(shapes_root: Path, tmp_path: Path) -> None:
    res = browse(shapes_root, split="val", n=7, out=tmp_path / "b", layout=PageLayout(cols=3, rows=2, tile=64))
    assert res.images == 7 and not res.augmented and res.split == "val"
    assert [f.name for f in res.files] == ["val_001.png", "val_002.png"]  # 6 tiles per page
    first, second = read(res.files[0]), read(res.files[1])
    width = 3 * (64 + 4) + 4
    assert first.shape[1] == second.shape[1] == width
    for page, rows in ((first, 2), (second, 1)):  # the last page has one row of tiles
        legend = page.shape[0] - (24 + rows * (64 + 16 + 4) + 4)
        assert legend >= 26 and (legend - 6) % 20 == 0  # whole rows of swatches under the grid
    assert first[24:88, 4:68].std() > 5  # a tile was drawn, not the blank canvas


def test_augmented_pages_follow_the_preset(shapes_root: Path, tmp_path: Path) -> None:
    plain = browse(shapes_root, n=4, out=tmp_path / "plain", layout=PageLayout(cols=4, rows=1, tile=64))
    aug = browse(shapes_root, "quickstart", n=4, out=tmp_path / "aug", layout=PageLayout(cols=4, rows=1, tile=64))
    again = browse(shapes_root, "quickstart", n=4, out=tmp_path / "again", layout=PageLayout(cols=4, rows=1, tile=64))
    assert aug.augmented and aug.files[0].name == "train_augmented_001.png" and aug.split == "train"
    a, p = read(aug.files[0]), read(plain.files[0])
    assert a.shape[1] == p.shape[1] == 4 * (64 + 4) + 4
    assert not np.array_equal(a[24:88], p[24:88])  # scaled, cropped (padded with ignore), flipped, jittered
    assert aug.files[0].read_bytes() == again.files[0].read_bytes()  # same seed, same pictures
    other = browse(
        shapes_root, "quickstart", n=4, out=tmp_path / "seed", layout=PageLayout(cols=4, rows=1, tile=64), seed=7
    )
    assert other.files[0].read_bytes() != aug.files[0].read_bytes()


def test_cli_refuses_to_overwrite(shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["browse", str(shapes_root), "--n", "2", "--out", str(tmp_path / "b"), "--tile", "32"]
    capsys.readouterr()
    assert run([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 2 and out["files"] == [str(tmp_path / "b" / "train_001.png")]
    before = Path(out["files"][0]).stat().st_mtime_ns
    assert run(args) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert Path(out["files"][0]).stat().st_mtime_ns == before
    assert run([*args, "--overwrite"]) == 0


def test_pick_spreads_evenly() -> None:
    assert pick(10, 3) == [0, 3, 6] and pick(3, 10) == [0, 1, 2]


def test_a_file_name_that_is_not_utf8_is_drawn_not_a_crash(shapes_root: Path, tmp_path: Path) -> None:
    import os
    import shutil

    root = tmp_path / "shapes"
    shutil.copytree(shapes_root, root)
    for sub in ("images", "masks"):
        folder = os.fsencode(root / sub / "val")
        first = sorted(os.listdir(folder))[0]
        os.rename(os.path.join(folder, first), os.path.join(folder, b"bad\xff" + first))
    res = browse(root, split="val", n=2, out=tmp_path / "b")  # cv2.putText segfaulted on the caption
    assert res.images == 2 and read(res.files[0]).std() > 5


def test_pages_of_a_4_channel_tiff_dataset_show_its_first_three_channels(tmp_path: Path) -> None:
    pytest.importorskip("tifffile")
    from data_helpers import make_tiff_dataset

    root = make_tiff_dataset(tmp_path / "d", train=2, val=1, size=32)
    res = browse(root, split="train", n=2, out=tmp_path / "b", layout=PageLayout(cols=2, rows=1, tile=64))
    assert res.images == 2 and read(res.files[0])[24:88, 4:68].std() > 5
    aug = browse(root, "quickstart", n=2, out=tmp_path / "a", layout=PageLayout(cols=2, rows=1, tile=64))
    assert aug.augmented and aug.images == 2  # the training augmentation on 4-channel 16-bit images
