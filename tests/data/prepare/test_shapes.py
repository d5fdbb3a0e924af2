"""`seg prepare shapes`: the generated toy dataset, valid and a function of its seed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from segcli.data.format import read_dataset_info, validate_dataset
from segcli.data.io import read_mask
from segcli.errors import DataError


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


def test_render_sample_is_a_function_of_seed_split_and_index() -> None:
    from segcli.data.prepare.shapes import CLASSES, IGNORE, render_sample

    img, mask = render_sample(0, "train", 3, 48)
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8 and mask.shape == (48, 48)
    again = render_sample(0, "train", 3, 48)
    assert np.array_equal(img, again[0]) and np.array_equal(mask, again[1])
    assert set(np.unique(mask).tolist()) <= {*range(len(CLASSES)), IGNORE} and (mask > 0).any()
    for other in ((1, "train", 3), (0, "val", 3), (0, "train", 4)):
        assert not np.array_equal(img, render_sample(*other, 48)[0])


def test_shapes_options_are_checked(tmp_path: Path) -> None:
    from segcli.data.prepare import prepare

    for opts in ({"train": 0}, {"val": 0}, {"size": 16}, {"video": -1}):
        with pytest.raises(DataError, match=r"shapes: need train >= 1, val >= 1, size >= 32 and video >= 0"):
            prepare("shapes", out=tmp_path / "o", **{"train": 2, "val": 1, "size": 32, **opts})
    res = prepare("shapes", out=tmp_path / "ok", train=2, val=1, size=32, seed=4)
    assert res.counts == {"train": 2, "val": 1}
    assert read_dataset_info(tmp_path / "ok").extra["prepare"] == {
        "converter": "shapes",
        "seed": 4,
        "size": 32,
        "counts": {"train": 2, "val": 1},
    }
    assert sorted(p.name for p in (tmp_path / "ok" / "images" / "train").iterdir()) == [
        "train_00000.jpg",
        "train_00001.jpg",
    ]


def test_video_frames_are_a_function_of_seed_and_index_and_move_smoothly() -> None:
    from segcli.data.prepare.shapes import IGNORE, render_frame

    frames = [render_frame(2, k, 64) for k in range(6)]
    again = render_frame(2, 3, 64)  # any frame on its own, in any order
    assert np.array_equal(again[0], frames[3][0]) and np.array_equal(again[1], frames[3][1])
    assert not np.array_equal(render_frame(3, 3, 64)[1], frames[3][1])
    for (img_a, mask_a), (_, mask_b) in zip(frames, frames[1:]):
        assert img_a.shape == (64, 64, 3) and img_a.dtype == np.uint8
        valid = (mask_a != IGNORE) & (mask_b != IGNORE)
        moved = np.mean(mask_a[valid] != mask_b[valid])
        assert 0 < moved < 0.1  # the shapes move a little each frame
        assert (mask_a > 0).any()


def test_shapes_video_option_writes_the_frames_split_and_a_lossless_video(tmp_path: Path) -> None:
    import cv2

    from segcli.data.prepare.shapes import VIDEO_FILE, prepare_shapes, render_frame

    res = prepare_shapes(tmp_path / "v", train=2, val=1, size=32, seed=4, video=5)
    assert res.counts == {"train": 2, "val": 1, "video": 5}
    stems = sorted(p.stem for p in (res.root / "masks" / "video").iterdir())
    assert stems == [f"video_{k:05d}" for k in range(5)]
    assert np.array_equal(read_mask(res.root / "masks" / "video" / "video_00002.png"), render_frame(4, 2, 32)[1])
    cap = cv2.VideoCapture(str(res.root / VIDEO_FILE))
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(frames) == 5 and all(np.array_equal(f, render_frame(4, k, 32)[0]) for k, f in enumerate(frames))
    (res.root / VIDEO_FILE).unlink()
    assert prepare_shapes(res.root, train=2, val=1, size=32, seed=4, video=5).skipped
    assert (res.root / VIDEO_FILE).is_file()  # a re-run puts back a missing video
