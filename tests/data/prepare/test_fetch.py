"""`seg prepare NAME` with no source: download into the cache (resumable, checked), then convert.

Never the network: the archives come from a ``file://`` mirror or an http.server on 127.0.0.1 that
the tests build, with tiny fake archives in the published layout.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import cli_error, cli_json, rand_rgb, read_ids, write_jpg, write_palette_png

from segcli.data.prepare import fetch as fetch_mod
from segcli.data.prepare.fetch import Download, fetch, fetch_one
from segcli.data.prepare.voc import VOC
from segcli.errors import DataError, UserError

VOC_TAR = "VOCtrainval_11-May-2012.tar"


def make_voc_tar(tmp: Path, rng: np.random.Generator) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny VOCtrainval tar in the published layout (VOCdevkit/VOC2012/...); returns it and the labels."""
    voc = tmp / "build" / "VOCdevkit" / "VOC2012"
    labels = {}
    for k in ("2007_000032", "2007_000033", "2007_000039"):
        write_jpg(voc / "JPEGImages" / f"{k}.jpg", rand_rgb(rng))
        lab = rng.integers(0, 21, (16, 24)).astype(np.uint8)
        lab[0, :3] = 255
        write_palette_png(voc / "SegmentationClass" / f"{k}.png", lab, [[i, i, i] for i in range(256)])
        labels[k] = lab
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000032\n2007_000039\n")
    (sets / "val.txt").write_text("2007_000033\n")
    mirror = tmp / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / VOC_TAR, "w") as tf:
        tf.add(tmp / "build" / "VOCdevkit", arcname="VOCdevkit")
    return mirror / VOC_TAR, labels


def md5_of(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def voc_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, np.ndarray]]:
    """The fake archive behind a file:// URL as VOC's download; cache and working folder in tmp_path."""
    tar, labels = make_voc_tar(tmp_path, np.random.default_rng(0))
    monkeypatch.setattr(VOC, "downloads", (Download("voc", tar.as_uri(), VOC_TAR, md5_of(tar), tar.stat().st_size),))
    monkeypatch.setenv("SEGCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tar, labels


def test_prepare_voc_without_source_downloads_checks_and_converts(voc_mirror, tmp_path: Path, capsys) -> None:
    tar, labels = voc_mirror
    res = cli_json(capsys, ["prepare", "voc"])
    # --out defaults to data/<name>; the archive sits in the cache, checked, with a note of the check.
    assert Path(res["root"]).resolve() == (tmp_path / "data" / "voc").resolve()
    assert res["images"] == {"train": 2, "val": 1}
    for split, k in (("train", "2007_000032"), ("train", "2007_000039"), ("val", "2007_000033")):
        np.testing.assert_array_equal(read_ids(tmp_path / "data" / "voc" / "masks" / split / f"{k}.png"), labels[k])
    cached = tmp_path / "cache" / "voc" / VOC_TAR
    assert cached.read_bytes() == tar.read_bytes()
    assert (tmp_path / "cache" / "voc" / (VOC_TAR + ".ok")).read_text().strip() == md5_of(tar)
    assert not list((tmp_path / "cache" / "voc").glob("*.part"))
    # A second conversion reads the cache: the mirror may be gone.
    tar.unlink()
    res = cli_json(capsys, ["prepare", "voc", "--out", "data/voc2"])
    assert res["images"] == {"train": 2, "val": 1}
    # The default --out now holds the dataset: a re-run is "already prepared", never an overwrite.
    assert cli_json(capsys, ["prepare", "voc"])["written"] == 0


def test_foreign_out_folder_is_refused_before_downloading(voc_mirror, tmp_path: Path, capsys) -> None:
    (tmp_path / "data" / "voc").mkdir(parents=True)
    (tmp_path / "data" / "voc" / "notes.txt").write_text("mine")
    rc, msg = cli_error(capsys, ["prepare", "voc"])
    assert rc == 2 and "not a segcli dataset" in msg
    assert not (tmp_path / "cache").exists()
    assert (tmp_path / "data" / "voc" / "notes.txt").read_text() == "mine"


def test_checksum_mismatch_is_an_error_and_the_bad_file_is_deleted(tmp_path: Path) -> None:
    tar, _ = make_voc_tar(tmp_path, np.random.default_rng(1))
    bad = Download("voc", tar.as_uri(), VOC_TAR, "md5:" + "0" * 32)
    with pytest.raises(DataError, match=r"corrupt \(md5 is [0-9a-f]{32}, the published md5 is 0{32}\)"):
        fetch_one(bad, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "voc").iterdir())
    # Without a checksum the exact size is checked.
    wrong_size = Download("voc", tar.as_uri(), VOC_TAR, size=tar.stat().st_size + 1)
    with pytest.raises(DataError, match=f"size is {tar.stat().st_size} bytes, expected {tar.stat().st_size + 1}"):
        fetch_one(wrong_size, tmp_path / "cache")


