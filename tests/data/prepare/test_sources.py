"""Reading downloads: missing or wrong sources name the download; unsafe archives are refused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from cli_helpers import user_error
from prepare_helpers import (
    cli_error,
)

from segcli.data.prepare.sources import open_sources
from segcli.errors import DataError


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


def _tar_with_special(path: Path, name: str, kind: bytes, link_to: str = "") -> Path:
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("ok/a.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname = kind, link_to
        tf.addfile(ti)
    return path


@pytest.mark.parametrize(
    ("kind", "link_to", "what"),
    [
        (tarfile.LNKTYPE, "ok/a.txt", "hard link to 'ok/a.txt'"),  # even one pointing inside the archive
        (tarfile.CHRTYPE, "", "character device"),
        (tarfile.BLKTYPE, "", "block device"),
        (tarfile.FIFOTYPE, "", "FIFO"),
    ],
    ids=["hard-link-inside", "char-device", "block-device", "fifo"],
)
def test_tar_hard_links_devices_and_fifos_are_refused(tmp_path: Path, kind: bytes, link_to: str, what: str) -> None:
    archive = _tar_with_special(tmp_path / "a.tar", "ok/special", kind, link_to)
    out = tmp_path / "out"
    with pytest.raises(DataError) as e:
        open_sources([archive], out, "the test archive")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == f"{archive}: unsafe archive member 'ok/special' ({what}); refusing to unpack it"
    assert not any(p.name == "special" for p in tmp_path.rglob("*"))


def test_tar_device_member_is_one_red_line_at_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    archive = _tar_with_special(tmp_path / "gtFine.tar", "gtFine/dev", tarfile.CHRTYPE)
    rc, msg = cli_error(capsys, ["prepare", "cityscapes", str(archive), "--out", str(tmp_path / "o")])
    assert rc == 2 and "gtFine.tar: unsafe archive member 'gtFine/dev' (character device)" in msg


@pytest.mark.parametrize("member", ["ok/../../evil.txt", "/tmp/segcli-evil.txt"])
def test_refused_tar_leaves_nothing_behind(member: str, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    import io
    import tarfile

    archive = tmp_path / "VOCtrainval.tar"
    with tarfile.open(archive, "w") as tf:
        for name in ("VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt", member):
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    out = tmp_path / "out"
    user_error(capfd, ["prepare", "voc", archive, "--out", out], archive.name)
    assert not out.exists()


def test_a_truncated_zip_and_a_garbage_tar_are_one_line_each(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Reported: a zip cut short was "neither a folder nor a .zip/.tar/.tgz archive" and a garbage .tar gave
    tarfile's five lines (one per compression it tried)."""
    whole = _zip_with(tmp_path / "whole.zip", "ok/b.txt", bytes(range(256)) * 64)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match=r"^corrupt or truncated zip archive: .*cut\.zip; re-download it$"):
        open_sources([cut], tmp_path / "o1", "x")
    cut_unnamed = tmp_path / "download"  # no .zip suffix: the zip header still tells what it was
    cut_unnamed.write_bytes(cut.read_bytes())
    with pytest.raises(DataError, match="corrupt or truncated zip archive"):
        open_sources([cut_unnamed], tmp_path / "o2", "x")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(bytes(range(256)) * 12)
    line = user_error(capfd, ["prepare", "folder", garbage, "--out", tmp_path / "o3"], "garbage.tar")
    assert "not a readable tar archive (no tar, gzip, bzip2 or xz header); re-download it" in line
