"""The conversion writer: re-runs skip, --force redoes, --link links, workers agree; the refusals, stale files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import cli_error, cli_json, make_cityscapes, rand_rgb, write_png

from segcli.cli.app import run
from segcli.data.format import make_info
from segcli.data.prepare import WriteOptions, prepare
from segcli.data.prepare.converter import read_ids as read_ids_of
from segcli.data.prepare.sources import MARKER, Sources, open_sources
from segcli.data.prepare.writer import Sample, class_counts, run_conversion
from segcli.errors import DataError


def test_idempotent_rerun_and_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_cityscapes(tmp_path / "dl", np.random.default_rng(2), coarse=True)
    out = tmp_path / "out"
    argv = ["prepare", "cityscapes", str(tmp_path / "dl"), "--out", str(out)]
    first = cli_json(capsys, argv)
    assert first["written"] == 4 and first["skipped"] == 0 and first["images"] == {"test": 1, "train": 2, "val": 1}
    mask = out / "masks" / "val" / "frankfurt_000000_000294.png"
    mtime = mask.stat().st_mtime_ns
    second = cli_json(capsys, argv)
    assert second["written"] == 0 and second["skipped"] == 4
    assert mask.stat().st_mtime_ns == mtime
    mask.unlink()  # a missing output is redone on the next plain run
    assert cli_json(capsys, argv)["written"] == 1
    assert cli_json(capsys, [*argv, "--force"])["written"] == 4
    # Other settings need --overwrite; another dataset's folder is refused.
    rc, msg = cli_error(capsys, [*argv, "--coarse"])
    assert rc == 2 and "--overwrite" in msg
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    rc, msg = cli_error(capsys, ["prepare", "cityscapes", str(tmp_path / "dl"), "--out", str(tmp_path / "other")])
    assert rc == 2 and "not a segcli dataset" in msg
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_link_hard_links_images(tmp_path: Path) -> None:
    make_cityscapes(tmp_path / "dl", np.random.default_rng(3))
    res = prepare("cityscapes", [tmp_path / "dl"], tmp_path / "out", write=WriteOptions(link=True))
    assert res.linked == 4
    src = tmp_path / "dl" / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png"
    dst = tmp_path / "out" / "images" / "val" / "frankfurt_000000_000294.png"
    assert os.path.samefile(src, dst)
    # Without --link the image is an independent copy.
    prepare("cityscapes", [tmp_path / "dl"], tmp_path / "copy")
    assert not os.path.samefile(src, tmp_path / "copy" / "images" / "val" / "frankfurt_000000_000294.png")


def test_workers_give_the_same_result(tmp_path: Path) -> None:
    make_cityscapes(tmp_path / "dl", np.random.default_rng(4))
    prepare("cityscapes", [tmp_path / "dl"], tmp_path / "a", write=WriteOptions(workers=1))
    prepare("cityscapes", [tmp_path / "dl"], tmp_path / "b", write=WriteOptions(workers=2))
    for p in sorted((tmp_path / "a" / "masks").rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()


def _labels(src: Path, stems: list[str], size: tuple[int, int] = (4, 6)) -> Sources:
    """A folder of grey label PNGs (ids 0/1) with a same-size RGB image for each stem."""
    rng = np.random.default_rng(0)
    for stem in stems:
        write_png(src / "img" / f"{stem}.png", rand_rgb(rng, *size))
        write_png(src / "lab" / f"{stem}.png", (np.arange(size[0] * size[1]).reshape(size) % 2).astype(np.uint8))
    return open_sources([src], src.parent / "unused", "img/ and lab/")


def _samples(srcs: Sources, split_of: dict[str, str]) -> list[Sample]:
    return [
        Sample(split, stem, srcs.get(f"img/{stem}.png"), srcs.get(f"lab/{stem}.png"))
        for stem, split in split_of.items()
    ]


def _mask(srcs: Sources, s: Sample, params: object) -> np.ndarray:
    return read_ids_of(srcs, s.label)


INFO = make_info("two", ["even", "odd"])


def test_a_re_run_with_fewer_samples_removes_the_stale_files(tmp_path: Path) -> None:
    srcs = _labels(tmp_path / "src", ["a", "b", "c"])
    res = run_conversion(tmp_path / "out", INFO, _samples(srcs, {"a": "train", "b": "train", "c": "val"}), srcs, _mask)
    assert res.counts == {"train": 2, "val": 1} and res.written == 3 and res.pixel_counts == (36, 36)
    assert res.summary()["pixel_share"] == {"even": 0.5, "odd": 0.5}
    assert res.summary_extra() == {"written": 3, "skipped": 0, "linked": 0}
    again = run_conversion(tmp_path / "out", INFO, _samples(srcs, {"a": "train"}), srcs, _mask)
    assert again.skipped == 1 and again.written == 0
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == [
        "images/train/a.png",
        "masks/train/a.png",
    ]
    assert not (tmp_path / "out" / "images" / "val").exists()  # the emptied split folder goes too


def test_two_samples_written_to_one_name_are_refused_naming_both(tmp_path: Path) -> None:
    srcs = _labels(tmp_path / "src", ["a", "b"])
    a, b = _samples(srcs, {"a": "train", "b": "train"})
    twin = Sample("train", "a", b.image, b.label)
    with pytest.raises(DataError, match=r"img/b\.png and .*img/a\.png: both would be written as train/a"):
        run_conversion(tmp_path / "out", INFO, [a, twin], srcs, _mask)


def test_image_and_label_of_different_sizes_name_the_image(tmp_path: Path) -> None:
    srcs = _labels(tmp_path / "src", ["a"])
    write_png(tmp_path / "src" / "img" / "a.png", rand_rgb(np.random.default_rng(1), 5, 6))
    with pytest.raises(DataError, match=r"img/a\.png: image is 6x5 but its label is 6x4; image and label must"):
        run_conversion(tmp_path / "out", INFO, _samples(srcs, {"a": "train"}), srcs, _mask)


def test_nothing_to_convert_and_a_generated_sample_without_image_are_errors(tmp_path: Path) -> None:
    srcs = _labels(tmp_path / "src", ["a"])
    with pytest.raises(DataError, match=r"src: nothing to convert \(no image/label pairs found\)"):
        run_conversion(tmp_path / "out", INFO, [], srcs, _mask)
    generated = [Sample("train", "g", None, None)]
    with pytest.raises(DataError, match="train/g: the converter gave no image for a generated sample"):
        run_conversion(tmp_path / "gen", INFO, generated, Sources.none(), lambda *_: np.zeros((2, 2), np.uint8))


def test_a_folder_of_another_dataset_or_conversion_is_refused(tmp_path: Path) -> None:
    srcs = _labels(tmp_path / "src", ["a"])
    samples = _samples(srcs, {"a": "train"})
    run_conversion(tmp_path / "out", make_info("other", ["x", "y"]), samples, srcs, _mask)
    with pytest.raises(DataError, match=r"out: holds dataset 'other'; choose another --out folder"):
        run_conversion(tmp_path / "out", INFO, samples, srcs, _mask)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / MARKER).write_text(json.dumps({"converter": "other"}))
    with pytest.raises(DataError, match=r"half: holds an unfinished 'other' conversion"):
        run_conversion(tmp_path / "half", INFO, samples, srcs, _mask)
    # An unfinished conversion of the same dataset and settings is finished.
    (tmp_path / "half" / MARKER).write_text(json.dumps({"converter": "two"}))
    assert run_conversion(tmp_path / "half", INFO, samples, srcs, _mask).written == 1
    assert not (tmp_path / "half" / MARKER).exists()


def test_class_counts_leave_ignore_and_unknown_ids_out() -> None:
    mask = np.array([[0, 1, 1, 255, 7]], np.uint8)
    assert class_counts(mask, 3).tolist() == [1, 2, 0]


def test_force_with_fewer_samples_removes_the_stale_ones(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "shapes"
    base = ["prepare", "shapes", "--out", str(out), "--size", "32", "--val", "2", "--json"]
    assert run([*base, "--train", "6"]) == 0
    assert run([*base, "--train", "2", "--force"]) == 0
    capfd.readouterr()
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["train_00000.jpg", "train_00001.jpg"]
    assert sorted(p.name for p in (out / "masks" / "train").iterdir()) == ["train_00000.png", "train_00001.png"]


def test_interrupted_prepare_continues(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """A conversion stopped half-way (Ctrl-C, kill) goes on where it was when run again."""
    from segcli.data.prepare import prepare

    out = tmp_path / "shapes"
    calls = []

    def stop_after_three(n: int, total: int) -> None:
        calls.append(n)
        if len(calls) > 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare("shapes", [], out, train=6, val=2, size=32, progress=stop_after_three)
    assert not (out / "dataset.toml").exists() and 0 < len(list((out / "images" / "train").iterdir())) < 6
    assert run(["prepare", "shapes", "--out", str(out), "--train", "6", "--val", "2", "--size", "32", "--json"]) == 0
    assert '"train": 6' in capfd.readouterr().out
    assert (out / "dataset.toml").is_file() and not (out / ".prepare-progress.json").exists()


def test_masks_holding_no_class_fail_the_closing_check_and_are_removed(tmp_path: Path) -> None:
    """Every written mask ignore_index only: the closing checks (those of seg check) refuse the dataset and remove
    it, progress file included, so the corrected run needs no --overwrite."""
    srcs = _labels(tmp_path / "src", ["a", "b"])
    samples = _samples(srcs, {"a": "train", "b": "val"})
    info = make_info("two", ["even", "odd"], ignore_index=7)
    with pytest.raises(DataError, match=r"out: the written masks fail the checks of seg check: the masks read hold "
                       r"none of the 2 classes, only ignore_index 7; fix: seg prepare folder --binary"):  # fmt: skip
        run_conversion(tmp_path / "out", info, samples, srcs, lambda *_: np.full((4, 6), 7, np.uint8))
    assert not (tmp_path / "out").exists()
    res = run_conversion(tmp_path / "out", info, samples, srcs, _mask)  # nothing left to refuse it
    assert res.written == 2 and res.warnings == () and not (tmp_path / "out" / MARKER).exists()


def test_a_failed_prepare_leaves_nothing_that_refuses_the_corrected_run(tmp_path: Path) -> None:
    """A conversion refused by a sample (a settings problem: here a mask value outside the classes) in a new folder
    removes what it wrote, progress file included; a progress file of a run that wrote no output is no reason to
    refuse other settings; an interrupted run's outputs still are."""
    srcs = _labels(tmp_path / "src", ["a", "b"])
    samples = _samples(srcs, {"a": "train", "b": "val"})

    def bad(srcs: Sources, s: Sample, params: object) -> np.ndarray:
        raise DataError(f"{s.label}: mask value 9 is not a class")

    with pytest.raises(DataError, match="mask value 9"):
        run_conversion(tmp_path / "out", INFO, samples, srcs, bad, settings={"binary": False})
    assert not (tmp_path / "out").exists()
    res = run_conversion(tmp_path / "out", INFO, samples, srcs, _mask, settings={"binary": True})
    assert res.written == 2

    stopped = tmp_path / "stopped"  # killed before its first sample: only the progress file
    stopped.mkdir()
    (stopped / MARKER).write_text(json.dumps({"converter": "two", "binary": False}))
    assert run_conversion(stopped, INFO, samples, srcs, _mask, settings={"binary": True}).written == 2

    half = tmp_path / "half"  # interrupted after a sample with other settings: --overwrite still needed
    half.mkdir()
    (half / MARKER).write_text(json.dumps({"converter": "two", "binary": False}))
    write_png(half / "masks" / "train" / "a.png", np.zeros((4, 6), np.uint8))
    with pytest.raises(DataError, match="prepared with other settings"):
        run_conversion(half, INFO, samples, srcs, _mask, settings={"binary": True})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's folder")
    with pytest.raises(DataError, match="choose another --out"):
        run_conversion(tmp_path / "mine", INFO, samples, srcs, _mask)


