"""Write converted samples in the segcli format: :func:`run_conversion`.

Samples are written by a process pool (or inline), samples already written are skipped (``force``
redoes them), unchanged images are copied or hard-linked, then ``dataset.toml`` is written and the
result validated. Every worker returns the per-class pixel counts of the mask it wrote, so the
summary needs no second decode of the dataset; a sample skipped on a re-run has its (already
converted) mask read once instead. Progress is a callback, ``progress(n_done, total)``.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.decode import TIFF_EXTS, decode_image, image_size
from segcli.data.format import (
    DATASET_FILE,
    DatasetIndex,
    DatasetInfo,
    read_dataset_info,
    validate_dataset,
    write_channel_stats,
    write_dataset_info,
)
from segcli.data.io import read_mask, write_image, write_mask
from segcli.data.lint import Finding, lint_index
from segcli.data.prepare.sources import MARKER, STAGING, Member, Sources, out_is_free
from segcli.data.stats import channel_stats, summary_dict
from segcli.errors import DataError, arg
from segcli.extras import package_available
from segcli.io_utils import atomic_write_bytes, atomic_write_text

_COPY_EXTS = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png"}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Sample:
    """One output pair: ``image`` is copied (or given to ``image_fn``), ``label`` goes to ``mask_fn``.

    ``image`` is None for generated samples; ``label`` may be a member, a tuple of members, or None;
    ``extra`` is free for the converter.
    """

    split: str
    stem: str
    image: Member | None
    label: Any = None
    extra: Any = None


MaskFn = Callable[[Sources, Sample, Any], np.ndarray]
ImageFn = Callable[[Sources, Sample, Any], "np.ndarray | None"]


@dataclass(frozen=True)
class PrepareResult:
    """What a conversion did: images per split, pairs written/skipped/linked, pixels per class."""

    root: Path
    counts: dict[str, int]
    written: int
    skipped: int
    linked: int
    name: str = ""
    classes: tuple[str, ...] = ()
    pixel_counts: tuple[int, ...] = field(default=())
    warnings: tuple[str, ...] = ()  # what the closing checks of `seg check` found worth a look, one line each

    def summary_extra(self) -> dict[str, int]:
        return {"written": self.written, "skipped": self.skipped, "linked": self.linked}

    def summary(self) -> dict[str, Any]:
        """Name, images per split and pixel share per class, from the counts gathered while writing."""
        return summary_dict(self.name, self.root, self.classes, self.counts, np.asarray(self.pixel_counts))


@dataclass(frozen=True)
class Decoding:
    """How a converter turns one sample's sources into arrays.

    ``mask_fn(sources, sample, params)`` returns the id mask; ``image_fn`` (optional) returns an RGB image to
    write (as ``image_ext``) instead of copying the source image. Both run in worker processes when there are
    several workers, so they must be picklable (module-level functions or methods of module-level objects).
    """

    mask_fn: MaskFn
    params: Any = None
    image_fn: ImageFn | None = None
    image_ext: str = ".png"


@dataclass(frozen=True)
class WriteOptions:
    """How `seg prepare` writes: ``force`` replaces a dataset prepared with other settings and rewrites samples
    already written, ``link`` hard-links source images instead of copying them, ``workers`` processes,
    ``validate_masks`` masks per split read back by the final check (None: all)."""

    force: bool = False
    link: bool = False
    workers: int = 1
    validate_masks: int | None = 16


@dataclass(frozen=True)
class _Job:
    sources: Sources
    sample: Sample
    root: Path
    decoding: Decoding
    link: bool
    skip: bool
    num_classes: int


def _out_paths(root: Path, s: Sample, ext: str) -> tuple[Path, Path]:
    return root / "images" / s.split / f"{s.stem}{ext}", root / "masks" / s.split / f"{s.stem}.png"


def _image_ext(s: Sample, image_fn: ImageFn | None, image_ext: str) -> str:
    if image_fn is not None or s.image is None:
        return image_ext
    return _copied_ext(s.image.name) or ".png"


def _copied_ext(name: str) -> str | None:
    """The extension a source image is copied under as it is (JPEG, PNG; a TIFF when tifffile can read it: every
    channel and bit depth of multispectral data kept), or None when it is converted to an RGB PNG."""
    ext = posixpath.splitext(name)[1].lower()
    if ext in TIFF_EXTS and package_available("tifffile"):
        return ".tif"
    return _COPY_EXTS.get(ext)


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


def class_counts(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels per class id 0..num_classes-1 (ignore and other values excluded)."""
    return np.bincount(mask.ravel(), minlength=num_classes)[:num_classes].astype(np.int64)


