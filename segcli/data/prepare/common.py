"""What every `seg prepare` converter shares: reading downloads, decoding labels, writing the format.

* :class:`Sources` reads what the user downloaded (folders, ``.zip``, ``.tar``/``.tgz``) through one
  interface. Nothing is extracted outside the output folder: zip members are read in place, tar
  members that samples need are unpacked into ``<out>/.prepare-tmp/`` (removed when done). Archive
  members with absolute paths, ``..`` parts or links that point outside the archive are rejected.
* :func:`run_conversion` writes the samples (process pool, rich progress bar on stderr), skips
  samples already written (``force`` redoes them), hard-links unchanged images on request, then
  writes ``dataset.toml`` and validates the result.
* Small decoders: :func:`decode_ids` (grey or palette-index PNGs), :func:`decode_rgb`,
  :func:`colors_to_ids`, :func:`lut_map`.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.data.format import DATASET_FILE, DatasetInfo, read_dataset_info, validate_dataset, write_dataset_info
from segcli.data.io import write_image, write_mask
from segcli.errors import DataError
from segcli.io_utils import atomic_write_bytes, atomic_write_text

STAGING = ".prepare-tmp"
MARKER = ".prepare-progress.json"
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_COPY_EXTS = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png"}


# --------------------------------------------------------------------------------------------- sources


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


def _link_escapes(member_name: str, target: str, relative_to_member: bool) -> bool:
    """True when a link target leaves the archive root."""
    if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target):
        return True
    base = posixpath.dirname(member_name) if relative_to_member else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    return resolved == ".." or resolved.startswith("../")


def _is_tar(path: Path) -> bool:
    return path.name.lower().endswith(_TAR_SUFFIXES)


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
        raise DataError(f"{path}: not a readable tar archive ({e}); re-download it") from None


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
                    if (m.issym() or m.islnk()) and _link_escapes(m.name, m.linkname, m.issym()):
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
    _out_is_free(Path(out))  # refuse a foreign --out folder before unpacking anything into it
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


# --------------------------------------------------------------------------------------------- decoding


def is_palette_png(data: bytes) -> bool:
    # PNG signature, then the IHDR chunk: colour type is byte 25 (3 = indexed colour).
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[25] == 3


def decode_ids(data: bytes, where: str) -> np.ndarray:
    """Decode a label image whose pixel values are ids: grey PNGs, palette PNGs (the index, not
    the colour) and 3-channel PNGs whose channels are equal. Colour labels are a DataError."""
    if is_palette_png(data):
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im, dtype=np.uint8).copy()
        except OSError as e:
            raise DataError(f"{where}: cannot decode label ({e})") from None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError(f"{where}: cannot decode label (corrupt or unsupported format)")
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DataError(f"{where}: label is a colour image; it needs a colour table (e.g. --colors FILE)")
        arr = np.ascontiguousarray(arr[..., 0])
    if arr.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{where}: label dtype {arr.dtype} unsupported; expected 8- or 16-bit ids")
    return arr


def decode_rgb(data: bytes, where: str) -> np.ndarray:
    """Decode any image to RGB uint8 (H, W, 3); palette PNGs give their colours."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise DataError(f"{where}: cannot decode image (corrupt or unsupported format)")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def image_size(data: bytes, where: str) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{where}: cannot read image ({e}); re-download it") from None
    return h, w


def lut_map(raw: np.ndarray, table: dict[int, int], default: int = 255) -> np.ndarray:
    """Map raw ids through ``table``; ids not in it become ``default``. Output uint8 (uint16 if needed)."""
    size = 65536 if raw.dtype == np.uint16 else 256
    top = max([default, *table.values()])
    lut = np.full(size, default, np.uint16 if top > 255 else np.uint8)
    for k, v in table.items():
        if 0 <= k < size:
            lut[k] = v
    return lut[raw]