def test_offline_fails_at_once_with_url_file_size_and_the_fix(tmp_path: Path, monkeypatch, capsys) -> None:
    with socket.socket() as s:  # a local port nobody listens on: connection refused, as when offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/pascal/{VOC_TAR}"
    monkeypatch.setattr(VOC, "downloads", (Download("voc", url, VOC_TAR, "md5:" + "1" * 32, 1999639040),))
    monkeypatch.setenv("SEGCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    rc, msg = cli_error(capsys, ["prepare", "voc"])
    assert rc == 2
    assert f"cannot download {VOC_TAR} (2.0 GB) from {url}" in msg
    assert "`seg prepare voc PATH...`" in msg and str(tmp_path / "cache" / "voc") in msg
    assert not (tmp_path / "cache").exists() and not (tmp_path / "data").exists()


def test_connections_open_with_the_short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline (no route) fails within CONNECT_TIMEOUT, not the long read timeout."""
    seen = []

    def refuse(address, timeout=None, *args, **kwargs):
        seen.append(timeout)
        raise OSError("no route to host")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(UserError, match="no route to host"):
        fetch_one(Download("x", "http://192.0.2.1/a.zip", "a.zip"), Path("/nonexistent-cache"))
    assert seen == [fetch_mod.CONNECT_TIMEOUT] and fetch_mod.CONNECT_TIMEOUT < 5


class _RangeServer(http.server.BaseHTTPRequestHandler):
    """Serves one payload with HTTP Range support; can cut the first answer short (a dropped connection)."""

    payload = b""
    cut_after: int | None = None
    honour_range = True
    ranges: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        data, start = self.payload, 0
        if rng and self.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if type(self).cut_after is not None:
            body, type(self).cut_after = body[: type(self).cut_after], None
            self.wfile.write(body)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def range_server() -> Iterator[tuple[str, type[_RangeServer]]]:
    handler = type("Handler", (_RangeServer,), {"ranges": [], "cut_after": None, "honour_range": True})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_interrupted_download_resumes_with_a_range_request(tmp_path: Path, range_server) -> None:
    base, handler = range_server
    tar, _ = make_voc_tar(tmp_path, np.random.default_rng(2))
    handler.payload = tar.read_bytes()
    handler.cut_after = 3000  # the first answer stops after 3000 bytes
    d = Download("voc", f"{base}/{VOC_TAR}", VOC_TAR, md5_of(tar))
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="run the command again to resume"):
        fetch_one(d, cache)
    part = cache / "voc" / (VOC_TAR + ".part")
    assert part.stat().st_size == 3000
    seen = []
    path = fetch_one(d, cache, progress=lambda f, done, total: seen.append((done, total)))
    assert handler.ranges == [None, "bytes=3000-"]
    assert path.read_bytes() == tar.read_bytes() and not part.exists()
    assert seen[0] == (3000, len(handler.payload)) and seen[-1] == (len(handler.payload),) * 2
    # A server that ignores Range (answers 200) makes the file start over instead of being appended to.
    part.write_bytes(b"x" * 10)
    path.unlink()
    handler.honour_range = False
    assert fetch_one(d, cache).read_bytes() == tar.read_bytes()
    assert handler.ranges[-1] == "bytes=10-"


def test_fetch_passes_archives_and_the_folder_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (tmp_path / "m" / "label_colors.txt").write_text("0 0 0\tVoid\n")
    downloads = [
        Download("camvid", (tmp_path / "m" / "a.zip").as_uri(), "a.zip"),
        Download("camvid", (tmp_path / "m" / "label_colors.txt").as_uri(), "label_colors.txt"),
    ]
    got = fetch(downloads, "seg prepare camvid", tmp_path / "cache")
    assert got == [tmp_path / "cache" / "camvid" / "a.zip", tmp_path / "cache" / "camvid" / "files"]
    assert (got[1] / "label_colors.txt").read_text() == "0 0 0\tVoid\n"


def test_login_datasets_say_where_to_get_the_files(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    for name, where in (
        ("cityscapes", "cityscapes-dataset.com"),
        ("mapillary", "mapillary.com"),
        ("celebamask-hq", "CelebAMask-HQ"),
    ):
        rc, msg = cli_error(capsys, ["prepare", name, "--out", "o"])
        assert rc == 2 and where in msg and f"`seg prepare {name} PATH...`" in msg, msg


def test_voc_aug_fetches_both_archives_and_shares_the_voc_tar(voc_mirror, tmp_path: Path, monkeypatch, capsys) -> None:
    pytest.importorskip("scipy")
    from prepare_helpers import save_mat

    from segcli.data.prepare.voc_aug import VOCAug

    tar, _ = voc_mirror
    sbd = tmp_path / "sbd" / "benchmark_RELEASE" / "dataset"
    lab = np.random.default_rng(3).integers(0, 21, (16, 24)).astype(np.uint8)
    save_mat(sbd / "cls" / "2008_000002.mat", {"GTcls": {"Segmentation": lab}})
    write_jpg(sbd / "img" / "2008_000002.jpg", rand_rgb(np.random.default_rng(4)))
    (sbd / "train.txt").write_text("2008_000002\n")
    (sbd / "val.txt").write_text("2007_000033\n")  # in VOC val: left out of train_aug
    tgz = tmp_path / "mirror" / "benchmark.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(tmp_path / "sbd" / "benchmark_RELEASE", arcname="benchmark_RELEASE")
    sbd_dl = Download("sbd", tgz.as_uri(), "benchmark.tgz", md5_of(tgz))
    monkeypatch.setattr(VOCAug, "downloads", (*VOC.downloads, sbd_dl))
    assert cli_json(capsys, ["prepare", "voc"])["images"] == {"train": 2, "val": 1}
    tar.unlink()  # voc-aug reuses the cached VOC tar
    res = cli_json(capsys, ["prepare", "voc-aug"])
    assert res["images"] == {"train_aug": 3, "val": 1}
    np.testing.assert_array_equal(
        read_ids(tmp_path / "data" / "voc-aug" / "masks" / "train_aug" / "2008_000002.png"), lab
    )
    assert (tmp_path / "cache" / "sbd" / "benchmark.tgz").is_file()
