"""`seg prepare voc`, `loveda`, `lip`, `mapillary`."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    cli_error,
    cli_json,
    fixture_dir,
    rand_rgb,
    read_ids,
    write_jpg,
    write_palette_png,
    write_png,
    zip_dir,
)

from segcli.data.format import default_palette, read_dataset_info
from segcli.data.prepare import prepare
from segcli.errors import DataError


def make_voc(base: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """VOCdevkit/VOC2012 with 3 segmentation ids (2 train, 1 val) and an extra detection-only image."""
    voc = base / "VOCdevkit" / "VOC2012"
    ids = {"2007_000032": "train", "2007_000039": "train", "2007_000033": "val"}
    # A palette whose colours differ from the VOC map: the index must win, not the colour.
    palette = [[(7 * i) % 256, (13 * i) % 256, (29 * i) % 256] for i in range(256)]
    raw = {}
    for k in ids:
        write_jpg(voc / "JPEGImages" / f"{k}.jpg", rand_rgb(rng))
        lab = rng.integers(0, 21, (16, 24))
        lab[0, :] = 255  # object border
        write_palette_png(voc / "SegmentationClass" / f"{k}.png", lab, palette)
        raw[k] = lab.astype(np.uint8)
    write_jpg(voc / "JPEGImages" / "2008_000001.jpg", rand_rgb(rng))
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000032\n2007_000039\n")
    (sets / "val.txt").write_text("2007_000033\n")
    (sets / "trainval.txt").write_text("2007_000032\n2007_000039\n2007_000033\n")
    return raw


def test_voc_tar_palette_indices(tmp_path: Path) -> None:
    raw = make_voc(tmp_path / "dl", np.random.default_rng(0))
    tar = tmp_path / "VOCtrainval_11-May-2012.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(tmp_path / "dl" / "VOCdevkit", arcname="VOCdevkit")
    res = prepare("voc", [tar], tmp_path / "out")
    assert res.counts == {"train": 2, "val": 1}
    for k, lab in raw.items():
        split = "val" if k == "2007_000033" else "train"
        np.testing.assert_array_equal(read_ids(tmp_path / "out" / "masks" / split / f"{k}.png"), lab)
    info = read_dataset_info(tmp_path / "out")
    assert info.classes[15] == "person" and info.palette[15] == (192, 128, 128)
    assert [list(c) for c in info.palette] == default_palette(21)
    assert not (tmp_path / "out" / ".prepare-tmp").exists()


def test_voc_missing_list_names_download(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_voc(tmp_path / "dl", np.random.default_rng(1))
    (tmp_path / "dl" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").write_text("2099_1\n")
    rc, msg = cli_error(capsys, ["prepare", "voc", str(tmp_path / "dl"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "2099_1" in msg and "VOCtrainval_11-May-2012.tar" in msg


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


def _mapillary_config(path: Path, colors: list[list[int]], n: int) -> Path:
    labels = [
        {"name": f"group--label{i}", "readable": f"Label {i}", "color": colors[i], "evaluate": True}
        for i in range(n - 1)
    ]
    labels.append({"name": "void--unlabeled", "readable": "Unlabeled", "color": [0, 0, 0], "evaluate": False})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"labels": labels}))
    return path


@pytest.mark.parametrize("version,n", [("1.2", 66), ("2.0", 124)])
def test_mapillary_real_palette_and_rgb_labels(tmp_path: Path, version: str, n: int) -> None:
    from PIL import Image

    src = fixture_dir("mmseg", "pseudo_mapillary_dataset")
    label = src / f"v{version}" / "__CRyFzoDOXn6unQ6a3DnQ.png"
    with Image.open(label) as im:
        pal = im.getpalette()
        raw = np.asarray(im).copy()
        rgb = np.asarray(im.convert("RGB")).copy()
    # The label PNG's palette holds the config colours; unused entries get distinct colours.
    colors = [pal[3 * i : 3 * i + 3] for i in range(n - 1)]
    seen = {tuple(c) for i, c in enumerate(colors) if i in set(np.unique(raw).tolist())}
    for i, c in enumerate(colors):
        if i not in set(np.unique(raw).tolist()) and (tuple(c) in seen or c == [0, 0, 0]):
            colors[i] = [i, 255 - i, 7]
        seen.add(tuple(colors[i]))
    cfg = _mapillary_config(tmp_path / "cfg" / f"config_v{version}.json", colors, n)
    res = prepare("mapillary", [src, cfg.parent], tmp_path / "out", version=version)
    assert res.counts == {"train": 1}
    got = read_ids(tmp_path / "out" / "masks" / "train" / label.name)
    np.testing.assert_array_equal(got, raw)  # all used labels are evaluated and come first: ids unchanged
    info = read_dataset_info(tmp_path / "out")
    assert info.num_classes == n - 1 and "Unlabeled" not in info.classes
    # The same label saved as RGB colours maps back through the config colours.
    rgb_src = tmp_path / "rgb"
    write_jpg(rgb_src / "training" / "images" / "x.jpg", np.zeros((*raw.shape, 3), np.uint8))
    write_png(rgb_src / "training" / f"v{version}" / "labels" / "x.png", rgb)
    prepare("mapillary", [rgb_src, cfg.parent], tmp_path / "out_rgb", version=version)
    np.testing.assert_array_equal(read_ids(tmp_path / "out_rgb" / "masks" / "train" / "x.png"), raw)


def test_mapillary_unlabeled_and_missing_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    colors = [[10 * i, 5, 9] for i in range(5)]
    _mapillary_config(tmp_path / "dl" / "config_v1.2.json", colors, 6)
    ids = rng.integers(0, 6, (16, 24))
    write_jpg(tmp_path / "dl" / "validation" / "images" / "a.jpg", rand_rgb(rng))
    write_palette_png(tmp_path / "dl" / "validation" / "v1.2" / "labels" / "a.png", ids, colors + [[0, 0, 0]])
    prepare("mapillary", [tmp_path / "dl"], tmp_path / "out")
    got = read_ids(tmp_path / "out" / "masks" / "val" / "a.png")
    np.testing.assert_array_equal(got, np.where(ids == 5, 255, ids))
    (tmp_path / "dl" / "config_v1.2.json").unlink()
    with pytest.raises(DataError, match="config_v1.2.json.*mapillary.com"):
        prepare("mapillary", [tmp_path / "dl"], tmp_path / "out2")
