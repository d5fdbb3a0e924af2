"""`seg prepare lip`: a real sample and bad values."""

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
)

from segcli.data.format import read_dataset_info
from segcli.data.prepare import prepare
from segcli.errors import DataError


def test_lip_real_and_bad_values(tmp_path: Path) -> None:
    src = fixture_dir("mmseg", "pseudo_lip_dataset")
    res = prepare("lip", [src], tmp_path / "out")
    assert res.counts == {"train": 1, "val": 1}
    for split in ("train", "val"):
        for ann in (src / f"{split}_segmentations").glob("*.png"):
            np.testing.assert_array_equal(read_ids(tmp_path / "out" / "masks" / split / ann.name), read_ids(ann))
    assert read_dataset_info(tmp_path / "out").num_classes == 20
    # A value outside 0..19 is reported with the file name.
    bad = tmp_path / "bad"
    write_jpg(bad / "train_images" / "1_1.jpg", rand_rgb(np.random.default_rng(0)))
    write_png(bad / "train_segmentations" / "1_1.png", np.full((16, 24), 40, np.uint8))
    with pytest.raises(DataError, match=r"1_1.png: values \[40\]"):
        prepare("lip", [bad], tmp_path / "out2")
