"""`seg prepare voc`: palette indices, split lists, the download named when a list is missing."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    cli_error,
    rand_rgb,
    read_ids,
    write_jpg,
    write_palette_png,
)

from segcli.data.format import default_palette, read_dataset_info
from segcli.data.prepare import prepare


def make_voc(base: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """VOCdevkit/VOC2012 with 3 segmentation ids (2 train, 1 val) and an extra detection-only image."""
    voc = base / "VOCdevkit" / "VOC2012"
    ids = {"2007_000032": "train", "2007_000039": "train", "2007_000033": "val"}
    # A palette whose colours differ from the VOC map: the index must win, not the colour.
    palette = [[(7 * i) % 256, (13 * i) % 256, (29 * i) % 256] for i in range(256)]
    raw = {}
    for k in ids:
        write_jpg(voc / "JPEGImages" / f"{k}.jpg", rand_rgb(rng))
        lab = rng.integers(0, 21, (16, 24))
        lab[0, :] = 255  # object border
        write_palette_png(voc / "SegmentationClass" / f"{k}.png", lab, palette)
        raw[k] = lab.astype(np.uint8)
    write_jpg(voc / "JPEGImages" / "2008_000001.jpg", rand_rgb(rng))
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000032\n2007_000039\n")
    (sets / "val.txt").write_text("2007_000033\n")
    (sets / "trainval.txt").write_text("2007_000032\n2007_000039\n2007_000033\n")
    return raw


def test_voc_tar_palette_indices(tmp_path: Path) -> None:
    raw = make_voc(tmp_path / "dl", np.random.default_rng(0))
    tar = tmp_path / "VOCtrainval_11-May-2012.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(tmp_path / "dl" / "VOCdevkit", arcname="VOCdevkit")
    res = prepare("voc", [tar], tmp_path / "out")
    assert res.counts == {"train": 2, "val": 1}
    for k, lab in raw.items():
        split = "val" if k == "2007_000033" else "train"
        np.testing.assert_array_equal(read_ids(tmp_path / "out" / "masks" / split / f"{k}.png"), lab)
    info = read_dataset_info(tmp_path / "out")
    assert info.classes[15] == "person" and info.palette[15] == (192, 128, 128)
    assert [list(c) for c in info.palette] == default_palette(21)
    assert not (tmp_path / "out" / ".prepare-tmp").exists()


def test_voc_missing_list_names_download(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_voc(tmp_path / "dl", np.random.default_rng(1))
    (tmp_path / "dl" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").write_text("2099_1\n")
    rc, msg = cli_error(capsys, ["prepare", "voc", str(tmp_path / "dl"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "2099_1" in msg and "VOCtrainval_11-May-2012.tar" in msg