def colors_to_ids(
    rgb: np.ndarray, colors: list[tuple[int, int, int]] | list[list[int]], where: str, unknown: int | None = None
) -> np.ndarray:
    """Map an RGB label to ids: colour ``colors[i]`` → ``i``. Other colours become ``unknown``, or are
    a DataError naming the colour when ``unknown`` is None."""
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2].astype(np.int32)
    table = np.array([(r << 16) | (g << 8) | b for r, g, b in colors], np.int64)
    order = np.argsort(table, kind="stable")
    sorted_keys = table[order]
    pos = np.clip(np.searchsorted(sorted_keys, key), 0, len(sorted_keys) - 1)
    found = sorted_keys[pos] == key
    ids = order[pos]
    if not found.all():
        if unknown is None:
            k = int(key[~found][0])
            raise DataError(
                f"{where}: colour ({k >> 16}, {(k >> 8) & 255}, {k & 255}) is not in the colour table "
                f"({int((~found).sum())} pixels); add it to the table"
            )
        ids = np.where(found, ids, unknown)
    dtype = np.uint16 if max(len(colors) - 1, unknown or 0) > 255 else np.uint8
    return ids.astype(dtype)


# --------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Sample:
    """One output pair: ``image`` is copied (or given to ``image_fn``), ``label`` goes to ``mask_fn``.

    ``label`` may be a member, a tuple of members, or None; ``extra`` is free for the converter.
    """

    split: str
    stem: str
    image: Member
    label: Any = None
    extra: Any = None


def paired_samples(
    anns: dict[tuple[str, str], Any],
    images: dict[tuple[str, str], Any],
    image_hint: Callable[[tuple[str, str]], str],
    srcs: Sources,
    expected: str,
) -> list[Sample]:
    """One Sample per (split, stem) label, sorted; a label without its image is a DataError naming it."""
    missing = sorted(k for k in anns if k not in images)
    if missing:
        require([], f"{image_hint(missing[0])} ({len(missing)} missing)", srcs, expected)
    return [Sample(split, stem, images[(split, stem)], mem) for (split, stem), mem in sorted(anns.items())]


def decode_checked_ids(srcs: Sources, s: Sample, num_classes: int, dataset: str, ignore: int = 255) -> np.ndarray:
    """A label already stored as ids: values outside [0, num_classes) and ``ignore`` are a DataError."""
    where = srcs.describe(s.label)
    ids = decode_ids(srcs.read(s.label), where)
    bad = np.unique(ids[(ids >= num_classes) & (ids != ignore)])
    if bad.size:
        raise DataError(
            f"{where}: values {bad[:8].tolist()} are not {dataset} class ids 0..{num_classes - 1} nor {ignore}"
        )
    return ids.astype(np.uint8)


MaskFn = Callable[[Sources, Sample, Any], np.ndarray]
ImageFn = Callable[[Sources, Sample, Any], "np.ndarray | None"]


@dataclass(frozen=True)
class PrepareResult:
    """What a conversion did: images per split, and how many pairs were written, skipped, linked."""

    root: Path
    counts: dict[str, int]
    written: int
    skipped: int
    linked: int

    def summary_extra(self) -> dict[str, int]:
        return {"written": self.written, "skipped": self.skipped, "linked": self.linked}


@dataclass(frozen=True)
class _Job:
    sources: Sources
    sample: Sample
    root: Path
    mask_fn: MaskFn
    image_fn: ImageFn | None
    params: Any
    force: bool
    link: bool


def _out_paths(root: Path, s: Sample, ext: str) -> tuple[Path, Path]:
    return root / "images" / s.split / f"{s.stem}{ext}", root / "masks" / s.split / f"{s.stem}.png"


