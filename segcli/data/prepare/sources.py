"""What the user downloaded (folders, ``.zip``, ``.tar``/``.tgz``) as one read-only tree per source.

Nothing is extracted outside the output folder: zip members are read in place, tar members that
samples need are unpacked into ``<out>/.prepare-tmp/`` (removed when the conversion ends). Archive
members with absolute paths, ``..`` parts or links that point outside the archive are rejected, and
so are tar hard links (wherever they point), devices and FIFOs: a dataset holds none of them.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from segcli.data.format import DATASET_FILE
from segcli.errors import DataError
from segcli.io_utils import require_folder

STAGING = ".prepare-tmp"
MARKER = ".prepare-progress.json"
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class Member:
    """One file inside one source: ``src`` indexes :attr:`Sources.roots`, ``name`` is a posix path."""

    src: int
    name: str


def _unsafe_reason(name: str) -> str | None:
    """Why an archive member name may not be used (absolute, drive letter, ``..``), or None."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "'..' in path"
    return None


def _special_tar_member(m: tarfile.TarInfo) -> str | None:
    """What a tar member is when it is a hard link, a device or a FIFO (refused: datasets hold none), or None."""
    if m.islnk():
        return f"hard link to {m.linkname!r}"
    if m.ischr():
        return "character device"
    if m.isblk():
        return "block device"
    if m.isfifo():
        return "FIFO"
    return None


def _link_escapes(member_name: str, target: str, relative_to_member: bool) -> bool:
    """True when a link target leaves the archive root."""
    if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target):
        return True
    base = posixpath.dirname(member_name) if relative_to_member else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    return resolved == ".." or resolved.startswith("../")


def _is_tar(path: Path) -> bool:
    return path.name.lower().endswith(_TAR_SUFFIXES)


def _looks_like_zip(path: Path) -> bool:
    """Named .zip or starting with a zip header, though ``zipfile`` finds no archive in it (cut short)."""
    if path.suffix.lower() == ".zip":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


# Open zip handles per process (a handle inherited through fork shares its file offset).
_ZIP_CACHE: dict[tuple[int, str], zipfile.ZipFile] = {}


def _zip_handle(path: str) -> zipfile.ZipFile:
    key = (os.getpid(), path)
    if key not in _ZIP_CACHE:
        _ZIP_CACHE[key] = zipfile.ZipFile(path)
    return _ZIP_CACHE[key]


