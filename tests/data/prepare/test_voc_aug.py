"""`seg prepare voc-aug`: VOC 2012 with the SBD labels, the train_aug split and SBD .mat labels."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import cli_error, rand_rgb, read_ids, save_mat, write_jpg, write_palette_png

from segcli.data.format import read_dataset_info
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


def _voc_and_sbd(tmp_path: Path, sbd_label: dict) -> tuple[Path, Path]:
    """One VOC val frame, one SBD-only train frame whose .mat holds ``sbd_label``."""
    rng = np.random.default_rng(5)
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    write_jpg(voc / "JPEGImages" / "2007_000001.jpg", rand_rgb(rng))
    write_palette_png(voc / "SegmentationClass" / "2007_000001.png", np.zeros((16, 24), np.uint8), [[0, 0, 0]])
    write_jpg(voc / "JPEGImages" / "2008_000001.jpg", rand_rgb(rng))
    save_mat(sbd / "cls" / "2008_000001.mat", sbd_label)
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2008_000001\n")  # (lists may not be empty)
    (sets / "val.txt").write_text("2007_000001\n")
    (sbd / "train.txt").write_text("2008_000001\n")
    (sbd / "val.txt").write_text("2007_000001\n")  # a VOC val frame: never in train_aug
    return tmp_path / "VOCdevkit", tmp_path / "benchmark_RELEASE"


def test_voc_aug_bad_sbd_mat_is_an_error_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    voc, sbd = _voc_and_sbd(tmp_path / "a", {"other": np.zeros((2, 2), np.uint8)})
    rc, msg = cli_error(capsys, ["prepare", "voc-aug", str(voc), str(sbd), "-o", str(tmp_path / "o1")])
    assert rc == 2 and "2008_000001.mat: no GTcls.Segmentation in this .mat file" in msg
    bad_ids = np.full((16, 24), 30, np.uint8)
    voc, sbd = _voc_and_sbd(tmp_path / "b", {"GTcls": {"Segmentation": bad_ids}})
    rc, msg = cli_error(capsys, ["prepare", "voc-aug", str(voc), str(sbd), "-o", str(tmp_path / "o2")])
    assert rc == 2 and "2008_000001.mat: GTcls.Segmentation is not a 2-D map of VOC ids 0..20" in msg


def test_voc_aug_without_sbd_lists_or_a_label_names_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    voc, sbd = _voc_and_sbd(tmp_path, {"GTcls": {"Segmentation": np.zeros((16, 24), np.uint8)}})
    rc, msg = cli_error(capsys, ["prepare", "voc-aug", str(voc), "-o", str(tmp_path / "o1")])
    assert rc == 2 and "no SBD benchmark_RELEASE/dataset/{train,val}.txt found" in msg
    (sbd / "dataset" / "cls" / "2008_000001.mat").unlink()
    rc, msg = cli_error(capsys, ["prepare", "voc-aug", str(voc), str(sbd), "-o", str(tmp_path / "o2")])
    assert rc == 2 and "no label (VOC SegmentationClass or SBD cls .mat) for 2008_000001 of train_aug" in msg