def _image_ext(s: Sample, image_fn: ImageFn | None) -> str:
    if image_fn is not None:
        return ".png"
    return _COPY_EXTS.get(posixpath.splitext(s.image.name)[1].lower(), ".png")


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` to ``dst`` (symlink when hard links are impossible); True when linked."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
        return True
    except OSError:
        pass
    try:
        os.symlink(src.resolve(), dst)
        return True
    except OSError:
        return False


def _process(job: _Job) -> tuple[int, int]:
    """Write one sample; returns (written, linked). Runs in a worker process."""
    s, srcs = job.sample, job.sources
    ext = _image_ext(s, job.image_fn)
    img_out, mask_out = _out_paths(job.root, s, ext)
    if not job.force and img_out.exists() and mask_out.exists():
        return 0, 0
    mask = job.mask_fn(srcs, s, job.params)
    linked = 0
    image = job.image_fn(srcs, s, job.params) if job.image_fn is not None else None
    if image is not None:
        shape = image.shape[:2]
    else:
        data = srcs.read(s.image)
        shape = image_size(data, srcs.describe(s.image))
        if posixpath.splitext(s.image.name)[1].lower() not in _COPY_EXTS:
            image = decode_rgb(data, srcs.describe(s.image))
    if tuple(shape) != tuple(mask.shape):
        raise DataError(
            f"{srcs.describe(s.image)}: image is {shape[1]}x{shape[0]} but its label is "
            f"{mask.shape[1]}x{mask.shape[0]}; image and label must have the same size"
        )
    write_mask(mask_out, mask)
    if image is not None:
        write_image(img_out, image)
    else:
        local = srcs.local_path(s.image)
        if job.link and local is not None and not srcs.staged[s.image.src] and _link_or_copy(local, img_out):
            linked = 1
        elif job.link and local is not None and srcs.staged[s.image.src]:
            # Staged tar files are deleted afterwards: a hard link survives that, a symlink would not.
            img_out.parent.mkdir(parents=True, exist_ok=True)
            if img_out.exists():
                img_out.unlink()
            try:
                os.link(local, img_out)
                linked = 1
            except OSError:
                atomic_write_bytes(img_out, data)
        else:
            if img_out.is_symlink():
                img_out.unlink()  # never write through a link into the user's download
            atomic_write_bytes(img_out, data)
    return 1, linked


def _out_is_free(root: Path) -> bool:
    """True when ``root`` is missing or empty (ignoring our staging folder); DataError when it holds
    files that are neither a segcli dataset nor an unfinished conversion."""
    if not root.exists() or all(p.name == STAGING for p in root.iterdir()):
        return True
    if not root.is_dir():
        raise DataError(f"{root}: exists and is not a folder; choose another --out")
    if not (root / DATASET_FILE).is_file() and not (root / MARKER).is_file():
        raise DataError(f"{root}: folder exists, is not empty and is not a segcli dataset; choose another --out")
    return False


def _check_out(root: Path, info: DatasetInfo, settings: dict[str, Any], force: bool) -> None:
    """Refuse to write into a folder holding something else, or made with other settings."""
    if _out_is_free(root):
        return
    if (root / DATASET_FILE).is_file():
        have = read_dataset_info(root)
        if have.name != info.name:
            raise DataError(f"{root}: holds dataset {have.name!r}; choose another --out folder")
        had = have.extra.get("prepare", {})
    elif (root / MARKER).is_file():
        try:
            had = json.loads((root / MARKER).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            had = {}
        if had.get("converter") != info.name:
            raise DataError(f"{root}: holds an unfinished {had.get('converter')!r} conversion; choose another --out")
    if had != settings and not force:
        raise DataError(
            f"{root}: was prepared with other settings {had}; pass --force to redo it or choose another --out folder"
        )


def run_conversion(
    out: str | os.PathLike,
    info: DatasetInfo,
    samples: list[Sample],
    sources: Sources,
    mask_fn: MaskFn,
    params: Any = None,
    image_fn: ImageFn | None = None,
    settings: dict[str, Any] | None = None,
    force: bool = False,
    link: bool = False,
    workers: int = 1,
    progress: bool = False,
    validate_masks: int | None = 16,
) -> PrepareResult:
    """Write ``samples`` to ``out`` in the segcli format, then ``dataset.toml``, then validate.

    ``mask_fn(sources, sample, params)`` returns the id mask; ``image_fn`` (optional) returns an
    RGB image to write instead of copying the source image. Both run in worker processes when
    ``workers > 1`` and so must be module-level functions. ``settings`` (what changes the output)
    is stored in ``dataset.toml`` under ``prepare``; a re-run with other settings needs ``force``.
    """
    root = Path(out)
    settings = {"converter": info.name, **(settings or {})}
    try:
        _check_out(root, info, settings, force)
        if not samples:
            raise DataError(f"{sources.origin_list()}: nothing to convert (no image/label pairs found)")
        seen: dict[tuple[str, str], Sample] = {}
        for s in samples:
            key = (s.split, s.stem)
            if key in seen:
                raise DataError(
                    f"{sources.describe(s.image)} and {sources.describe(seen[key].image)}: both would be written as "
                    f"{s.split}/{s.stem}; remove one of them"
                )
            seen[key] = s
        root.mkdir(parents=True, exist_ok=True)
        if not (root / DATASET_FILE).is_file():
            atomic_write_text(root / MARKER, json.dumps(settings))
        todo = [s for s in samples if force or not _done(root, s, image_fn)]
        sources.stage(m for s in todo for m in _sample_members(s))
        reader = sources.reader()
        jobs = [_Job(reader, s, root, mask_fn, image_fn, params, force, link) for s in todo]
        written = linked = 0
        with _progress_bar(progress, f"{info.name}", len(jobs)) as advance:
            if workers <= 1:
                for job in jobs:
                    w, lk = _process(job)
                    written, linked = written + w, linked + lk
                    advance()
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    futures = [pool.submit(_process, job) for job in jobs]
                    pending = set(futures)
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in done:
                            exc = f.exception()
                            if exc is not None:
                                for p in pending:
                                    p.cancel()
                                raise exc
                            w, lk = f.result()
                            written, linked = written + w, linked + lk
                            advance()
        write_dataset_info(root, _with_settings(info, settings))
        (root / MARKER).unlink(missing_ok=True)
        validate_dataset(root, sample_masks=validate_masks)
    finally:
        if (root / STAGING).exists():
            shutil.rmtree(root / STAGING, ignore_errors=True)
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.split] = counts.get(s.split, 0) + 1
    return PrepareResult(root, counts, written, len(samples) - written, linked)


def _done(root: Path, s: Sample, image_fn: ImageFn | None) -> bool:
    return all(p.exists() for p in _out_paths(root, s, _image_ext(s, image_fn)))


def _sample_members(s: Sample) -> list[Member]:
    """Every source member a sample reads: its image and its label(s)."""
    found = [s.image]
    stack = [s.label, s.extra]
    while stack:
        x = stack.pop()
        if isinstance(x, Member):
            found.append(x)
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
    return found


def _with_settings(info: DatasetInfo, settings: dict[str, Any]) -> DatasetInfo:
    extra = dict(info.extra)
    extra["prepare"] = settings
    return DatasetInfo(info.name, info.classes, info.palette, info.ignore_index, info.source, info.label_map, extra)


class _progress_bar:  # noqa: N801 - used as a context manager like a function
    """A rich progress bar on stderr; a no-op when disabled."""

    def __init__(self, enabled: bool, label: str, total: int) -> None:
        self.enabled, self.label, self.total = enabled, label, total

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._p.__enter__()
        task = self._p.add_task(f"converting {self.label}", total=self.total)
        return lambda: self._p.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._p.__exit__(*exc)


def parse_list_arg(text: str | None) -> list[str]:
    """``"a,b, c"`` → ``["a", "b", "c"]`` (empty items dropped)."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def load_mat(data: bytes, where: str) -> dict[str, Any]:
    """Read a MATLAB ``.mat`` file with scipy (the optional ``mat`` extra); structs become objects."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(
            f"{where}: reading .mat annotations needs scipy; install it with `pip install segcli[mat]`"
        ) from None
    try:
        return loadmat(io.BytesIO(data), struct_as_record=False, squeeze_me=True)
    except (ValueError, TypeError, OSError, NotImplementedError) as e:
        raise DataError(f"{where}: cannot read .mat file ({e}); re-download it") from None


def assign_splits(
    keys: list[str],
    split_lists: dict[str, Path] | None,
    val_ratio: float,
    seed: int,
    key_of: Callable[[str], str] = lambda line: Path(line).stem,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Split sample keys by list files (``{"train": path, ...}``; one entry per line, mapped to a key
    by ``key_of``; keys in no list are left out) or by a seeded random ``val_ratio``.

    Returns (key → split, the settings to record).
    """
    known = set(keys)
    if split_lists:
        split_of: dict[str, str] = {}
        for split, path in split_lists.items():
            if not Path(path).is_file():
                raise DataError(f"{path}: split list for {split!r} not found")
            for line in Path(path).read_text(encoding="utf-8").split():
                k = key_of(line)
                if k not in known:
                    raise DataError(f"{path}: {line!r} matches no sample")
                split_of[k] = split
        return split_of, {"split_lists": {s: str(p) for s, p in split_lists.items()}}
    if not 0 <= val_ratio < 1:
        raise DataError(f"--val-ratio {val_ratio} must be in [0, 1)")
    order = sorted(keys)
    import random

    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_ratio)) if val_ratio > 0 and len(order) > 1 else 0
    return {k: "val" if i < n_val else "train" for i, k in enumerate(order)}, {"val_ratio": val_ratio, "seed": seed}
