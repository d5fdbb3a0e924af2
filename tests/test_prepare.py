"""`seg prepare`: the converter framework (sources, safety, idempotency, --link, workers) and Cityscapes."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    cli_error,
    cli_json,
    fixture_dir,
    rand_rgb,
    read_ids,
    tar_dir,
    write_png,
    zip_dir,
)

from segcli.data.prepare import prepare
from segcli.data.prepare.sources import open_sources
from segcli.errors import DataError

# Independent oracle: labelId → trainId as published in cityscapesScripts' labels.py.
CITYSCAPES_TRAIN = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


def expected_train_ids(label_ids: np.ndarray) -> np.ndarray:
    exp = np.full(label_ids.shape, 255, np.uint8)
    for lid, tid in CITYSCAPES_TRAIN.items():
        exp[label_ids == lid] = tid
    return exp


def make_cityscapes(root: Path, rng: np.random.Generator, coarse: bool = False) -> dict[tuple[str, str], np.ndarray]:
    """Two folders ``root/leftImg8bit`` and ``root/gtFine`` (+ gtCoarse) in the published layout."""
    raw = {}
    frames = [
        ("train", "aachen", "aachen_000000_000019"),
        ("train", "bochum", "bochum_000000_000313"),
        ("val", "frankfurt", "frankfurt_000000_000294"),
        ("test", "berlin", "berlin_000000_000019"),
    ]
    if coarse:
        frames.append(("train_extra", "augsburg", "augsburg_000000_000000"))
    for split, city, stem in frames:
        write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rand_rgb(rng))
        ids = rng.integers(0, 34, (16, 24), dtype=np.uint8)
        kind = "gtCoarse" if split == "train_extra" else "gtFine"
        write_png(root / kind / split / city / f"{stem}_{kind}_labelIds.png", ids)
        # Distractors that must be ignored: colour and instance images next to the labelIds.
        write_png(root / kind / split / city / f"{stem}_{kind}_color.png", rand_rgb(rng))
        raw[(split, stem)] = ids
    return raw


@pytest.mark.parametrize("packing", ["folder", "zip", "tgz"])
def test_cityscapes_ids_match_official_table(tmp_path: Path, packing: str) -> None:
    rng = np.random.default_rng(0)
    raw = make_cityscapes(tmp_path / "dl", rng)
    if packing == "folder":
        srcs = [tmp_path / "dl"]
    elif packing == "zip":
        srcs = [
            zip_dir(tmp_path / "dl" / "leftImg8bit", tmp_path / "leftImg8bit_trainvaltest.zip"),
            zip_dir(tmp_path / "dl" / "gtFine", tmp_path / "gtFine_trainvaltest.zip"),
        ]
    else:
        srcs = [
            tar_dir(tmp_path / "dl" / "leftImg8bit", tmp_path / "l.tgz"),
            tar_dir(tmp_path / "dl" / "gtFine", tmp_path / "g.tgz"),
        ]
    out = tmp_path / "out"
    res = prepare("cityscapes", srcs, out)
    assert res.counts == {"test": 1, "train": 2, "val": 1}
    assert not (out / ".prepare-tmp").exists()
    for (split, stem), ids in raw.items():
        got = read_ids(out / "masks" / split / f"{stem}.png")
        np.testing.assert_array_equal(got, expected_train_ids(ids))
        assert (out / "images" / split / f"{stem}.png").read_bytes() == (
            tmp_path / "dl" / "leftImg8bit" / split / stem.split("_")[0] / f"{stem}_leftImg8bit.png"
        ).read_bytes()
    toml = (out / "dataset.toml").read_text()
    assert '"road"' in toml and '"bicycle"' in toml


def test_cityscapes_coarse_adds_train_extra(tmp_path: Path) -> None:
    raw = make_cityscapes(tmp_path / "dl", np.random.default_rng(1), coarse=True)
    res = prepare("cityscapes", [tmp_path / "dl"], tmp_path / "out", coarse=True)
    assert res.counts["train_extra"] == 1
    stem = "augsburg_000000_000000"
    got = read_ids(tmp_path / "out" / "masks" / "train_extra" / f"{stem}.png")
    np.testing.assert_array_equal(got, expected_train_ids(raw[("train_extra", stem)]))
    # Without --coarse the train_extra images are left out.
    assert "train_extra" not in prepare("cityscapes", [tmp_path / "dl"], tmp_path / "out2").counts


def test_cityscapes_real_frame(tmp_path: Path) -> None:
    src = fixture_dir("mmseg", "pseudo_cityscapes_dataset")
    out = tmp_path / "cs"
    prepare("cityscapes", [src], out)
    gt = src / "gtFine" / "val" / "frankfurt"
    stem = "frankfurt_000000_000294"
    label_ids = read_ids(gt / f"{stem}_gtFine_labelIds.png")
    got = read_ids(out / "masks" / "val" / f"{stem}.png")
    np.testing.assert_array_equal(got, expected_train_ids(label_ids))
    shipped = read_ids(gt / f"{stem}_gtFine_labelTrainIds.png")
    agree = float((got == shipped).mean())
    assert agree >= 0.99, agree
    assert set(np.unique(got).tolist()) <= set(range(19)) | {255}


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


def test_missing_or_wrong_source_names_the_download(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, msg = cli_error(capsys, ["prepare", "cityscapes", str(tmp_path / "nope.zip"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "nope.zip: not found" in msg and "gtFine_trainvaltest.zip" in msg
    assert "cityscapes-dataset.com" in msg
    (tmp_path / "empty").mkdir()
    rc, msg = cli_error(capsys, ["prepare", "cityscapes", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "leftImg8bit" in msg and "cityscapes-dataset.com" in msg
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not an archive")
    rc, msg = cli_error(capsys, ["prepare", "cityscapes", str(bad), "--out", str(tmp_path / "o")])
    assert rc == 2 and "broken.zip" in msg


def _zip_with(path: Path, name: str, data: bytes = b"x", symlink_to: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/a.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if symlink_to is not None:
            info.external_attr = 0o120777 << 16
            data = symlink_to.encode()
        zf.writestr(info, data)
    return path


def _tar_with(path: Path, name: str, link_to: str | None = None, hard: bool = False) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("ok/a.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        ti = tarfile.TarInfo(name)
        if link_to is not None:
            ti.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
            ti.linkname = link_to
            tf.addfile(ti)
        else:
            ti.size = 4
            tf.addfile(ti, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize(
    "build",
    [
        lambda p: _zip_with(p / "a.zip", "../evil.txt"),
        lambda p: _zip_with(p / "a.zip", "/tmp/segcli-evil.txt"),
        lambda p: _zip_with(p / "a.zip", "ok/link", symlink_to="../../etc/passwd"),
        lambda p: _tar_with(p / "a.tgz", "ok/../../evil.txt"),
        lambda p: _tar_with(p / "a.tgz", "/tmp/segcli-evil.txt"),
        lambda p: _tar_with(p / "a.tgz", "ok/link", link_to="../../../etc/passwd"),
        lambda p: _tar_with(p / "a.tgz", "ok/link", link_to="/etc/passwd"),
        lambda p: _tar_with(p / "a.tgz", "ok/hard", link_to="../outside.txt", hard=True),
    ],
    ids=["zip-dotdot", "zip-abs", "zip-symlink", "tar-dotdot", "tar-abs", "tar-symlink", "tar-abs-link", "tar-hard"],
)
def test_malicious_archive_is_rejected(tmp_path: Path, build) -> None:  # noqa: ANN001
    (tmp_path / "dl").mkdir()
    archive = build(tmp_path / "dl")
    out = tmp_path / "work" / "out"
    with pytest.raises(DataError, match="unsafe archive member|outside the archive"):
        open_sources([archive], out, "the test archive")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "work" / "evil.txt").exists()
    assert not Path("/tmp/segcli-evil.txt").exists()
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


def test_safe_archive_with_internal_link_is_read(tmp_path: Path) -> None:
    archive = _tar_with(tmp_path / "a.tgz", "ok/link", link_to="a.txt")
    srcs = open_sources([archive], tmp_path / "out", "x")
    member = srcs.get("ok/a.txt")
    assert not (tmp_path / "out" / ".prepare-tmp").exists() or not any((tmp_path / "out").rglob("a.txt"))
    srcs.stage([member])  # tar members are unpacked (inside the output folder) only when needed
    assert srcs.read(member) == b"fine"
    assert srcs.get("ok/link") is None  # links are not followed
    zsrcs = open_sources([_zip_with(tmp_path / "b.zip", "ok/b.txt", b"bee")], tmp_path / "out2", "x")
    assert zsrcs.read(zsrcs.get("ok/b.txt")) == b"bee"
