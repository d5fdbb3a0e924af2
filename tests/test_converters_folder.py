"""`seg prepare folder`: binary, palette, colour-table masks; split lists and seeded splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    cli_error,
    cli_json,
    fixture_dir,
    rand_rgb,
    read_ids,
    write_palette_png,
    write_png,
)

from segcli.data.format import read_dataset_info
from segcli.data.prepare import prepare
from segcli.errors import DataError


def test_folder_membrane_binary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = fixture_dir("membrane")
    # One folder holding image/ and label/: the subfolders are found by name.
    res = cli_json(capsys, ["prepare", "folder", str(src), "--binary", "--out", str(tmp_path / "m"), "--link"])
    assert res["classes"] == ["background", "foreground"]
    assert res["images"] == {"train": 24, "val": 6}
    assert 0.75 < res["pixel_share"]["foreground"] < 0.81
    for p in (tmp_path / "m" / "masks").rglob("*.png"):
        assert set(np.unique(read_ids(p)).tolist()) <= {0, 1}
    assert res["linked"] == 30


def test_folder_palette_ids_and_split_lists(tmp_path: Path) -> None:
    src = fixture_dir("mmseg", "pseudo_dataset")
    out = tmp_path / "p"
    raw = {p.stem[: -len("_gt")]: read_ids(p) for p in (src / "gts").glob("*.png")}
    top = max(int(r[r != 255].max()) for r in raw.values())
    classes = [f"c{i}" for i in range(top + 1)]
    res = prepare(
        "folder",
        [src],
        out,
        images_dir="imgs",
        masks_dir="gts",
        image_suffix="_img",
        mask_suffix="_gt",
        classes=classes,
        split_lists={"train": src / "splits" / "train.txt", "val": src / "splits" / "val.txt"},
    )
    train_ids = (src / "splits" / "train.txt").read_text().split()
    val_ids = (src / "splits" / "val.txt").read_text().split()
    assert res.counts == {"train": len(train_ids), "val": len(val_ids)}
    for split, ids in (("train", train_ids), ("val", val_ids)):
        for k in ids:
            # The palette index is the class, not the colour.
            np.testing.assert_array_equal(read_ids(out / "masks" / split / f"{k}.png"), raw[k])
            assert (out / "images" / split / f"{k}.jpg").read_bytes() == (src / "imgs" / f"{k}_img.jpg").read_bytes()


def test_folder_colors_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    colors = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (255, 255, 255)]
    table = tmp_path / "colors.txt"
    table.write_text("# r,g,b,name\n0,0,0,background\n128 0 0 building\n0, 128, 0, tree  # green\n255,255,255,ignore\n")
    expected = {}
    for k in range(3):
        idx = rng.integers(0, 4, (16, 16))
        write_png(tmp_path / "dl" / "images" / f"t{k}.png", rand_rgb(rng, 16, 16))
        write_png(tmp_path / "dl" / "masks" / f"t{k}.png", np.array(colors, np.uint8)[idx])
        expected[f"t{k}"] = np.where(idx == 3, 255, idx).astype(np.uint8)
    res = prepare("folder", [tmp_path / "dl"], tmp_path / "out", colors=table, val_ratio=0.0)
    assert res.counts == {"train": 3}
    assert read_dataset_info(tmp_path / "out").classes == ("background", "building", "tree")
    for k, exp in expected.items():
        np.testing.assert_array_equal(read_ids(tmp_path / "out" / "masks" / "train" / f"{k}.png"), exp)
    # A colour missing from the table is named in the error.
    write_png(tmp_path / "dl" / "masks" / "t0.png", np.full((16, 16, 3), 7, np.uint8))
    with pytest.raises(DataError, match=r"t0.png: colour \(7, 7, 7\)"):
        prepare("folder", [tmp_path / "dl"], tmp_path / "out3", colors=table, val_ratio=0.0)


def test_folder_seeded_split_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(3)
    for k in range(10):
        write_png(tmp_path / "dl" / "img" / f"{k}.png", rand_rgb(rng, 8, 8))
        write_palette_png(tmp_path / "dl" / "label" / f"{k}_mask.png", rng.integers(0, 3, (8, 8)), [[0, 0, 0]] * 3)
    a = prepare(
        "folder", [tmp_path / "dl"], tmp_path / "a", mask_suffix="_mask", classes=["x", "y", "z"], val_ratio=0.3
    )
    # Two folders (images, masks) give the same seeded split.
    b = prepare(
        "folder",
        [tmp_path / "dl" / "img", tmp_path / "dl" / "label"],
        tmp_path / "b",
        mask_suffix="_mask",
        classes=["x", "y", "z"],
        val_ratio=0.3,
    )
    assert a.counts == b.counts == {"train": 7, "val": 3}
    assert sorted(p.name for p in (tmp_path / "a/images/val").iterdir()) == sorted(
        p.name for p in (tmp_path / "b/images/val").iterdir()
    )
    base = ["prepare", "folder", str(tmp_path / "dl"), "--mask-suffix", "_mask", "--out", str(tmp_path / "c")]
    rc, msg = cli_error(capsys, base)
    assert rc == 2 and "--classes" in msg
    rc, msg = cli_error(capsys, [*base, "--classes", "x,y"])
    assert rc == 2 and "mask values [2]" in msg and "_mask.png" in msg
    rc, msg = cli_error(
        capsys, ["prepare", "folder", str(tmp_path / "dl"), "--classes", "x,y,z", "--out", str(tmp_path / "d")]
    )
    assert rc == 2 and "--mask-suffix" in msg


def test_folder_empty_isaid_files_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = fixture_dir("mmseg", "pseudo_isaid_dataset")
    rc, msg = cli_error(
        capsys,
        [
            "prepare",
            "folder",
            str(src),
            "--mask-suffix",
            "_instance_color_RGB",
            "--binary",
            "--out",
            str(tmp_path / "i"),
        ],
    )
    assert rc == 2 and "empty (0 bytes)" in msg and "P0000_0_896_" in msg and ".png" in msg