def _copy_image(job: _Job, data: bytes, img_out: Path) -> int:
    """Put the source image at ``img_out`` unchanged (linked on request); 1 when linked."""
    srcs, member = job.sources, job.sample.image
    assert member is not None
    local = srcs.local_path(member)
    if job.link and local is not None and not srcs.staged[member.src]:
        return int(_link_or_copy(local, img_out))
    if job.link and local is not None:
        # Staged tar files are deleted afterwards: a hard link survives that, a symlink would not.
        img_out.parent.mkdir(parents=True, exist_ok=True)
        img_out.unlink(missing_ok=True)
        try:
            os.link(local, img_out)
            return 1
        except OSError:
            pass
    elif img_out.is_symlink():
        img_out.unlink()  # never write through a link into the user's download
    atomic_write_bytes(img_out, data)
    return 0


def _process(job: _Job) -> tuple[int, int, np.ndarray]:
    """Write one sample (or count a skipped one); returns (written, linked, pixels per class)."""
    s, srcs = job.sample, job.sources
    dec = job.decoding
    img_out, mask_out = _out_paths(job.root, s, _image_ext(s, dec.image_fn, dec.image_ext))
    if job.skip:
        return 0, 0, class_counts(read_mask(mask_out), job.num_classes)
    mask = dec.mask_fn(srcs, s, dec.params)
    image = dec.image_fn(srcs, s, dec.params) if dec.image_fn is not None else None
    data = b""
    if image is not None:
        shape = image.shape[:2]
    elif s.image is None:
        raise DataError(f"{s.split}/{s.stem}: the converter gave no image for a generated sample")
    else:
        data = srcs.read(s.image)
        shape = image_size(data, srcs.describe(s.image))
        if _copied_ext(s.image.name) is None:
            image = decode_image(data, srcs.describe(s.image))
    if tuple(shape) != tuple(mask.shape):
        where = srcs.describe(s.image) if s.image is not None else f"{s.split}/{s.stem}"
        raise DataError(
            f"{where}: image is {shape[1]}x{shape[0]} but its label is "
            f"{mask.shape[1]}x{mask.shape[0]}; image and label must have the same size"
        )
    write_mask(mask_out, mask)
    linked = 0
    if image is not None:
        write_image(img_out, image)
    else:
        linked = _copy_image(job, data, img_out)
    return 1, linked, class_counts(mask, job.num_classes)


