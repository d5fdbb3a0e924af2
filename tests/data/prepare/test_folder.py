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
    other = ["prepare", "folder", str(tmp_path / "dl"), "--classes", "x,y,z", "--out", str(tmp_path / "d")]
    rc, msg = cli_error(capsys, [*other, "--mask-suffix", "_gt"])  # a given suffix is the only one tried
    assert rc == 2 and "--mask-suffix" in msg
    assert cli_json(capsys, [*other, "--val-ratio", "0.3"])["images"] == {"train": 7, "val": 3}  # _mask found


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


def _pair(root: Path, images: str, masks: str, stem: str, rng: np.random.Generator, n: int = 3) -> np.ndarray:
    """One image and its id mask (ids 0..n-1) under ``root/images`` and ``root/masks``."""
    ids = rng.integers(0, n, (8, 12)).astype(np.uint8)
    write_png(root / images / f"{stem}.png", rand_rgb(rng, 8, 12))
    write_png(root / masks / f"{stem}.png", ids)
    return ids


def test_folder_split_first_layout_keeps_splits(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # <root>/<split>/{images,masks}; "validation" is written as "val" (the split presets read).
    rng = np.random.default_rng(4)
    want = {}
    for split, stems in (("train", ["a", "b", "c"]), ("validation", ["d", "e"]), ("test", ["f"])):
        for k in stems:
            want[(split, k)] = _pair(tmp_path / "ds" / split, "images", "masks", k, rng)
    res = cli_json(capsys, ["prepare", "folder", str(tmp_path / "ds"), "--classes", "x,y,z", "-o", str(tmp_path / "o")])
    assert res["images"] == {"test": 1, "train": 3, "val": 2}
    for (split, k), ids in want.items():
        out_split = "val" if split == "validation" else split
        np.testing.assert_array_equal(read_ids(tmp_path / "o" / "masks" / out_split / f"{k}.png"), ids)
        assert (tmp_path / "o" / "images" / out_split / f"{k}.png").is_file()
    assert read_dataset_info(tmp_path / "o").extra["prepare"]["splits"] == "folders"


def test_folder_mmseg_img_dir_ann_dir_layout(tmp_path: Path) -> None:
    # <root>/img_dir/<split> + <root>/ann_dir/<split>, the same stem in two splits, any label folder name via --masks.
    rng = np.random.default_rng(5)
    want = {}
    for split in ("train", "val"):
        for k in ("0001", "0002") if split == "train" else ("0001",):
            want[(split, k)] = _pair(tmp_path / "ds", f"img_dir/{split}", f"ann_dir/{split}", k, rng)
    res = prepare("folder", [tmp_path / "ds"], tmp_path / "o", classes="x,y,z")
    assert res.counts == {"train": 2, "val": 1}
    for (split, k), ids in want.items():
        np.testing.assert_array_equal(read_ids(tmp_path / "o" / "masks" / split / f"{k}.png"), ids)
    # The same layout under other folder names, given by name.
    (tmp_path / "ds").rename(tmp_path / "ds2")
    (tmp_path / "ds2" / "img_dir").rename(tmp_path / "ds2" / "photos")
    (tmp_path / "ds2" / "ann_dir").rename(tmp_path / "ds2" / "gtFine")
    res = prepare(
        "folder", [tmp_path / "ds2"], tmp_path / "o2", classes="x,y,z", images_dir="photos", masks_dir="gtFine"
    )
    assert res.counts == {"train": 2, "val": 1}
    # Two folders, each split the same way, work too.
    res = prepare(
        "folder", [tmp_path / "ds2" / "photos", tmp_path / "ds2" / "gtFine"], tmp_path / "o3", classes="x,y,z"
    )
    assert res.counts == {"train": 2, "val": 1}
    np.testing.assert_array_equal(read_ids(tmp_path / "o3" / "masks" / "val" / "0001.png"), want[("val", "0001")])


def test_folder_split_layout_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(6)
    for split in ("train", "val"):
        _pair(tmp_path / "ds", f"images/{split}", f"masks/{split}", "s0", rng)
    lists = tmp_path / "train.txt"
    lists.write_text("s0\n")
    out = ["-o", str(tmp_path / "o"), "--classes", "x,y,z"]
    rc, msg = cli_error(capsys, ["prepare", "folder", str(tmp_path / "ds"), *out, "--split-lists", f"train={lists}"])
    assert rc == 2 and "already split" in msg and "--split-lists" in msg
    # A split folder of images without its masks folder is named.
    write_png(tmp_path / "ds" / "images" / "test" / "s1.png", rand_rgb(rng, 8, 12))
    rc, msg = cli_error(capsys, ["prepare", "folder", str(tmp_path / "ds"), *out])
    assert rc == 2 and "images/test" in msg and "masks/test" in msg


def test_folder_two_label_folders_is_an_error_listing_both(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # "mask" is a label-folder name, "segmentations" holds files named like the images: either could be the labels.
    rng = np.random.default_rng(7)
    good = {}
    for k in ("a", "b"):
        good[k] = _pair(tmp_path / "ds", "images", "segmentations", k, rng)
        write_png(tmp_path / "ds" / "mask" / f"{k}.png", np.full((8, 12), 255, np.uint8))
    base = ["prepare", "folder", str(tmp_path / "ds"), "--classes", "x,y,z", "--val-ratio", "0", "-o"]
    rc, msg = cli_error(capsys, [*base, str(tmp_path / "o")])
    assert rc == 2 and "more than one folder could hold the labels" in msg
    assert "mask" in msg and "segmentations" in msg and "--masks" in msg
    assert not (tmp_path / "o").exists()
    res = cli_json(capsys, [*base, str(tmp_path / "o2"), "--masks", "segmentations"])
    assert res["images"] == {"train": 2}
    for k, ids in good.items():
        np.testing.assert_array_equal(read_ids(tmp_path / "o2" / "masks" / "train" / f"{k}.png"), ids)
    # With the "mask" folder gone, the one folder holding files named like the images is taken, whatever its name.
    import shutil

    shutil.rmtree(tmp_path / "ds" / "mask")
    res = cli_json(capsys, [*base, str(tmp_path / "o3")])
    assert res["images"] == {"train": 2}


def test_folder_roi_sets_exactly_the_outside_pixels_to_ignore(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(8)
    want = {}
    for split in ("train", "val"):
        for k in ("p", "q"):
            ids = _pair(tmp_path / "ds" / split, "images", "masks", f"{split}{k}", rng)
            ids[0, 0] = 9  # void in the source stays void
            write_png(tmp_path / "ds" / split / "masks" / f"{split}{k}.png", ids)
            region = rng.integers(0, 2, ids.shape).astype(np.uint8) * 255
            # Region masks live in a folder of their own, here inside the dataset root (not taken for labels).
            write_png(tmp_path / "ds" / "fov" / split / f"{split}{k}_fov.png", region)
            want[(split, f"{split}{k}")] = np.where(region > 0, ids, 9)
    args = ["prepare", "folder", str(tmp_path / "ds"), "--classes", "x,y,z", "--ignore-index", "9"]
    roi = ["--roi", str(tmp_path / "ds" / "fov"), "--roi-suffix", "_fov"]
    res = cli_json(capsys, [*args, *roi, "-o", str(tmp_path / "o")])
    assert res["images"] == {"train": 2, "val": 2}
    for (split, k), exp in want.items():
        np.testing.assert_array_equal(read_ids(tmp_path / "o" / "masks" / split / f"{k}.png"), exp)
    info = read_dataset_info(tmp_path / "o")
    assert "--roi" in info.label_map and info.extra["prepare"]["roi_suffix"] == "_fov"
    # A subfolder name of the source works as --roi too.
    res = cli_json(capsys, [*args, "--roi", "fov", "--roi-suffix", "_fov", "-o", str(tmp_path / "o2")])
    np.testing.assert_array_equal(read_ids(tmp_path / "o2" / "masks" / "val" / "valp.png"), want[("val", "valp")])
    # A sample without its region mask, a region of another size, a missing folder: errors naming the file.
    (tmp_path / "ds" / "fov" / "val" / "valq_fov.png").unlink()
    rc, msg = cli_error(capsys, [*args, "--roi", "fov", "--roi-suffix", "_fov", "-o", str(tmp_path / "o3")])
    assert rc == 2 and "no region mask for 'valq'" in msg
    write_png(tmp_path / "ds" / "fov" / "val" / "valq_fov.png", np.zeros((4, 4), np.uint8))
    rc, msg = cli_error(capsys, [*args, "--roi", "fov", "--roi-suffix", "_fov", "-o", str(tmp_path / "o4")])
    assert rc == 2 and "valq_fov.png: region mask is 4x4" in msg
    rc, msg = cli_error(capsys, [*args, "--roi", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o5")])
    assert rc == 2 and "--roi folder not found" in msg


def test_folder_roi_name_is_looked_up_inside_each_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Reported: a dataset with per-split region folders (DRIVE: training/mask, test/mask) could not be prepared
    with its regions (--roi took one folder). A name is now looked up beside each split's images, like --masks;
    "mask" is not taken for the labels folder (it is in MASK_DIRS), and each split pairs with its own regions."""
    rng = np.random.default_rng(9)
    want = {}
    for split, out in (("training", "train"), ("test", "test")):
        for k in ("01", "02"):  # the same stems in both splits: only the split's own region may pair
            ids = _pair(tmp_path / "ds" / split, "images", "1st_manual", k, rng)
            region = rng.integers(0, 2, ids.shape).astype(np.uint8) * 255
            write_png(tmp_path / "ds" / split / "mask" / f"{k}.png", region)
            want[(out, k)] = np.where(region > 0, ids, 9)
    args = ["prepare", "folder", str(tmp_path / "ds"), "--masks", "1st_manual", "--classes", "x,y,z"]
    res = cli_json(capsys, [*args, "--ignore-index", "9", "--roi", "mask", "-o", str(tmp_path / "o")])
    assert res["images"] == {"train": 2, "test": 2}
    for (split, k), exp in want.items():
        np.testing.assert_array_equal(read_ids(tmp_path / "o" / "masks" / split / f"{k}.png"), exp)
    assert read_dataset_info(tmp_path / "o").extra["prepare"]["roi"] == "mask"
    import shutil

    shutil.rmtree(tmp_path / "ds" / "test" / "mask")  # a split without its region folder is named
    rc, msg = cli_error(capsys, [*args, "--roi", "mask", "-o", str(tmp_path / "o2")])
    assert rc == 2 and "no --roi folder 'mask' beside the images folder test/images" in msg


def test_ignored_outside_region_leaves_the_metric_unchanged() -> None:
    """What --roi buys: predictions outside the region (now ignore) cannot move any metric."""
    import torch

    from segcli.metrics import ConfusionMatrix

    rng = np.random.default_rng(9)
    gt = torch.from_numpy(rng.integers(0, 3, (2, 16, 16)))
    region = torch.from_numpy(rng.integers(0, 2, (2, 16, 16)).astype(bool))
    masked = torch.where(region, gt, torch.tensor(255))
    right_inside = torch.where(region, gt, (gt + 1) % 3)  # wrong everywhere outside the region
    perfect = ConfusionMatrix(3, 255)
    perfect.update(right_inside, masked)
    assert perfect.compute()["mIoU"] == 1.0
    assert int(perfect.mat.sum()) == int(region.sum())
    unmasked = ConfusionMatrix(3, 255)
    unmasked.update(right_inside, gt)
    assert unmasked.compute()["mIoU"] < 0.6


def _binary_pairs(root: Path, suffix: str, n: int = 6) -> None:
    """``root/images/im<i>.png`` and ``root/masks/im<i><suffix>.png``, 0/255 masks with a square of 255."""
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(root / "images" / f"im{i}.png", rand_rgb(rng, 16, 16))
        mask = np.zeros((16, 16), np.uint8)
        mask[4:12, 4:12] = 255
        write_png(root / "masks" / f"im{i}{suffix}.png", mask)


def test_folder_0_255_masks_read_as_ids_fail_and_the_fix_runs_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Reported: seg prepare folder ... --mask-suffix _mask --classes bg,obj on 0/255 masks exited 0 with the
    foreground turned into the ignore value. The closing checks of seg check now fail it naming --binary, leave
    nothing behind (no progress file), and the corrected command needs no --overwrite."""
    _binary_pairs(tmp_path / "src", "_mask")
    out = tmp_path / "out"
    argv = ["prepare", "folder", str(tmp_path / "src"), "--out", str(out), "--classes", "bg,obj"]
    rc, msg = cli_error(capsys, [*argv, "--mask-suffix", "_mask"])
    assert rc == 2 and "masks are 0/255 binary" in msg and "fix: seg prepare folder --binary" in msg
    assert "the dataset was removed" in msg and not out.exists()
    res = cli_json(capsys, [*argv, "--binary"])  # _mask is found without --mask-suffix
    assert res["images"] == {"train": 5, "val": 1} and res["pixel_share"]["obj"] == 0.25


@pytest.mark.parametrize("suffix", ["_mask", "-mask", "_label"])
def test_folder_tries_the_common_mask_suffixes(tmp_path: Path, suffix: str) -> None:
    _binary_pairs(tmp_path / "src", suffix, n=3)
    res = prepare("folder", [tmp_path / "src"], tmp_path / "out", binary=True, val_ratio=0.0)
    assert res.counts == {"train": 3}
    assert read_dataset_info(tmp_path / "out").extra["prepare"]["mask_suffix"] == suffix
    assert sorted(p.name for p in (tmp_path / "out" / "masks" / "train").iterdir()) == ["im0.png", "im1.png", "im2.png"]
