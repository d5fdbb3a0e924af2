"""`seg prepare coco-stuff`: 164k stuffthingmaps and 10k .mat annotations."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import rand_rgb, read_ids, save_mat, write_jpg, write_png, zip_dir

from segcli.data.format import read_dataset_info
from segcli.data.prepare import prepare
from segcli.errors import DataError


def coco_expected(v: np.ndarray) -> np.ndarray:
    """Independent oracle: raw value v (id - 1); skip the 11 unused ids."""
    unused = {11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90}  # 0-based values of ids 12, 26, ..., 91
    out = np.full(v.shape, 255, np.uint8)
    k = 0
    for raw in range(182):
        if raw in unused:
            continue
        out[v == raw] = k
        k += 1
    assert k == 171
    return out


def test_coco_stuff_164k(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    raw = {}
    for split, k in [("train2017", "000000000009"), ("val2017", "000000000139")]:
        write_jpg(tmp_path / "coco" / split / f"{k}.jpg", rand_rgb(rng))
        v = rng.integers(0, 182, (16, 24), dtype=np.uint8)
        v[0, :4] = 255
        v[1, :11] = [11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90]
        v[2, :3] = [0, 181, 91]
        write_png(tmp_path / "maps" / split / f"{k}.png", v)
        raw[(split[:-4], k)] = v
    zip_dir(tmp_path / "maps", tmp_path / "stuffthingmaps_trainval2017.zip")
    res = prepare("coco-stuff", [tmp_path / "stuffthingmaps_trainval2017.zip", tmp_path / "coco"], tmp_path / "out")
    assert res.counts == {"train": 1, "val": 1}
    info = read_dataset_info(tmp_path / "out")
    assert info.num_classes == 171 and info.classes[0] == "person" and info.classes[80] == "banner"
    assert info.classes[170] == "wood"
    for (split, k), v in raw.items():
        got = read_ids(tmp_path / "out" / "masks" / split / f"{k}.png")
        np.testing.assert_array_equal(got, coco_expected(v))
        assert got[2, 0] == 0 and got[2, 1] == 170 and got[2, 2] == 80


def test_coco_stuff_10k_mat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    base = tmp_path / "cocostuff-10k"
    raw = {}
    for k in ["COCO_train2014_000000000077", "COCO_train2014_000000000078"]:
        write_jpg(base / "images" / f"{k}.jpg", rand_rgb(rng))
        s = rng.integers(0, 183, (16, 24)).astype(np.uint16)
        save_mat(base / "annotations" / f"{k}.mat", {"S": s, "names": np.array(["x"], dtype=object)})
        raw[k] = s
    (base / "imageLists").mkdir()
    (base / "imageLists" / "train.txt").write_text("COCO_train2014_000000000077\n")
    (base / "imageLists" / "test.txt").write_text("COCO_train2014_000000000078\n")
    res = prepare("coco-stuff", [base], tmp_path / "out")
    assert res.counts == {"train": 1, "val": 1}
    got = read_ids(tmp_path / "out" / "masks" / "train" / "COCO_train2014_000000000077.png")
    s = raw["COCO_train2014_000000000077"].astype(np.int64)
    np.testing.assert_array_equal(got, np.where(s == 0, 255, coco_expected(np.clip(s - 1, 0, 255))))
    # Without scipy: a clear error naming the extra.
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(DataError, match=r"pip install segcli\[mat\]"):
        prepare("coco-stuff", [base], tmp_path / "out2")
