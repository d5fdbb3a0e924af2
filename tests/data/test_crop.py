"""`seg crop-by-mask`: known boxes with margin, square padding, resize, skipped images, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_helpers import H, W, coded_image, make_ds, rect_mask

from segcli.cli.app import run
from segcli.data.crop import CropOptions, crop_box, crop_by_mask
from segcli.data.format import read_dataset_info, validate_dataset
from segcli.data.io import read_image, read_mask
from segcli.data.lint import lint_dataset
from segcli.errors import DataError, UserError


@pytest.mark.parametrize(
    "margin, square, box",
    [
        (0.0, False, (20, 10, 40, 20)),  # tight box of rows 10-19, columns 20-39
        (0.1, False, (18, 9, 42, 21)),  # round(0.1 * 20) = 2 columns, round(0.1 * 10) = 1 row each side
        (0.5, False, (10, 5, 50, 25)),
        (0.0, True, (20, 5, 40, 25)),  # short side grown to 20 around the centre
        (2.0, False, (0, 0, 60, 40)),  # clipped to the image
    ],
)
def test_crop_box_known_boxes(margin, square, box):
    assert crop_box(rect_mask(10, 20, 20, 40), [1], margin, square) == box


def test_crop_box_none_without_the_classes():
    assert crop_box(rect_mask(10, 20, 20, 40, cls=2), [1], 0.1, False) is None
    assert crop_box(rect_mask(10, 20, 20, 40, cls=2), [1, 2], 0.0, False) == (20, 10, 40, 20)


def test_crop_writes_exact_pixels_and_skips(tmp_path):
    src = make_ds(tmp_path / "src", {"a": rect_mask(10, 20, 20, 40), "none": rect_mask(5, 9, 5, 9, cls=2)})
    res = crop_by_mask(src, tmp_path / "out", CropOptions(classes=["thing"], margin=0.1))
    assert res.written == {"train": 1} and res.skipped == ["train/none"]
    assert res.boxes == {"train/a": (18, 9, 42, 21)}
    img = read_image(tmp_path / "out" / "images" / "train" / "a.png")
    mask = read_mask(tmp_path / "out" / "masks" / "train" / "a.png")
    np.testing.assert_array_equal(img, coded_image()[9:21, 18:42])
    np.testing.assert_array_equal(mask, rect_mask(10, 20, 20, 40)[9:21, 18:42])
    assert not (tmp_path / "out" / "images" / "train" / "none.png").exists()
    info = read_dataset_info(tmp_path / "out")
    assert info.classes == ("bg", "thing", "other")
    assert info.source.startswith("unit test; cropped by seg crop-by-mask") and "margin=0.1" in info.source
    validate_dataset(tmp_path / "out", sample_masks=None)
    assert [f.code for f in lint_dataset(tmp_path / "out")] == ["class-missing"]  # "other" is not in the crops


def test_square_pads_with_ignore_and_black(tmp_path):
    # Object in the top-left corner: the square box (-5..15 rows) sticks out of the image by 5 rows.
    src = make_ds(tmp_path / "src", {"a": rect_mask(0, 10, 0, 20)})
    res = crop_by_mask(src, tmp_path / "out", CropOptions(margin=0.0, square=True))
    assert res.boxes["train/a"] == (0, -5, 20, 15)
    img = read_image(tmp_path / "out" / "images" / "train" / "a.png")
    mask = read_mask(tmp_path / "out" / "masks" / "train" / "a.png")
    assert mask.shape == img.shape[:2] == (20, 20)
    assert (mask[:5] == 255).all() and (img[:5] == 0).all()
    assert (mask[5:15] == 1).all() and (mask[15:] == 0).all()
    np.testing.assert_array_equal(img[5:], coded_image()[0:15, 0:20])


def test_resize_square_and_long_side(tmp_path):
    src = make_ds(tmp_path / "src", {"a": rect_mask(10, 20, 20, 40)})
    crop_by_mask(src, tmp_path / "sq", CropOptions(margin=0.0, square=True, size=16))
    mask = read_mask(tmp_path / "sq" / "masks" / "train" / "a.png")
    assert mask.shape == (16, 16) and set(np.unique(mask).tolist()) == {0, 1}  # nearest: no blended ids
    assert read_image(tmp_path / "sq" / "images" / "train" / "a.png").shape == (16, 16, 3)
    crop_by_mask(src, tmp_path / "long", CropOptions(margin=0.0, size=40))  # 10x20 box, long side to 40
    assert read_mask(tmp_path / "long" / "masks" / "train" / "a.png").shape == (20, 40)


def test_split_with_only_skipped_images_is_left_out(tmp_path):
    src = make_ds(tmp_path / "src", {"a": rect_mask(10, 20, 20, 40)})
    make_ds(src, {"v": np.zeros((H, W), np.uint8)}, split="val")
    res = crop_by_mask(src, tmp_path / "out")
    assert res.written == {"train": 1, "val": 0} and res.skipped == ["val/v"]
    assert not (tmp_path / "out" / "images" / "val").exists()
    validate_dataset(tmp_path / "out")


def test_refusals(tmp_path):
    src = make_ds(tmp_path / "src", {"a": rect_mask(10, 20, 20, 40)})
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        crop_by_mask(src, busy)
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(UserError, match="did you mean 'thing'"):
        crop_by_mask(src, tmp_path / "o1", CropOptions(classes=["thin"]))
    with pytest.raises(DataError, match="no image contains"):
        crop_by_mask(src, tmp_path / "o2", CropOptions(classes=["other"]))
    assert not (tmp_path / "o2").exists()
    with pytest.raises(UserError, match="--margin"):
        crop_by_mask(src, tmp_path / "o3", CropOptions(margin=-1))


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_interrupted_crop_is_finished_by_a_rerun(tmp_path, monkeypatch, capsys):
    import segcli.data.crop as crop_mod

    masks = {f"s{i}": rect_mask(2 * i, 2 * i + 10, 3 * i, 3 * i + 20) for i in range(6)}
    masks["empty"] = np.zeros((H, W), np.uint8)  # skipped
    src = make_ds(tmp_path / "src", masks)
    make_ds(src, {"v": rect_mask(5, 30, 5, 50)}, split="val")
    args = {"classes": ["thing"], "margin": 0.2, "square": True, "size": 24}
    full = crop_by_mask(src, tmp_path / "full", CropOptions(**args))

    out = tmp_path / "out"
    real_write_mask, calls = crop_mod.write_mask, {"n": 0}

    def failing_write_mask(path, mask):
        calls["n"] += 1
        if calls["n"] == 4:  # three crops written, then the disk "fails"
            raise OSError(28, "No space left on device")
        return real_write_mask(path, mask)

    monkeypatch.setattr(crop_mod, "write_mask", failing_write_mask)
    with pytest.raises(OSError, match="No space"):
        crop_by_mask(src, out, CropOptions(**args))
    assert (out / crop_mod.MARKER).is_file() and not (out / "dataset.toml").exists()
    assert len(list((out / "masks" / "train").iterdir())) == 3

    # other settings are refused, naming the setting; nothing is changed
    before = _tree(out)
    with pytest.raises(UserError, match=r"unfinished crop with margin=0\.2, not 0\.3.*same settings"):
        crop_by_mask(src, out, CropOptions(**{**args, "margin": 0.3}))
    assert _tree(out) == before

    monkeypatch.setattr(crop_mod, "write_mask", real_write_mask)
    # the CLI re-run with the same settings finishes it
    argv = ["crop-by-mask", str(src), "--out", str(out), "--classes", "thing", "--margin", "0.2", "--square"]
    assert run([*argv, "--size", "24", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["boxes"] == full.to_dict()["boxes"] and doc["written"] == full.written
    assert doc["skipped"] == full.skipped
    assert not (out / crop_mod.MARKER).exists()
    assert _tree(out) == _tree(tmp_path / "full")  # every byte the uninterrupted crop wrote
    validate_dataset(out)
    # finished: a third run is refused (nothing is overwritten)
    assert run([*argv, "--size", "24"]) == 2


def test_a_finished_or_foreign_folder_is_still_refused(tmp_path):
    src = make_ds(tmp_path / "src", {"a": rect_mask(10, 20, 20, 40)})
    crop_by_mask(src, tmp_path / "out")
    with pytest.raises(UserError, match="not empty"):
        crop_by_mask(src, tmp_path / "out")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / ".crop-progress.json").write_text("{not json")
    with pytest.raises(UserError, match="damaged progress file"):
        crop_by_mask(src, damaged)
