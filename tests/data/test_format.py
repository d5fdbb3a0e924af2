"""The dataset format, its validator and mask reading."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segcli.data.datasets import TrainDataset
from segcli.data.format import make_info, read_dataset_info, validate_dataset, write_dataset_info
from segcli.data.io import read_mask, write_image, write_mask, write_palette_mask
from segcli.data.transforms import Compose
from segcli.errors import DataError


def make_dataset(root: Path, n: int = 3, size: int = 16, classes: int = 3) -> Path:
    write_dataset_info(root, make_info("toy", [f"c{i}" for i in range(classes)]))
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(n):
            write_image(root / "images" / split / f"{i}.png", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            write_mask(root / "masks" / split / f"{i}.png", rng.integers(0, classes, (size, size), dtype=np.uint8))
    return root


def test_valid_dataset_round_trips(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    info = validate_dataset(root, sample_masks=None)
    assert info.classes == ("c0", "c1", "c2") and info.ignore_index == 255
    assert len(info.palette) == 3 and info == read_dataset_info(root)


def test_missing_dataset_toml(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    (root / "dataset.toml").unlink()
    with pytest.raises(DataError, match=r"dataset.toml: missing; .* is not a segcli dataset"):
        validate_dataset(root)
    with pytest.raises(DataError, match="dataset folder not found"):
        validate_dataset(tmp_path / "nowhere")


def test_image_without_mask_and_mask_without_image(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    (root / "masks" / "train" / "1.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) have no mask, e.g. 1.png"):
        validate_dataset(root)
    root2 = make_dataset(tmp_path / "e")
    (root2 / "images" / "val" / "2.png").unlink()
    with pytest.raises(DataError, match=r"1 mask\(s\) have no image, e.g. 2"):
        validate_dataset(root2)


def test_unknown_split(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    with pytest.raises(DataError, match=r"split 'test' not found \(splits present: train, val\)"):
        validate_dataset(root, splits=["test"])


def test_out_of_range_values(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    write_mask(root / "masks" / "train" / "0.png", np.full((16, 16), 7, np.uint8))
    with pytest.raises(DataError, match=r"0.png: mask values \[7\] are not class ids 0..2 nor ignore_index 255"):
        validate_dataset(root, sample_masks=None)


def test_bad_dataset_toml(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    (root / "dataset.toml").write_text('classes = ["a", "a"]\n')
    with pytest.raises(DataError, match="duplicate names: a"):
        read_dataset_info(root)
    (root / "dataset.toml").write_text('classes = ["a", "b"]\nignore_index = 1\n')
    with pytest.raises(DataError, match=r"'ignore_index' = 1 must be an integer >= number of classes"):
        read_dataset_info(root)
    (root / "dataset.toml").write_text('classes = ["a", "b"]\npalette = [[0, 0, 0]]\n')
    with pytest.raises(DataError, match="'palette' must list one"):
        read_dataset_info(root)
    (root / "dataset.toml").write_text("classes = [\n")
    with pytest.raises(DataError, match="invalid TOML"):
        read_dataset_info(root)


def test_palette_png_reads_as_indices(tmp_path: Path) -> None:
    ids = np.array([[0, 1], [2, 255]], np.uint8)
    p = write_palette_mask(tmp_path / "m.png", ids, [[10, 20, 30], [200, 0, 0], [0, 200, 0]])
    with Image.open(p) as im:
        assert im.mode == "P"
    assert np.array_equal(read_mask(p), ids)


def test_rgb_mask_and_empty_file_are_clear_errors(tmp_path: Path) -> None:
    p = tmp_path / "rgb.png"
    cv2.imwrite(str(p), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"rgb.png: mask has 3 channels"):
        read_mask(p)
    e = tmp_path / "empty.png"
    e.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.png: mask file is empty \(0 bytes\)"):
        read_mask(e)


def test_size_mismatch_is_reported(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    write_mask(root / "masks" / "train" / "0.png", np.zeros((8, 8), np.uint8))
    ds = TrainDataset(root, "train", Compose([]))
    with pytest.raises(DataError, match=r"0.png: mask is 8x8 but its image 0.png is 16x16"):
        ds[0]


def test_shapes_dataset_is_valid_and_deterministic(shapes_root: Path, tmp_path: Path) -> None:
    info = validate_dataset(shapes_root, sample_masks=None)
    assert info.name == "shapes" and info.num_classes == 5
    from segcli.data.prepare.shapes import prepare_shapes

    again = prepare_shapes(tmp_path / "again", train=16, val=8, size=48, seed=1)
    for split in ("train", "val"):
        for a in sorted((shapes_root / "masks" / split).iterdir()):
            assert np.array_equal(read_mask(a), read_mask(again.root / "masks" / split / a.name))
    masks = [read_mask(p) for p in (shapes_root / "masks" / "train").iterdir()]
    values = set(np.unique(np.concatenate([m.ravel() for m in masks])).tolist())
    assert {0, 255} <= values and values <= {0, 1, 2, 3, 4, 255}
    assert prepare_shapes(again.root, train=16, val=8, size=48, seed=1).skipped


def test_shapes_refuses_foreign_folder(tmp_path: Path) -> None:
    from segcli.data.prepare.shapes import prepare_shapes

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not a segcli dataset"):
        prepare_shapes(tmp_path / "x", train=2, val=1, size=32)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    shutil.rmtree(tmp_path / "x")


def test_index_scans_once_and_feeds_every_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.data.format as fmt
    from segcli.data.datasets import EvalDataset
    from segcli.data.lint import quick_lint
    from segcli.data.stats import dataset_summary

    root = make_dataset(tmp_path / "d", n=4)
    listed: list[str] = []
    real_list = fmt.list_samples
    monkeypatch.setattr(fmt, "list_samples", lambda r, s: listed.append(s) or real_list(r, s))
    index = fmt.DatasetIndex.scan(root, ["train", "val"])
    assert listed == ["train", "val"] and index.names == ["train", "val"]
    assert [p.name for p, _ in index.pairs("val")] == ["0.png", "1.png", "2.png", "3.png"]

    def no_rescan(*_a: object, **_k: object) -> None:
        raise AssertionError("the dataset was scanned or dataset.toml parsed again")

    monkeypatch.setattr(fmt, "list_samples", no_rescan)
    monkeypatch.setattr(fmt, "read_dataset_info", no_rescan)
    monkeypatch.setattr(fmt, "list_splits", no_rescan)
    assert validate_dataset(index, splits=["train"], sample_masks=None).name == "toy"
    assert quick_lint(index, ["train", "val"], sample=2) == []
    assert len(TrainDataset(index, "train", Compose([]))) == 4 and len(EvalDataset(index, "val")) == 4
    summary = dataset_summary(index)
    assert summary["images"] == {"train": 4, "val": 4} and abs(sum(summary["pixel_share"].values()) - 1) < 1e-9
    with pytest.raises(DataError, match=r"split 'test' not found \(splits present: train, val\)"):
        TrainDataset(index, "test", Compose([]))


def test_quick_lint_of_an_index_reports_bad_masks(tmp_path: Path) -> None:
    from segcli.data.format import DatasetIndex
    from segcli.data.lint import quick_lint

    root = make_dataset(tmp_path / "d")
    write_mask(root / "masks" / "train" / "1.png", np.full((16, 16), 7, np.uint8))
    with pytest.raises(DataError, match=r"mask values \[7\] are not class ids 0..2"):
        quick_lint(DatasetIndex.scan(root), sample=None)  # type: ignore[arg-type]
    (root / "images" / "val" / "0.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        quick_lint(DatasetIndex.scan(root, ["val"]), ["val"])
