"""Download a converter's public archives into the cache, resumably, and check them.

Every converter module with a public direct download declares a ``DOWNLOADS`` table of
:class:`Download` entries (URL, file name, published checksum, size); `seg prepare NAME` with no
source calls :func:`fetch` on it and converts the verified files. Files land in
``$SEGCLI_CACHE/<dataset>/`` (default ``~/.cache/segcli``) as ``<file>.part`` first; an interrupted
download resumes from there with an HTTP ``Range`` request. A finished file is checked against its
checksum (when one is published) or its size, then renamed into place with a ``<file>.ok`` note of
what was checked, so a later run trusts it without reading it again.

Only the standard library is used (urllib). Connecting has a short timeout, so without network the
command fails in seconds with the URL, the file it wanted and how to pass a downloaded copy.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segcli.errors import DataError, UserError

#: Seconds to open a connection (short: offline must fail fast) and to wait for data once connected.
CONNECT_TIMEOUT = 4.0
READ_TIMEOUT = 60.0
CHUNK = 1 << 20
USER_AGENT = "segcli (dataset download)"

#: ``fetch`` progress: (file name, bytes done, total bytes or None); bytes done restarts per file.
FetchProgress = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class Download:
    """One published file: where it is, what it is called, and how to check it.

    ``checksum`` is ``"md5:<hex>"``, ``"sha1:<hex>"`` or ``"sha256:<hex>"`` as published by the
    dataset or recorded by a widely used loader; "" when none could be confirmed, and then the
    exact ``size`` (bytes) is checked instead, when known; with a checksum, ``size`` is only shown.
    ``dataset`` names the cache folder (files shared by two converters, such as VOC's tar, are
    fetched once). An archive (.zip/.tar/.tgz) is passed to the converter as it is; any other file
    is passed inside a folder of its own.
    """

    dataset: str
    url: str
    file: str
    checksum: str = ""
    size: int | None = None

    @property
    def is_archive(self) -> bool:
        return self.file.lower().endswith((".zip", ".tar", ".tgz", ".tar.gz"))


def cache_dir() -> Path:
    """Where downloads are kept: ``$SEGCLI_CACHE``, else ``~/.cache/segcli``."""
    env = os.environ.get("SEGCLI_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "segcli"


def human_size(n: int | None) -> str:
    """``1999639040`` → ``"1.9 GB"``; None → ``"size unknown"``."""
    if n is None:
        return "size unknown"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover - unreachable


def describe(downloads: Iterable[Download]) -> str:
    """``file (size) from url`` for each download, for help texts and errors."""
    return "; ".join(f"{d.file} ({human_size(d.size)}) from {d.url}" for d in downloads)


# ------------------------------------------------------------------------------- the transport


class _HTTPConnection(http.client.HTTPConnection):
    """Connect with the short timeout, then read with the long one."""

    def connect(self) -> None:
        self.timeout = CONNECT_TIMEOUT
        super().connect()
        self.sock.settimeout(READ_TIMEOUT)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        self.timeout = CONNECT_TIMEOUT
        super().connect()
        self.sock.settimeout(READ_TIMEOUT)


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._context)


_OPENER = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)


def _open(url: str, start: int) -> tuple[Any, int, int | None]:
    """Open ``url`` from byte ``start``: (response, the offset it starts at, total size or None)."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start:
        req.add_header("Range", f"bytes={start}-")
    resp = _OPENER.open(req, timeout=CONNECT_TIMEOUT)
    status = getattr(resp, "status", None)
    length = resp.headers.get("Content-Length")
    if status == 206:
        content_range = resp.headers.get("Content-Range", "")  # "bytes 100-199/200"
        total = content_range.rsplit("/", 1)[-1]
        offset = int(content_range.split()[1].split("-")[0]) if content_range.startswith("bytes ") else start
        return resp, offset, int(total) if total.isdigit() else None
    return resp, 0, int(length) if length and length.isdigit() else None


# ------------------------------------------------------------------------------- checking


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check(d: Download, path: Path) -> str | None:
    """Why ``path`` is not the published file (checksum or size), or None when it is."""
    if d.checksum:
        algo, _, want = d.checksum.partition(":")
        got = _digest(path, algo)
        if got != want.lower():
            return f"{algo} is {got}, the published {algo} is {want}"
        return None
    if d.size is not None and path.stat().st_size != d.size:
        return f"size is {path.stat().st_size} bytes, expected {d.size}"
    return None


