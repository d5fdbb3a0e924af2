"""Split helpers of the converters: list arguments, split list files, seeded random splits, pairing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from segcli.data.prepare.sources import open_sources
from segcli.data.prepare.splits import (
    assign_splits,
    find_pairs,
    parse_list_arg,
    parse_split_lists,
    read_id_list,
    split_options,
    split_samples,
)
from segcli.errors import DataError


def test_parse_list_arg_drops_empty_items_and_keeps_lists() -> None:
    assert parse_list_arg("a,b, c,,") == ["a", "b", "c"]
    assert parse_list_arg(None) == [] and parse_list_arg("") == []
    assert parse_list_arg(("x", "y")) == ["x", "y"]


def test_parse_split_lists_and_its_error() -> None:
    assert parse_split_lists("train=a.txt, val = b.txt,") == {"train": Path("a.txt"), "val": Path("b.txt")}
    assert parse_split_lists({"val": "v.txt"}) == {"val": Path("v.txt")}
    assert parse_split_lists(None) == {}
    for bad in ("train", "=a.txt", "train="):
        with pytest.raises(DataError, match=rf"--split-lists: '{bad}' must look like split=file.txt"):
            parse_split_lists(bad)


def test_seeded_random_split_is_reproducible_and_sized_by_the_ratio() -> None:
    keys = [f"k{i:02d}" for i in range(20)]
    split_of, settings = assign_splits(keys, None, 0.25, seed=3)
    assert settings == {"val_ratio": 0.25, "seed": 3}
    assert set(split_of) == set(keys) and sum(v == "val" for v in split_of.values()) == 5
    assert assign_splits(list(reversed(keys)), None, 0.25, seed=3)[0] == split_of  # input order does not matter
    others = [assign_splits(keys, None, 0.25, seed=s)[0] for s in range(4, 8)]
    assert any(o != split_of for o in others)
    assert set(assign_splits(keys, None, 0.0, seed=0)[0].values()) == {"train"}
    assert list(assign_splits(["only"], None, 0.5, seed=0)[0].values()) == ["train"]  # one sample: no val
    assert sum(v == "val" for v in assign_splits(keys[:3], None, 0.01, seed=0)[0].values()) == 1  # at least one
    for bad in (1.0, -0.1):
        with pytest.raises(DataError, match=f"--val-ratio {bad} must be in"):
            assign_splits(keys, None, bad, seed=0)


def test_split_lists_assign_listed_keys_and_name_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("img/a.png\nimg/b.png\n")
    (tmp_path / "val.txt").write_text("c\n")
    lists = f"train={tmp_path / 'train.txt'},val={tmp_path / 'val.txt'}"
    split_of, settings = assign_splits(["a", "b", "c", "d"], lists, 0.5, seed=0)
    assert split_of == {"a": "train", "b": "train", "c": "val"}  # d is in no list: left out
    assert settings == {"split_lists": {"train": str(tmp_path / "train.txt"), "val": str(tmp_path / "val.txt")}}
    (tmp_path / "val.txt").write_text("zzz\n")
    with pytest.raises(DataError, match=r"val\.txt: 'zzz' matches no sample"):
        assign_splits(["a", "b", "c"], lists, 0.5, seed=0)
    with pytest.raises(DataError, match=r"nowhere\.txt: split list for 'test' not found"):
        assign_splits(["a"], {"test": tmp_path / "nowhere.txt"}, 0.5, seed=0)


def test_split_options_declare_lists_ratio_and_seed() -> None:
    opts = {o.name: o for o in split_options(0.2)}
    assert list(opts) == ["split_lists", "val_ratio", "seed"]
    assert opts["val_ratio"].default == 0.2 and opts["seed"].default == 0 and opts["split_lists"].default is None


def _tree(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    return root


IMAGE_RX, LABEL_RX = re.compile(r"img/(\w+)/(\w+)\.jpg$"), re.compile(r"lab/(\w+)/(\w+)\.png$")


def _pairs(src: Path, out: Path) -> list:
    srcs = open_sources([src], out, "img/ and lab/")
    hint = lambda key: f"image img/{key[0]}/{key[1]}.jpg"  # noqa: E731
    return find_pairs(srcs, (IMAGE_RX,), (LABEL_RX,), lambda m: (m[1], m[2]), "labels", hint, "img/ and lab/")


def test_find_pairs_pairs_by_split_and_stem_and_names_a_missing_image(tmp_path: Path) -> None:
    labels = ["lab/train/a.png", "lab/train/b.png", "lab/val/c.png"]
    src = _tree(tmp_path / "src", ["img/train/a.jpg", "img/train/b.jpg", "img/val/c.jpg", *labels])
    assert [(s.split, s.stem, s.image.name, s.label.name) for s in _pairs(src, tmp_path / "out")] == [
        ("train", "a", "img/train/a.jpg", "lab/train/a.png"),
        ("train", "b", "img/train/b.jpg", "lab/train/b.png"),
        ("val", "c", "img/val/c.jpg", "lab/val/c.png"),
    ]
    (src / "img/train/b.jpg").unlink()
    (src / "img/val/c.jpg").unlink()
    with pytest.raises(DataError, match=r"no image img/train/b\.jpg \(2 missing\) found; expected img/ and lab/"):
        _pairs(src, tmp_path / "out")
    for name in labels:
        (src / name).unlink()
    with pytest.raises(DataError, match="no labels found"):
        _pairs(src, tmp_path / "out")


def test_split_samples_splits_and_orders(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", [f"{k}.{ext}" for k in ("x1", "x2", "x3") for ext in ("jpg", "png")])
    srcs = open_sources([src], tmp_path / "out", "pairs")
    images = {m[1]: mem for m, mem in srcs.find(r"(\w+)\.jpg$")}
    labels = {m[1]: mem for m, mem in srcs.find(r"(\w+)\.png$")}
    opts = {"split_lists": None, "val_ratio": 0.34, "seed": 1}
    samples, settings = split_samples(labels, images, opts, key_of=lambda s: s, order=lambda k: -int(k[1]))
    assert [s.stem for s in samples] == ["x3", "x2", "x1"] and settings == {"val_ratio": 0.34, "seed": 1}
    assert sorted(s.split for s in samples) == ["train", "train", "val"]
    assert all(s.image.name == f"{s.stem}.jpg" and s.label.name == f"{s.stem}.png" for s in samples)


def test_read_id_list_reads_the_named_split(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", ["lists/train.txt", "lists/val.txt"])
    (src / "lists/train.txt").write_text("a\nb\n")
    (src / "lists/val.txt").write_text("c\n")
    srcs = open_sources([src], tmp_path / "out", "lists")
    hits = srcs.find(r"lists/(\w+)\.txt$")
    assert read_id_list(srcs, hits, "train") == ["a", "b"] and read_id_list(srcs, hits, "val") == ["c"]
    assert read_id_list(srcs, hits, "test") == []
