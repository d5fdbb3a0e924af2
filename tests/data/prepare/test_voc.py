"""`seg prepare voc` and `voc-aug`: palette indices, split lists, SBD .mat labels."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    cli_error,
    rand_rgb,
    read_ids,
    save_mat,
    write_jpg,
    write_palette_png,
)

from segcli.data.format import default_palette, read_dataset_info
from segcli.data.prepare import prepare


def test_voc_aug_splits_and_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    all_ids = ["2007_000032", "2007_000033", "2008_000002", "2008_000003", "2009_000001", "2010_000005"]
    voc_train, voc_val = ["2007_000032"], ["2007_000033", "2010_000005"]
    sbd_train, sbd_val = ["2008_000002", "2007_000033"], ["2008_000003", "2009_000001"]
    labels = {}
    for k in all_ids:
        write_jpg(voc / "JPEGImages" / f"{k}.jpg", rand_rgb(rng))
        lab = rng.integers(0, 21, (16, 24)).astype(np.uint8)
        if k in voc_train + voc_val:
            lab[0] = 255
            write_palette_png(voc / "SegmentationClass" / f"{k}.png", lab, [[i, i, i] for i in range(256)])
        else:
            save_mat(sbd / "cls" / f"{k}.mat", {"GTcls": {"Segmentation": lab, "CategoriesPresent": np.array([1])}})
        labels[k] = lab
    # An SBD .mat for a VOC-labelled frame must lose to the VOC PNG (which has the borders).
    save_mat(sbd / "cls" / "2007_000032.mat", {"GTcls": {"Segmentation": np.zeros((16, 24), np.uint8)}})
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("\n".join(voc_train) + "\n")
    (sets / "val.txt").write_text("\n".join(voc_val) + "\n")
    (sbd / "train.txt").write_text("\n".join(sbd_train) + "\n")
    (sbd / "val.txt").write_text("\n".join(sbd_val) + "\n")
    with tarfile.open(tmp_path / "benchmark.tgz", "w:gz") as tf:
        tf.add(tmp_path / "benchmark_RELEASE", arcname="benchmark_RELEASE")
    res = prepare("voc-aug", [tmp_path / "VOCdevkit", tmp_path / "benchmark.tgz"], tmp_path / "out")
    # train_aug = (SBD train ∪ SBD val ∪ VOC train) − VOC val
    expected_aug = sorted({"2008_000002", "2007_000033", "2008_000003", "2009_000001", "2007_000032"} - set(voc_val))
    assert res.counts == {"train_aug": len(expected_aug), "val": 2}
    assert sorted(p.stem for p in (tmp_path / "out" / "images" / "train_aug").iterdir()) == expected_aug
    for split, ids in (("train_aug", expected_aug), ("val", voc_val)):
        for k in ids:
            np.testing.assert_array_equal(read_ids(tmp_path / "out" / "masks" / split / f"{k}.png"), labels[k])
    assert read_dataset_info(tmp_path / "out").num_classes == 21


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
