"""The conversion writer: re-runs skip, --force redoes, --link links, workers agree."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    cli_error,
    cli_json,
    make_cityscapes,
)

from segcli.data.prepare import prepare


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
    # Other settings need --force; another dataset's folder is refused.
    rc, msg = cli_error(capsys, [*argv, "--coarse"])
    assert rc == 2 and "--force" in msg
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    rc, msg = cli_error(capsys, ["prepare", "cityscapes", str(tmp_path / "dl"), "--out", str(tmp_path / "other")])
    assert rc == 2 and "not a segcli dataset" in msg
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_link_hard_links_images(tmp_path: Path) -> None:
    make_cityscapes(tmp_path / "dl", np.random.default_rng(3))
    res = prepare("cityscapes", [tmp_path / "dl"], tmp_path / "out", link=True)
    assert res.linked == 4
    src = tmp_path / "dl" / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png"
    dst = tmp_path / "out" / "images" / "val" / "frankfurt_000000_000294.png"
    assert os.path.samefile(src, dst)
    # Without --link the image is an independent copy.
    prepare("cityscapes", [tmp_path / "dl"], tmp_path / "copy")
    assert not os.path.samefile(src, tmp_path / "copy" / "images" / "val" / "frankfurt_000000_000294.png")


def test_workers_give_the_same_result(tmp_path: Path) -> None:
    make_cityscapes(tmp_path / "dl", np.random.default_rng(4))
    prepare("cityscapes", [tmp_path / "dl"], tmp_path / "a", workers=1)
    prepare("cityscapes", [tmp_path / "dl"], tmp_path / "b", workers=2)
    for p in sorted((tmp_path / "a" / "masks").rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()
