"""`seg prepare cityscapes`: labelIds to trainIds, coarse, a real frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    fixture_dir,
    make_cityscapes,
    read_ids,
    tar_dir,
    zip_dir,
)

from segcli.data.prepare import prepare

CITYSCAPES_TRAIN = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


def expected_train_ids(label_ids: np.ndarray) -> np.ndarray:
    exp = np.full(label_ids.shape, 255, np.uint8)
    for lid, tid in CITYSCAPES_TRAIN.items():
        exp[label_ids == lid] = tid
    return exp


@pytest.mark.parametrize("packing", ["folder", "zip", "tgz"])
def test_cityscapes_ids_match_official_table(tmp_path: Path, packing: str) -> None:
    rng = np.random.default_rng(0)
    raw = make_cityscapes(tmp_path / "dl", rng)
    if packing == "folder":
        srcs = [tmp_path / "dl"]
    elif packing == "zip":
        srcs = [
            zip_dir(tmp_path / "dl" / "leftImg8bit", tmp_path / "leftImg8bit_trainvaltest.zip"),
            zip_dir(tmp_path / "dl" / "gtFine", tmp_path / "gtFine_trainvaltest.zip"),
        ]
    else:
        srcs = [
            tar_dir(tmp_path / "dl" / "leftImg8bit", tmp_path / "l.tgz"),
            tar_dir(tmp_path / "dl" / "gtFine", tmp_path / "g.tgz"),
        ]
    out = tmp_path / "out"
    res = prepare("cityscapes", srcs, out)
    assert res.counts == {"test": 1, "train": 2, "val": 1}
    assert not (out / ".prepare-tmp").exists()
    for (split, stem), ids in raw.items():
        got = read_ids(out / "masks" / split / f"{stem}.png")
        np.testing.assert_array_equal(got, expected_train_ids(ids))
        assert (out / "images" / split / f"{stem}.png").read_bytes() == (
            tmp_path / "dl" / "leftImg8bit" / split / stem.split("_")[0] / f"{stem}_leftImg8bit.png"
        ).read_bytes()
    toml = (out / "dataset.toml").read_text()
    assert '"road"' in toml and '"bicycle"' in toml


def test_cityscapes_coarse_adds_train_extra(tmp_path: Path) -> None:
    raw = make_cityscapes(tmp_path / "dl", np.random.default_rng(1), coarse=True)
    res = prepare("cityscapes", [tmp_path / "dl"], tmp_path / "out", coarse=True)
    assert res.counts["train_extra"] == 1
    stem = "augsburg_000000_000000"
    got = read_ids(tmp_path / "out" / "masks" / "train_extra" / f"{stem}.png")
    np.testing.assert_array_equal(got, expected_train_ids(raw[("train_extra", stem)]))
    # Without --coarse the train_extra images are left out.
    assert "train_extra" not in prepare("cityscapes", [tmp_path / "dl"], tmp_path / "out2").counts


def test_cityscapes_real_frame(tmp_path: Path) -> None:
    src = fixture_dir("mmseg", "pseudo_cityscapes_dataset")
    out = tmp_path / "cs"
    prepare("cityscapes", [src], out)
    gt = src / "gtFine" / "val" / "frankfurt"
    stem = "frankfurt_000000_000294"
    label_ids = read_ids(gt / f"{stem}_gtFine_labelIds.png")
    got = read_ids(out / "masks" / "val" / f"{stem}.png")
    np.testing.assert_array_equal(got, expected_train_ids(label_ids))
    shipped = read_ids(gt / f"{stem}_gtFine_labelTrainIds.png")
    agree = float((got == shipped).mean())
    assert agree >= 0.99, agree
    assert set(np.unique(got).tolist()) <= set(range(19)) | {255}
