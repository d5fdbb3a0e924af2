"""`seg check`: each trap is found, named with its files and fix; exit codes; fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_helpers import make_masks_dataset as make_dataset
from data_helpers import make_toy_dataset
from PIL import Image

from segcli.cli.app import run
from segcli.data.format import make_info, write_dataset_info
from segcli.data.io import write_mask
from segcli.data.lint import lint_dataset, quick_lint
from segcli.errors import DataError

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


def good_mask(seed: int = 0, n: int = 3) -> np.ndarray:
    m = np.zeros((16, 16), np.uint8)
    m[2:8, 2:8] = 1 % n
    m[9:14, 9:14] = 2 % n
    m[0, 0] = 255
    return m


def codes(findings) -> dict[str, object]:
    return {f.code: f for f in findings}


def test_clean_dataset_has_no_findings(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": good_mask(), "b": good_mask()})
    assert lint_dataset(root) == []
    assert quick_lint(root, None) == []
    assert run(["check", str(root)]) == 0


def test_binary_0_255_masks(tmp_path):
    m = np.zeros((16, 16), np.uint8)
    m[4:12, 4:12] = 255
    root = make_dataset(tmp_path / "ds", {"x": m, "y": m}, classes=["bg", "fg"])
    f = codes(lint_dataset(root))["binary-0-255"]
    assert f.severity == "error" and f.count == 2
    assert "--binary" in f.fix and f.files[0].endswith("x.png")
    assert set(codes(lint_dataset(root))) == {"binary-0-255"}  # no out-of-range, no class-missing noise


def test_cityscapes_label_ids(tmp_path):
    m = np.full((16, 16), 7, np.uint8)
    m[:4] = 23
    m[8:, :4] = 26
    m[0, 0] = 1
    classes = [f"c{i}" for i in range(19)]
    root = make_dataset(tmp_path / "ds", {"f": m}, classes=classes)
    found = codes(lint_dataset(root))
    assert "cityscapes-label-ids" in found and "values-out-of-range" not in found
    assert "seg prepare cityscapes" in found["cityscapes-label-ids"].fix


def test_values_out_of_range_names_values_and_files(tmp_path):
    bad = good_mask()
    bad[5, 5] = 7
    bad[6, 6] = 3
    root = make_dataset(tmp_path / "ds", {"ok": good_mask(), "bad": bad})
    f = codes(lint_dataset(root))["values-out-of-range"]
    assert "[3, 7]" in f.message and f.count == 1 and f.files[0].endswith("bad.png")


def test_one_based_ids(tmp_path):
    m = good_mask()
    m[10:, :4] = 3  # classes 0-2 plus 3: ADE20K/LoveDA style 1-based ids with 0 = unlabelled
    found = codes(lint_dataset(make_dataset(tmp_path / "ds", {"a": m})))
    assert "one-based-ids" in found and "values-out-of-range" not in found


def test_orphan_mask_split_folder(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": good_mask()})
    (root / "masks" / "val").mkdir()
    assert codes(lint_dataset(root))["mask-without-image"].files == [str(root / "masks" / "val")]


def test_palette_rgb_and_grey_rgb_masks(tmp_path):
    root = make_dataset(tmp_path / "ds", {"p": good_mask(), "rgb": good_mask(), "grey": good_mask()})
    mdir = root / "masks" / "train"
    im = Image.fromarray(good_mask(), mode="P")
    im.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * 759)
    im.save(mdir / "p.png")
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[4:8, 4:8] = (255, 0, 0)
    cv2.imwrite(str(mdir / "rgb.png"), colour)
    cv2.imwrite(str(mdir / "grey.png"), np.repeat(good_mask()[..., None], 3, axis=2))
    found = codes(lint_dataset(root))
    assert found["palette-mask"].severity == "warning" and found["palette-mask"].files[0].endswith("p.png")
    assert found["rgb-mask"].files[0].endswith("rgb.png") and "--colors" in found["rgb-mask"].fix
    assert found["grey-rgb-mask"].files[0].endswith("grey.png")


def test_size_mismatch_empty_unreadable_unpaired(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": good_mask(), "b": good_mask(), "c": good_mask(), "d": good_mask()})
    cv2.imwrite(str(root / "images" / "train" / "a.png"), np.zeros((20, 16, 3), np.uint8))
    (root / "masks" / "train" / "b.png").write_bytes(b"")
    (root / "images" / "train" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "masks" / "train" / "d.png").unlink()
    cv2.imwrite(str(root / "masks" / "train" / "orphan.png"), good_mask())
    shutil.copy(root / "masks" / "train" / "a.png", root / "masks" / "train" / "e.jpg")
    found = codes(lint_dataset(root))
    assert "16x16 vs image 16x20" in found["size-mismatch"].files[0]
    assert found["empty-file"].files == [str(root / "masks" / "train" / "b.png")]
    assert found["unreadable-file"].files == [str(root / "images" / "train" / "c.png")]
    assert found["image-without-mask"].files[0].endswith("d.png")
    assert found["mask-without-image"].files[0].endswith("orphan.png")
    assert "mask-not-png" in found
    assert all(f.severity == "error" for f in found.values())


def test_class_missing_is_a_warning(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": good_mask(n=2)}, classes=["bg", "a", "b", "c"])
    f = codes(lint_dataset(root))["class-missing"]
    assert f.severity == "warning" and "b, c" in f.message and f.count == 2


def test_sampling_limits_pixel_checks_but_not_file_checks(tmp_path):
    masks = {f"m{i}": good_mask() for i in range(10)}
    bad = good_mask()
    bad[1, 1] = 9
    masks["m9"] = bad
    root = make_dataset(tmp_path / "ds", masks)
    (root / "images" / "train" / "m0.png").write_bytes(b"")
    counts = {n for n in range(1, 10) if "values-out-of-range" in codes(lint_dataset(root, sample=n, seed=n))}
    assert counts != set(range(1, 10))  # some samples miss the bad mask
    for n in (1, 3):
        assert "empty-file" in codes(lint_dataset(root, sample=n))


def test_missing_dataset_toml_still_lints_files(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": good_mask()})
    (root / "dataset.toml").unlink()
    (root / "images" / "train" / "a.png").write_bytes(b"")
    found = codes(lint_dataset(root))
    assert {"dataset-toml", "empty-file"} <= set(found)


def test_quick_lint_raises_first_error(tmp_path):
    m = np.zeros((16, 16), np.uint8)
    m[2:5] = 255
    root = make_dataset(tmp_path / "ds", {"x": m}, classes=["bg", "fg"])
    with pytest.raises(DataError, match="0/255 binary.*fix: seg prepare folder --binary"):
        quick_lint(root, ["train"])
    with pytest.raises(DataError, match="split.*nope.*not found"):
        lint_dataset(root, ["nope"])


def test_a_symlink_loop_is_reported_by_check_as_by_training(tmp_path):
    """Reported: `seg check` said "no problems found" (it skipped what is not a regular file) while `seg train`
    refused the same files; both now list the same entries and name the links."""
    from segcli.data.format import DatasetIndex

    root = make_dataset(tmp_path / "ds", {"a": good_mask(), "b": good_mask()})
    (root / "images" / "train" / "loop.png").symlink_to("loop.png")  # a link to itself
    (root / "masks" / "train" / "loop.png").symlink_to("gone.png")  # a missing target
    found = codes(lint_dataset(root))
    assert list(found) == ["broken-link"] and found["broken-link"].count == 2
    assert {Path(f).name for f in found["broken-link"].files} == {"loop.png"}
    index = DatasetIndex.scan(root, ["train"])  # what training reads holds the same pair
    assert [i.name for i, _ in index.pairs("train")] == ["a.png", "b.png", "loop.png"]
    for dataset in (root, index):
        with pytest.raises(DataError, match="2 file.s. are symbolic links that lead nowhere.*fix: point the links"):
            quick_lint(dataset, ["train"])
    assert run(["check", str(root)]) == 2


# ---- real-format fixtures: every trap they hold is reported --------------------------------------------------


def _fixture(rel: str) -> Path:
    p = FIXTURES / rel
    if not p.exists():
        pytest.skip(f"fixture {p} not available")
    return p


def _from_files(root: Path, pairs: list[tuple[Path, Path]], classes: list[str]) -> Path:
    """A segcli-layout folder (train split) holding copies of the given real image/mask files."""
    write_dataset_info(root, make_info("fixture", classes))
    for sub in ("images", "masks"):
        (root / sub / "train").mkdir(parents=True)
    for i, (img, mask) in enumerate(pairs):
        shutil.copy(img, root / "images" / "train" / f"s{i}{img.suffix}")
        shutil.copy(mask, root / "masks" / "train" / f"s{i}.png")
    return root


def test_fixture_cityscapes_label_ids(tmp_path):
    d = _fixture("mmseg/pseudo_cityscapes_dataset")
    img = next(d.glob("leftImg8bit/val/frankfurt/*_leftImg8bit.png"))
    ids = next(d.glob("gtFine/val/frankfurt/*_labelIds.png"))
    train_ids = next(d.glob("gtFine/val/frankfurt/*_labelTrainIds.png"))
    classes = [f"c{i}" for i in range(19)]
    assert "cityscapes-label-ids" in codes(lint_dataset(_from_files(tmp_path / "raw", [(img, ids)], classes)))
    # trainIds are fine: one frame lacks some classes, which is only a warning.
    assert [f.code for f in lint_dataset(_from_files(tmp_path / "ok", [(img, train_ids)], classes))] == [
        "class-missing"
    ]


def test_fixture_membrane_binary(tmp_path):
    d = _fixture("membrane")
    pairs = [(d / "image" / f"{i}.png", d / "label" / f"{i}.png") for i in range(3)]
    f = codes(lint_dataset(_from_files(tmp_path / "ds", pairs, ["membrane", "cell"])))["binary-0-255"]
    assert f.count == 3


def test_fixture_palette_masks(tmp_path):
    d = _fixture("mmseg/pseudo_dataset")
    pairs = [(d / "imgs" / f"0000{i}_img.jpg", d / "gts" / f"0000{i}_gt.png") for i in range(5)]
    found = codes(lint_dataset(_from_files(tmp_path / "ds", pairs, ["bg", "a", "b", "c"])))
    assert found["palette-mask"].count == 5
    assert not [f for f in found.values() if f.severity == "error"]  # indices 0-3 are valid ids


def test_fixture_refuge_three_channel_label(tmp_path):
    d = _fixture("mmseg/pseudo_refuge_dataset")
    pairs = [(d / "img_dir" / "pseudo_g0001.png", d / "ann_dir" / "pseudo_g0001.png")]
    found = codes(lint_dataset(_from_files(tmp_path / "ds", pairs, ["bg", "disc", "cup"])))
    assert list(found) == ["grey-rgb-mask"]  # grey ids 0-2 stored in 3 equal channels


def test_fixture_loveda_one_based_ids(tmp_path):
    d = _fixture("mmseg/pseudo_loveda_dataset")
    pairs = [(d / "img_dir" / f"{i}.png", d / "ann_dir" / f"{i}.png") for i in range(3)]
    found = codes(lint_dataset(_from_files(tmp_path / "ds", pairs, [f"c{i}" for i in range(7)])))
    assert "one-based-ids" in found and "values-out-of-range" not in found


def test_fixture_isaid_empty_files(tmp_path):
    d = _fixture("mmseg/pseudo_isaid_dataset")
    imgs = sorted((d / "img_dir").glob("*.png"))
    anns = sorted((d / "ann_dir").glob("*.png"))
    found = codes(lint_dataset(_from_files(tmp_path / "ds", list(zip(imgs, anns)), ["bg", "ship"])))
    assert found["empty-file"].count == 4


def test_quick_lint_of_an_index_reports_bad_masks(tmp_path: Path) -> None:
    from segcli.data.format import DatasetIndex
    from segcli.data.lint import quick_lint

    root = make_toy_dataset(tmp_path / "d")
    write_mask(root / "masks" / "train" / "1.png", np.full((16, 16), 7, np.uint8))
    with pytest.raises(DataError, match=r"mask values \[7\] are not class ids 0..2"):
        quick_lint(DatasetIndex.scan(root), sample=None)  # type: ignore[arg-type]
    (root / "images" / "val" / "0.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        quick_lint(DatasetIndex.scan(root, ["val"]), ["val"])