def _check_out(root: Path, info: DatasetInfo, settings: dict[str, Any], force: bool) -> bool:
    """Refuse to write into a folder holding something else, or made with other settings.

    True when ``root`` is new (or empty); False when it holds this dataset, whole or unfinished.
    """
    if out_is_free(root):
        return True
    if (root / DATASET_FILE).is_file():
        have = read_dataset_info(root)
        if have.name != info.name:
            raise DataError(f"{root}: holds dataset {have.name!r}; choose another --out folder")
        had = have.extra.get("prepare", {})
    else:
        try:
            had = json.loads((root / MARKER).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            had = {}
        if had.get("converter") != info.name:
            raise DataError(f"{root}: holds an unfinished {had.get('converter')!r} conversion; choose another --out")
        if _wrote_nothing(root):  # the progress file of a run stopped before any output: no settings to keep
            return True
    if had != settings and not force:
        raise DataError(
            f"{root}: was prepared with other settings {had}; pass {arg('force')} to redo it "
            "or choose another --out folder"
        )
    return False


def _wrote_nothing(root: Path) -> bool:
    """True when ``root`` holds a conversion's progress file and no output of it (a run stopped, or refused, before
    its first sample): nothing else, no file under ``images/`` or ``masks/``."""
    if not (root / MARKER).is_file() or any(p.name not in (MARKER, STAGING, "images", "masks") for p in root.iterdir()):
        return False
    return not any(p.is_file() for kind in ("images", "masks") for p in (root / kind).rglob("*"))


def _remove_stale(root: Path, samples: list[Sample], image_fn: ImageFn | None, image_ext: str) -> int:
    """Delete the files under ``images/`` and ``masks/`` that no sample of this conversion writes
    (a re-run with fewer samples, temp files of an interrupted one); empty split folders go too."""
    keep = {p for s in samples for p in _out_paths(root, s, _image_ext(s, image_fn, image_ext))}
    removed = 0
    for kind in ("images", "masks"):
        for split_dir in sorted((root / kind).iterdir()) if (root / kind).is_dir() else []:
            if not split_dir.is_dir():
                continue
            for f in split_dir.iterdir():
                if f not in keep and (f.is_file() or f.is_symlink()):
                    f.unlink()
                    removed += 1
            if not any(split_dir.iterdir()):
                split_dir.rmdir()
    return removed


def _check_unique(samples: list[Sample], sources: Sources) -> None:
    seen: dict[tuple[str, str], Sample] = {}
    for s in samples:
        key = (s.split, s.stem)
        if key in seen:
            a = sources.describe(s.image) if s.image else f"{s.split}/{s.stem}"
            b = sources.describe(seen[key].image) if seen[key].image else a
            raise DataError(f"{a} and {b}: both would be written as {s.split}/{s.stem}; remove one of them")
        seen[key] = s


def _run_jobs(jobs: list[_Job], workers: int, progress: Progress | None) -> tuple[int, int, np.ndarray]:
    """Run the jobs inline or in a pool; the totals of (written, linked, pixels per class)."""
    total = len(jobs)
    written = linked = 0
    pixels = np.zeros(jobs[0].num_classes if jobs else 0, np.int64)
    if progress:
        progress(0, total)

    def add(res: tuple[int, int, np.ndarray]) -> None:
        nonlocal written, linked, pixels
        written, linked, pixels = written + res[0], linked + res[1], pixels + res[2]
        if progress:
            progress(1, total)

    if workers <= 1:
        for job in jobs:
            add(_process(job))
        return written, linked, pixels
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: set[Future] = {pool.submit(_process, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                exc = f.exception()
                if exc is not None:
                    for p in pending:
                        p.cancel()
                    raise exc
                add(f.result())
    return written, linked, pixels


def record_channel_stats(root: Path) -> bool:
    """For TIFF images (multispectral, 16-bit, float: read by tifffile when it is installed), record their channel
    count and per-channel mean/std (of the train split) in dataset.toml as `seg check --stats` does, so
    ``model.mean``/``std`` = "auto" normalise N-channel data by its own statistics. RGB datasets: nothing."""
    index = DatasetIndex.scan(root)
    split = "train" if "train" in index.names else index.names[0]
    if not package_available("tifffile") or not any(p.suffix.lower() in TIFF_EXTS for p, _ in index.pairs(split)):
        return False
    write_channel_stats(root, *channel_stats(index, split))
    return True


def run_conversion(
    out: str | os.PathLike,
    info: DatasetInfo,
    samples: list[Sample],
    sources: Sources,
    decoding: Decoding | MaskFn,
    write: WriteOptions = WriteOptions(),
    settings: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> PrepareResult:
    """Write ``samples`` to ``out`` in the segcli format, then ``dataset.toml``, then validate.

    ``decoding`` says how each sample becomes arrays (a bare mask function: labels decoded by it, images
    copied). ``settings`` (what changes the output) is stored in ``dataset.toml`` under ``prepare``; a re-run
    with other settings needs ``write.force``.
    """
    dec = decoding if isinstance(decoding, Decoding) else Decoding(decoding)
    force = write.force
    root = Path(out)
    settings = {"converter": info.name, **(settings or {})}
    fresh = False
    try:
        fresh = _check_out(root, info, settings, force)
        if not samples:
            raise DataError(f"{sources.origin_list() or root}: nothing to convert (no image/label pairs found)")
        _check_unique(samples, sources)
        root.mkdir(parents=True, exist_ok=True)
        if not (root / DATASET_FILE).is_file():
            atomic_write_text(root / MARKER, json.dumps(settings))
        skip = [not force and _done(root, s, dec.image_fn, dec.image_ext) for s in samples]
        sources.stage(m for s, sk in zip(samples, skip) if not sk for m in _sample_members(s))
        reader = sources.reader()
        jobs = [_Job(reader, s, root, dec, write.link, sk, info.num_classes) for s, sk in zip(samples, skip)]
        written, linked, pixels = _run_jobs(jobs, write.workers, progress)
        if not fresh:
            _remove_stale(root, samples, dec.image_fn, dec.image_ext)
        write_dataset_info(root, _with_settings(info, settings))
        (root / MARKER).unlink(missing_ok=True)
        validate_dataset(root, sample_masks=write.validate_masks)
        record_channel_stats(root)
        warnings = check_written(root)
    except DataError:
        if fresh:  # a settings or data problem in a new folder: leave nothing to refuse the corrected command
            _discard(root)
        raise
    finally:
        if (root / STAGING).exists():
            shutil.rmtree(root / STAGING, ignore_errors=True)
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.split] = counts.get(s.split, 0) + 1
    pixel_counts = tuple(int(v) for v in pixels)
    return PrepareResult(
        root, counts, written, len(samples) - written, linked, info.name, info.classes, pixel_counts, warnings
    )


CHECK_SAMPLE = 64  # masks per split that the closing pixel checks read back (those of `seg check`)


def check_written(root: Path, sample: int | None = CHECK_SAMPLE) -> tuple[str, ...]:
    """The pixel checks of `seg check` over a sample of the masks just written; the warnings, one line each.

    A failed check (0/255 masks whose foreground became ``ignore_index``, colour masks, values past the classes)
    or masks that hold no class at all, only ``ignore_index`` (the values did not become the classes) is a
    DataError naming the fix, and the dataset is removed first, so that nothing trains on it and the corrected
    command runs as it is (no ``dataset.toml`` nor progress file from other settings is left to refuse it).
    """
    index = DatasetIndex.scan(root)
    findings = lint_index(index, sample=sample)
    errors = [f for f in findings if f.severity == "error"]
    message = errors[0].one_line() if errors else _no_class(index, findings)
    if message:
        _discard(root)
        raise DataError(f"{root}: the written masks fail the checks of seg check: {message}; the dataset was removed")
    return tuple(f.one_line() for f in findings)


def _no_class(index: DatasetIndex, findings: list[Finding]) -> str:
    """The problem when the masks read hold no class at all in any split, only ``ignore_index`` (else "")."""
    n, missing = index.info.num_classes, {f.split: f.count for f in findings if f.code == "class-missing"}
    if any(missing.get(split, 0) < n for split in index.names):
        return ""
    return (
        f"the masks read hold none of the {n} classes, only ignore_index {index.info.ignore_index}; fix: "
        "seg prepare folder --binary for 0/255 masks, --colors FILE for colour masks, or --ignore-index"
    )


def _discard(root: Path) -> None:
    """Remove what a conversion wrote into ``root`` (and ``root`` when that leaves it empty)."""
    for kind in ("images", "masks"):
        shutil.rmtree(root / kind, ignore_errors=True)
    for name in (DATASET_FILE, MARKER):
        (root / name).unlink(missing_ok=True)
    if root.is_dir() and not any(p.name != STAGING for p in root.iterdir()):
        shutil.rmtree(root, ignore_errors=True)


def _done(root: Path, s: Sample, image_fn: ImageFn | None, image_ext: str) -> bool:
    return all(p.exists() for p in _out_paths(root, s, _image_ext(s, image_fn, image_ext)))


def _sample_members(s: Sample) -> list[Member]:
    """Every source member a sample reads: its image and its label(s)."""
    found = []
    stack = [s.image, s.label, s.extra]
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