def _note(d: Download) -> str:
    """What a finished file was checked against (kept beside it in ``<file>.ok``)."""
    if d.checksum:
        return d.checksum
    return f"size:{d.size}" if d.size is not None else "unchecked"


# ------------------------------------------------------------------------------- fetching


def fetch_one(d: Download, root: Path | None = None, progress: FetchProgress | None = None, fix: str = "") -> Path:
    """The verified local copy of ``d`` under the cache (downloaded or resumed when needed)."""
    folder = (root or cache_dir()) / d.dataset
    final, part, ok = folder / d.file, folder / (d.file + ".part"), folder / (d.file + ".ok")
    if final.is_file() and ok.is_file() and ok.read_text(encoding="utf-8").strip() == _note(d):
        return final
    if final.is_file():  # put there by hand, or checked under other rules: check it once
        why = _check(d, final)
        if why is None:
            ok.write_text(_note(d) + "\n", encoding="utf-8")
            return final
        final.rename(part)  # then try to complete it as a partial download
    _download(d, part, progress, fix)
    why = _check(d, part)
    if why is not None:
        part.unlink(missing_ok=True)
        raise DataError(
            f"{d.file} from {d.url}: the download is corrupt ({why}); it was deleted, run the command again "
            f"to download it afresh{fix}"
        )
    os.replace(part, final)
    ok.write_text(_note(d) + "\n", encoding="utf-8")
    return final


def _download(d: Download, part: Path, progress: FetchProgress | None, fix: str) -> None:
    """Fill ``part`` with the whole file, resuming from what it already holds."""
    start = part.stat().st_size if part.is_file() else 0
    try:
        resp, offset, total = _open(d.url, start)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # Range past the end: the partial file is already whole
            return
        raise UserError(_offline(d, f"HTTP {e.code} {e.reason}", fix)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(_offline(d, str(reason), fix)) from None
    part.parent.mkdir(parents=True, exist_ok=True)  # only once the server answered
    done = offset
    if total is not None and done >= total:
        resp.close()
        return
    mode = "ab" if offset else "wb"
    try:
        with resp, open(part, mode) as fh:
            if offset:
                fh.truncate(offset)
            if progress:
                progress(d.file, done, total)
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                fh.write(block)
                done += len(block)
                if progress:
                    progress(d.file, done, total)
    except (OSError, http.client.HTTPException) as e:  # TimeoutError is an OSError
        raise UserError(
            f"{d.file}: download from {d.url} stopped at {human_size(done)} ({e}); run the command again to "
            f"resume it ({part} is kept){fix}"
        ) from None
    if total is not None and done != total:
        raise UserError(
            f"{d.file}: download from {d.url} ended at {done} of {total} bytes; run the command again to resume "
            f"it ({part} is kept){fix}"
        )


def _offline(d: Download, reason: str, fix: str) -> str:
    return f"cannot download {d.file} ({human_size(d.size)}) from {d.url}: {reason}{fix}"


def fetch(
    downloads: Iterable[Download],
    command: str,
    root: Path | None = None,
    progress: FetchProgress | None = None,
) -> list[Path]:
    """Fetch every download; the sources to give the converter: archives as they are, the folder
    of any other files. ``command`` (``seg prepare voc``) is named in the offline fix."""
    downloads = list(downloads)
    files = " ".join(d.file for d in downloads)
    folders = ", ".join(sorted({str((root or cache_dir()) / d.dataset) for d in downloads}))
    fix = (
        f". Without network: download {files} yourself (browser, wget -c) and run `{command} PATH...` with the "
        f"file(s) or their extracted folders, or put the files in {folders} and run `{command}` again"
    )
    sources: list[Path] = []
    for d in downloads:
        path = fetch_one(d, root, progress, fix)
        if d.is_archive:
            sources.append(path)
        else:
            plain = path.parent / "files"
            plain.mkdir(exist_ok=True)
            shutil.copyfile(path, plain / d.file)
            if plain not in sources:
                sources.append(plain)
    return sources
