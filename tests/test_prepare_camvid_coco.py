"""`seg prepare camvid`, `coco-stuff` and `voc-aug`."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import cli_json, rand_rgb, read_ids, write_jpg, write_palette_png, write_png, zip_dir

from segcli.data.format import read_dataset_info
from segcli.data.prepare import prepare
from segcli.errors import DataError


def test_camvid_segnet_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    base = tmp_path / "SegNet" / "CamVid"
    raw = {}
    for split, k in [("train", "0001TP_006690"), ("val", "0016E5_07959"), ("test", "Seq05VD_f00000")]:
        write_png(base / split / f"{k}.png", rand_rgb(rng))
        lab = rng.integers(0, 12, (16, 24), dtype=np.uint8)
        write_png(base / f"{split}annot" / f"{k}.png", lab)
        raw[(split, k)] = lab
    (base / "train.txt").write_text("/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/...\n")
    res = cli_json(capsys, ["prepare", "camvid", str(tmp_path / "SegNet"), "--out", str(tmp_path / "out")])
    assert res["images"] == {"test": 1, "train": 1, "val": 1}
    assert res["classes"][0] == "sky" and res["classes"][10] == "bicyclist" and len(res["classes"]) == 11
    for (split, k), lab in raw.items():
        np.testing.assert_array_equal(
            read_ids(tmp_path / "out" / "masks" / split / f"{k}.png"), np.where(lab == 11, 255, lab)
        )


# The original release's colour table (a subset is enough) and the expected 11-class ids.
ORIGINAL = [
    ((64, 128, 64), "Animal", 9),
    ((192, 0, 128), "Archway", 1),
    ((0, 128, 192), "Bicyclist", 10),
    ((128, 128, 128), "Sky", 0),
    ((64, 0, 64), "Tunnel", 1),
    ((192, 192, 128), "Column_Pole", 2),
    ((128, 64, 128), "Road", 3),
    ((128, 0, 192), "LaneMkgsDriv", 3),
    ((0, 0, 192), "Sidewalk", 4),
    ((64, 192, 128), "ParkingBlock", 4),
    ((128, 128, 0), "Tree", 5),
    ((128, 128, 64), "SignSymbol", 6),
    ((0, 64, 64), "TrafficLight", 6),
    ((64, 64, 128), "Fence", 7),
    ((64, 0, 128), "Car", 8),
    ((192, 128, 192), "SUVPickupTruck", 8),
    ((64, 64, 0), "Pedestrian", 9),
    ((192, 0, 192), "MotorcycleScooter", 10),
    ((0, 0, 0), "Void", 255),
]


def test_camvid_original_colours_to_11_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = tmp_path / "CamVid"
    (base).mkdir()
    (base / "label_colors.txt").write_text("".join(f"{r} {g} {b}\t{n}\n" for (r, g, b), n, _ in ORIGINAL))
    colors = np.array([c for c, _, _ in ORIGINAL], np.uint8)
    ids = np.array([i for _, _, i in ORIGINAL], np.uint8)
    raw = {}
    for k in ["0001TP_006690", "0001TP_006720", "0006R0_f00930", "Seq05VD_f00000"]:
        write_png(base / "701_StillsRaw_full" / f"{k}.png", rand_rgb(rng))
        idx = rng.integers(0, len(ORIGINAL), (16, 24))
        write_png(base / "LabeledApproved_full" / f"{k}_L.png", colors[idx])
        raw[k] = ids[idx]
    lists = {"train": tmp_path / "train.txt", "test": tmp_path / "test.txt"}
    lists["train"].write_text("0001TP_006690\n0001TP_006720.png\n0006R0_f00930\n")
    lists["test"].write_text("Seq05VD_f00000\n")
    res = prepare("camvid", [zip_dir(base, tmp_path / "camvid.zip")], tmp_path / "out", split_lists=lists)
    assert res.counts == {"train": 3, "test": 1}
    for k, exp in raw.items():
        split = "test" if k.startswith("Seq05") else "train"
        np.testing.assert_array_equal(read_ids(tmp_path / "out" / "masks" / split / f"{k}.png"), exp)
    # Seeded ratio split when no lists are given.
    res2 = prepare("camvid", [base], tmp_path / "out2", val_ratio=0.25)
    assert res2.counts == {"train": 3, "val": 1}


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


def _savemat(path: Path, obj: dict) -> None:
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, obj)


def test_coco_stuff_10k_mat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    base = tmp_path / "cocostuff-10k"
    raw = {}
    for k in ["COCO_train2014_000000000077", "COCO_train2014_000000000078"]:
        write_jpg(base / "images" / f"{k}.jpg", rand_rgb(rng))
        s = rng.integers(0, 183, (16, 24)).astype(np.uint16)
        _savemat(base / "annotations" / f"{k}.mat", {"S": s, "names": np.array(["x"], dtype=object)})
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
            _savemat(sbd / "cls" / f"{k}.mat", {"GTcls": {"Segmentation": lab, "CategoriesPresent": np.array([1])}})
        labels[k] = lab
    # An SBD .mat for a VOC-labelled frame must lose to the VOC PNG (which has the borders).
    _savemat(sbd / "cls" / "2007_000032.mat", {"GTcls": {"Segmentation": np.zeros((16, 24), np.uint8)}})
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
