"""`seg prepare camvid`: the SegNet layout and the original colour labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import cli_json, rand_rgb, read_ids, write_png, zip_dir

from segcli.data.prepare import prepare


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
    # The three published files as `seg prepare camvid` fetches them: the labels zip holds no folder,
    # label_colors.txt comes inside a folder of its own.
    import zipfile

    with zipfile.ZipFile(tmp_path / "LabeledApproved_full.zip", "w") as zf:
        for p in sorted((base / "LabeledApproved_full").iterdir()):
            zf.write(p, p.name)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "label_colors.txt").write_text((base / "label_colors.txt").read_text())
    images = zip_dir(base / "701_StillsRaw_full", tmp_path / "701_StillsRaw_full.zip")
    srcs = [images, tmp_path / "LabeledApproved_full.zip", tmp_path / "files"]
    res3 = prepare("camvid", srcs, tmp_path / "out3", split_lists=lists)
    assert res3.counts == {"train": 3, "test": 1}
    np.testing.assert_array_equal(
        read_ids(tmp_path / "out3" / "masks" / "test" / "Seq05VD_f00000.png"), raw["Seq05VD_f00000"]
    )