def test_tiff_images_get_their_channel_count_and_statistics_recorded(tmp_path: Path) -> None:
    """`seg prepare folder` on 4-channel 16-bit TIFFs copies them and records channels and the per-channel
    mean/std in dataset.toml, as `seg check --stats` does; RGB images record nothing."""
    tifffile = pytest.importorskip("tifffile")
    import cv2

    from segcli.data.format import read_dataset_info

    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    for i in range(4):
        image = np.full((8, 8, 4), 257 * (10 * i), np.uint16)
        tifffile.imwrite(src / "images" / f"{i}.tif", image, photometric="minisblack", planarconfig="contig")
        cv2.imwrite(str(src / "masks" / f"{i}.png"), np.eye(8, dtype=np.uint8))
    prepare("folder", [src / "images", src / "masks"], tmp_path / "out", classes=["a", "b"], val_ratio=0.25)
    info = read_dataset_info(tmp_path / "out")
    train = sorted((tmp_path / "out" / "images" / "train").iterdir())
    assert [p.suffix for p in train] == [".tif"] * 3  # copied as they are: every channel and bit kept
    expected = np.mean([10 * int(p.stem) / 255 for p in train])
    assert info.channels == 4 and info.extra["mean"] == pytest.approx([expected] * 4, abs=1e-6)
