"""`seg prepare loveda`: the published layout and real tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    cli_json,
    fixture_dir,
    rand_rgb,
    read_ids,
    write_png,
    zip_dir,
)

from segcli.data.prepare import prepare


def test_loveda_published_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    raw = {}
    for split, domain, k in [("Train", "Urban", "1366"), ("Train", "Rural", "0"), ("Val", "Urban", "3514")]:
        d = tmp_path / "dl" / split / split / domain
        write_png(d / "images_png" / f"{k}.png", rand_rgb(rng))
        lab = rng.integers(0, 8, (16, 24), dtype=np.uint8)
        write_png(d / "masks_png" / f"{k}.png", lab)
        raw[(split.lower(), k)] = lab
    srcs = [zip_dir(tmp_path / "dl" / "Train" / "Train", tmp_path / "Train.zip"), tmp_path / "dl" / "Val"]
    res = prepare("loveda", srcs, tmp_path / "out")
    assert res.counts == {"train": 2, "val": 1}
    for (split, k), lab in raw.items():
        exp = np.where(lab == 0, 255, lab.astype(int) - 1)
        np.testing.assert_array_equal(read_ids(tmp_path / "out" / "masks" / split / f"{k}.png"), exp)


def test_loveda_real_tiles(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = fixture_dir("mmseg", "pseudo_loveda_dataset")
    res = cli_json(capsys, ["prepare", "loveda", str(src), "--out", str(tmp_path / "l"), "--link"])
    assert res["images"] == {"train": 3} and res["linked"] == 3
    for ann in sorted((src / "ann_dir").glob("*.png")):
        raw = read_ids(ann)
        got = read_ids(tmp_path / "l" / "masks" / "train" / ann.name)
        np.testing.assert_array_equal(got, np.where(raw == 0, 255, raw.astype(int) - 1))
    assert len(res["classes"]) == 7