@dataclass
class Sources:
    """The user's downloads as one read-only file tree per source.

    ``kinds[i]`` is ``"dir"`` (a folder, or a tar unpacked into staging) or ``"zip"``;
    ``roots[i]`` is the folder or the zip file; ``origins[i]`` is what the user passed.
    """

    roots: list[Path]
    kinds: list[str]
    origins: list[Path]
    staged: list[bool]
    members: list[Member] = field(default_factory=list)
    _unpacked: set[Member] = field(default_factory=set)

    def stage(self, members: Iterable[Member]) -> None:
        """Unpack these members of tar sources into staging (one pass per archive); no-op otherwise."""
        by_src: dict[int, set[str]] = {}
        for m in members:
            if self.staged[m.src] and m not in self._unpacked:
                by_src.setdefault(m.src, set()).add(m.name)
        for src, names in by_src.items():
            _extract_tar(self.origins[src], self.roots[src], names.__contains__, check=False)
            self._unpacked.update(Member(src, n) for n in names)

    def read(self, m: Member) -> bytes:
        """The bytes of a member; an empty file is a DataError naming it."""
        if self.kinds[m.src] == "zip":
            data = _zip_handle(str(self.roots[m.src])).read(m.name)
        else:
            data = (self.roots[m.src] / m.name).read_bytes()
        if not data:
            raise DataError(f"{self.describe(m)}: file is empty (0 bytes); re-download the dataset")
        return data

    def local_path(self, m: Member) -> Path | None:
        """The member's path on disk when it is a plain file there (folder or staged tar)."""
        return self.roots[m.src] / m.name if self.kinds[m.src] == "dir" else None

    def describe(self, m: Member) -> str:
        """``archive.zip:member`` or the file path, for error messages."""
        if self.kinds[m.src] == "dir" and not self.staged[m.src]:
            return str(self.roots[m.src] / m.name)
        return f"{self.origins[m.src]}:{m.name}"

    def find(self, pattern: str | re.Pattern[str]) -> list[tuple[re.Match[str], Member]]:
        """Members whose name matches ``pattern`` (``re.search``), sorted by name."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        hits = []
        for mem in sorted(self.members, key=lambda m: (m.name, m.src)):
            mt = rx.search(mem.name)
            if mt:
                hits.append((mt, mem))
        return hits

    @classmethod
    def none(cls) -> Sources:
        """No downloads at all (a converter that generates its samples)."""
        return cls([], [], [], [])

    def reader(self) -> Sources:
        """A copy without the member index, cheap to send to worker processes."""
        return Sources(self.roots, self.kinds, self.origins, self.staged)

    def get(self, name: str) -> Member | None:
        """The first member called ``name`` (in source order), or None."""
        return next((m for m in self.members if m.name == name), None)

    def origin_list(self) -> str:
        return ", ".join(str(p) for p in self.origins)


def _list_zip(path: Path) -> list[str]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip archive ({e}); re-download it") from None
    names = []
    with zf:
        for info in zf.infolist():
            why = _unsafe_reason(info.filename)
            if why:
                raise DataError(f"{path}: unsafe archive member {info.filename!r} ({why}); refusing to read it")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "replace")
                if _link_escapes(info.filename, target, True):
                    raise DataError(
                        f"{path}: archive member {info.filename!r} is a link to {target!r} outside the archive; "
                        "refusing to read it"
                    )
                continue  # links inside the archive are not followed
            if not info.is_dir():
                names.append(info.filename)
    return names


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path)
    except (tarfile.TarError, OSError) as e:
        # tarfile lists each compression it tried on a line of its own: one line says the same
        why = "no tar, gzip, bzip2 or xz header" if "\n" in str(e) else str(e)
        raise DataError(f"{path}: not a readable tar archive ({why}); re-download it") from None


def _extract_tar(path: Path, dest: Path, pick: Callable[[str], bool], check: bool) -> list[str]:
    """One pass over a tar: with ``check``, reject unsafe members; unpack regular files that
    ``pick`` selects into ``dest``; return the names of all regular files."""
    names = []
    dest_resolved = dest.resolve()
    with _open_tar(path) as tf:
        try:
            for m in tf:
                if check:
                    why = _unsafe_reason(m.name)
                    if why:
                        raise DataError(f"{path}: unsafe archive member {m.name!r} ({why}); refusing to unpack it")
                    why = _special_tar_member(m)
                    if why:
                        raise DataError(f"{path}: unsafe archive member {m.name!r} ({why}); refusing to unpack it")
                    if m.issym() and _link_escapes(m.name, m.linkname, True):
                        raise DataError(
                            f"{path}: archive member {m.name!r} is a link to {m.linkname!r} outside the archive; "
                            "refusing to unpack it"
                        )
                if not m.isfile():
                    continue  # links inside the archive are not followed
                names.append(m.name)
                if not pick(m.name):
                    continue
                target = (dest / m.name).resolve()
                if dest_resolved not in target.parents:  # belt and braces after the name checks
                    raise DataError(f"{path}: archive member {m.name!r} would land outside {dest}")
                fobj = tf.extractfile(m)
                if fobj is None:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as fh:
                    shutil.copyfileobj(fobj, fh)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise DataError(f"{path}: tar archive is truncated or corrupt ({e}); re-download it") from None
    return names


def open_sources(
    paths: Iterable[str | os.PathLike],
    out: Path,
    expected: str,
    want: Callable[[str], bool] | None = None,
) -> Sources:
    """Index the user's downloads. ``expected`` names the files and where they are published.

    Tar archives are scanned once here (unsafe members are rejected) and only the members that
    ``want(name)`` selects (small metadata the converter reads at once) are unpacked; the samples'
    files are unpacked later by :meth:`Sources.stage`. Zips and folders are read in place.
    """
    want = want or (lambda _n: False)
    out_is_free(Path(out))  # refuse a foreign --out folder before unpacking anything into it
    srcs = Sources([], [], [], [])
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError(f"no source given; expected {expected}")
    for i, p in enumerate(paths):
        if not p.exists():
            raise DataError(f"{p}: not found; expected {expected}")
        if p.is_dir():
            names = [q.relative_to(p).as_posix() for q in p.rglob("*") if q.is_file()]
            srcs.roots.append(p)
            srcs.kinds.append("dir")
            srcs.staged.append(False)
        elif zipfile.is_zipfile(p):
            names = _list_zip(p)
            srcs.roots.append(p)
            srcs.kinds.append("zip")
            srcs.staged.append(False)
        elif _is_tar(p) or tarfile.is_tarfile(p):
            dest = out / STAGING / f"{i}-{p.name}"
            if dest.exists():
                shutil.rmtree(dest)
            names = _extract_tar(p, dest, want, check=True)
            srcs.roots.append(dest)
            srcs.kinds.append("dir")
            srcs.staged.append(True)
        elif _looks_like_zip(p):
            raise DataError(f"corrupt or truncated zip archive: {p}; re-download it")
        else:
            raise DataError(f"{p}: neither a folder nor a .zip/.tar/.tgz archive; expected {expected}")
        srcs.origins.append(p)
        srcs.members.extend(Member(i, n) for n in names)
        if srcs.staged[i]:
            srcs._unpacked.update(Member(i, n) for n in names if want(n))
    return srcs


def require(hits: list, what: str, srcs: Sources, expected: str) -> None:
    """A DataError saying what was looked for and which download holds it, when ``hits`` is empty."""
    if not hits:
        raise DataError(f"{srcs.origin_list()}: no {what} found; expected {expected}")


def out_is_free(root: Path) -> bool:
    """True when ``root`` is missing or empty (ignoring our staging folder); DataError when it holds
    files that are neither a segcli dataset nor an unfinished conversion."""
    require_folder(root)
    if not root.exists() or all(p.name == STAGING for p in root.iterdir()):
        return True
    if not (root / DATASET_FILE).is_file() and not (root / MARKER).is_file():
        raise DataError(f"{root}: folder exists, is not empty and is not a segcli dataset; choose another --out")
    return False
