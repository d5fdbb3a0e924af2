"""`seg prepare ade20k`: reduce-zero labels, class names from objectInfo150."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    fixture_dir,
    rand_rgb,
    read_ids,
    write_jpg,
    write_png,
    zip_dir,
)

from segcli.data.format import read_dataset_info
from segcli.data.prepare import prepare
from segcli.errors import DataError


def ade_expected(raw: np.ndarray) -> np.ndarray:
    return np.where(raw == 0, 255, raw.astype(np.int32) - 1).astype(np.uint8)


def make_ade(root: Path, rng: np.random.Generator, txt: bool = True) -> dict[tuple[str, str], np.ndarray]:
    base = root / "ADEChallengeData2016"
    raw = {}
    for folder, split, stem in [
        ("training", "train", "ADE_train_00000001"),
        ("training", "train", "ADE_train_00000002"),
        ("validation", "val", "ADE_val_00000001"),
    ]:
        write_jpg(base / "images" / folder / f"{stem}.jpg", rand_rgb(rng))
        ids = rng.integers(0, 151, (16, 24), dtype=np.uint8)
        write_png(base / "annotations" / folder / f"{stem}.png", ids)
        raw[(split, stem)] = ids
    if txt:
        lines = ["Idx\tRatio\tTrain\tVal\tName"] + [f"{i}\t0.01\t10\t1\tclass{i}, synonym" for i in range(1, 151)]
        (base / "objectInfo150.txt").write_text("\n".join(lines) + "\n")
    return raw


@pytest.mark.parametrize("as_zip", [False, True])
def test_ade20k_reduce_zero_label(tmp_path: Path, as_zip: bool) -> None:
    raw = make_ade(tmp_path / "dl", np.random.default_rng(0))
    src = (
        zip_dir(tmp_path / "dl" / "ADEChallengeData2016", tmp_path / "ADEChallengeData2016.zip")
        if as_zip
        else (tmp_path / "dl" / "ADEChallengeData2016")
    )
    res = prepare("ade20k", [src], tmp_path / "out")
    assert res.counts == {"train": 2, "val": 1}
    for (split, stem), ids in raw.items():
        np.testing.assert_array_equal(read_ids(tmp_path / "out" / "masks" / split / f"{stem}.png"), ade_expected(ids))
    info = read_dataset_info(tmp_path / "out")
    assert info.num_classes == 150 and info.classes[0] == "class1" and info.classes[149] == "class150"


def test_ade20k_needs_object_info(tmp_path: Path) -> None:
    make_ade(tmp_path / "dl", np.random.default_rng(1), txt=False)
    with pytest.raises(DataError, match="objectInfo150.*ADEChallengeData2016.zip"):
        prepare("ade20k", [tmp_path / "dl"], tmp_path / "out")


def test_ade20k_real_sample(tmp_path: Path) -> None:
    src = fixture_dir("ade20k-sample")
    res = prepare("ade20k", [src], tmp_path / "out")
    assert res.counts == {"val": 3}
    info = read_dataset_info(tmp_path / "out")
    assert info.classes[:3] == ("wall", "building", "sky") and info.num_classes == 150
    for ann in sorted((src / "annotations").glob("*.png")):
        raw = read_ids(ann)
        got = read_ids(tmp_path / "out" / "masks" / "val" / ann.name)
        np.testing.assert_array_equal(got, ade_expected(raw))
        assert (got == 255).sum() == (raw == 0).sum()
