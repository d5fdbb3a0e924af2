"""`seg check`: find the data problems that make a segmentation run go silently wrong.

Unlike :func:`segcli.data.format.validate_dataset`, which stops at the first problem, the lint
reads a folder that is *not* valid yet, file by file and defensively, and collects every problem
as a :class:`Finding` that names the files (first few and a count) and the command that fixes it:
palette or colour masks, 0/255 binary masks swallowed by ``ignore_index`` 255, raw Cityscapes
labelIds, values outside the classes, image/mask size mismatches, empty or unreadable files,
unpaired files and classes that never occur in a split.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from segcli.data.decode import inspect_mask, probe_image
from segcli.data.format import (
    DATASET_FILE,
    DatasetIndex,
    DatasetInfo,
    is_dataset_file,
    list_splits,
    read_dataset_info,
)
from segcli.data.io import IMAGE_EXTS
from segcli.errors import DataError

Severity = Literal["error", "warning"]

# Raw Cityscapes labelIds (0-33) that are common in every frame but are not trainIds 0-18 or
# map to a different class: road 7, sidewalk 8, building 11, vegetation 21, sky 23, car 26.
CITYSCAPES_TELLTALE_IDS = frozenset({7, 8, 11, 21, 23, 26})
MAX_FILES = 5  # files named per finding

FIXES = {
    "dataset-toml": "seg prepare <dataset> --out DIR (writes dataset.toml), or fix the key named in the message",
    "no-splits": "put images in images/<split>/ and masks in masks/<split>/ (or convert with seg prepare)",
    "empty-split": "add images to the split or remove its folder",
    "missing-masks-dir": "create masks/<split>/ with one <stem>.png per image (or convert with seg prepare)",
    "image-without-mask": "add the missing masks/<split>/<stem>.png or remove the images",
    "mask-without-image": "add the missing images/<split>/<stem>.<jpg|png> or remove the masks",
    "duplicate-stem": "rename or remove one of the images that share a stem",
    "mask-not-png": "masks must be lossless single-channel PNG: re-export them as PNG with seg prepare",
    "empty-file": "re-download or re-create the 0-byte files, or remove them with their pair",
    "broken-link": "point the links at the real files (ls -l shows where they lead), or remove them with their pair",
    "unreadable-file": "re-download or re-create the corrupt files, or remove them with their pair",
    "rgb-mask": "map colours to ids with seg prepare folder --colors FILE",
    "grey-rgb-mask": "re-save the masks single-channel (one channel of the grey values) with seg prepare folder",
    "palette-mask": "re-save the palette indices as single-channel ids with seg prepare folder "
    "(segcli reads the indices, other tools read the colours)",
    "binary-0-255": "seg prepare folder --binary (maps 255 to class 1 instead of ignore)",
    "cityscapes-label-ids": "seg prepare cityscapes (maps the 34 labelIds to the 19 trainIds)",
    "one-based-ids": "shift the ids down by one with 0 (unlabelled) -> ignore_index when converting "
    "(seg prepare <dataset>, e.g. ade20k or loveda), or add the unlabelled class to dataset.toml",
    "values-out-of-range": "remap the mask values to 0..classes-1 (and ignore_index) with seg prepare, "
    "or list every class in dataset.toml",
    "size-mismatch": "resize the masks to their images (nearest neighbour) or re-export the pairs",
    "class-missing": "add examples of the class to the split, or drop it from dataset.toml",
}


@dataclass
class Finding:
    """One kind of problem in one split: what, where (first few files and a count) and the fix."""

    code: str
    severity: Severity
    message: str
    files: list[str] = field(default_factory=list)
    count: int = 0
    fix: str = ""
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def one_line(self) -> str:
        """The finding as one line: message, an example file, the fix."""
        where = f" (e.g. {self.files[0]})" if self.files else ""
        return f"{self.message}{where}; fix: {self.fix}"


class _Collector:
    """The findings so far; each kind of problem is reported once per split with its files."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def finding(self, code: str, severity: Severity, message: str, split: str | None, files: list[str]) -> None:
        self.findings.append(
            Finding(code, severity, message, sorted(files)[:MAX_FILES], len(files), FIXES[code], split)
        )


def _split_files(root: Path, split: str) -> tuple[dict[str, list[Path]], dict[str, Path], list[Path], bool]:
    """Images by stem, PNG masks by stem, non-PNG mask files, and whether the masks folder exists."""
    images: dict[str, list[Path]] = defaultdict(list)
    for p in sorted((root / "images" / split).iterdir()):
        if p.suffix.lower() in IMAGE_EXTS and is_dataset_file(p):
            images[p.stem].append(p)
    mask_dir = root / "masks" / split
    masks: dict[str, Path] = {}
    not_png: list[Path] = []
    if mask_dir.is_dir():
        for p in sorted(mask_dir.iterdir()):
            if not is_dataset_file(p):
                continue
            if p.suffix.lower() == ".png":
                masks[p.stem] = p
            elif p.suffix.lower() in IMAGE_EXTS:
                not_png.append(p)
    return images, masks, not_png, mask_dir.is_dir()


def lint_dataset(
    root: str | os.PathLike,
    splits: list[str] | tuple[str, ...] | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[Finding]:
    """Every problem found in the dataset at ``root``, errors first.

    Pairing and empty files are checked for every file; the pixel checks (decoding, channels,
    values, sizes, classes present) read every pair, or ``sample`` random pairs per split.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    col = _Collector()
    info: DatasetInfo | None = None
    try:
        info = read_dataset_info(root)
    except DataError as e:
        col.finding("dataset-toml", "error", f"{e}; mask values cannot be checked", None, [str(root / DATASET_FILE)])

    all_splits = list_splits(root)
    if splits:
        missing = [s for s in splits if s not in all_splits]
        if missing:
            raise DataError(
                f"{root / 'images'}: split(s) {', '.join(missing)} not found "
                f"(splits present: {', '.join(all_splits) or 'none'})"
            )
        chosen = list(splits)
    else:
        chosen = all_splits
    if not chosen:
        col.finding("no-splits", "error", f"{root / 'images'}: no splits found (expected images/<split>/)", None, [])
    for split in chosen:
        _lint_split(root, split, info, sample, seed, col)
    mask_root = root / "masks"
    orphans = (
        sorted(p for p in mask_root.iterdir() if p.is_dir() and p.name not in all_splits)
        if (mask_root.is_dir() and not splits)
        else []
    )
    if orphans:
        col.finding(
            "mask-without-image",
            "error",
            f"{mask_root}: mask folder(s) {', '.join(p.name for p in orphans)} have no images/<split> folder",
            None,
            [str(p) for p in orphans],
        )
    order = {"error": 0, "warning": 1}
    return sorted(col.findings, key=lambda f: order[f.severity])


def _lint_split(
    root: Path, split: str, info: DatasetInfo | None, sample: int | None, seed: int, col: _Collector
) -> None:
    images, masks, not_png, has_mask_dir = _split_files(root, split)
    where = f"split {split!r}"
    if not images:
        col.finding("empty-split", "error", f"{root / 'images' / split}: {where} has no images", split, [])
        return
    if not has_mask_dir:
        col.finding(
            "missing-masks-dir", "error", f"{root / 'masks' / split}: masks folder of {where} is missing", split, []
        )
        return
    dups = [str(p) for ps in images.values() if len(ps) > 1 for p in ps]
    if dups:
        col.finding("duplicate-stem", "error", f"{where}: {len(dups)} images share a stem with another", split, dups)
    if not_png:
        col.finding(
            "mask-not-png",
            "error",
            f"{where}: {len(not_png)} mask(s) are not PNG (lossy or unsupported)",
            split,
            [str(p) for p in not_png],
        )
    no_mask = [str(images[s][0]) for s in sorted(set(images) - set(masks))]
    no_image = [str(masks[s]) for s in sorted(set(masks) - set(images))]
    if no_mask:
        col.finding("image-without-mask", "error", f"{where}: {len(no_mask)} image(s) have no mask", split, no_mask)
    if no_image:
        col.finding("mask-without-image", "error", f"{where}: {len(no_image)} mask(s) have no image", split, no_image)

    pairs = [(images[s][0], masks[s]) for s in sorted(set(images) & set(masks))]
    files = [*[q for ps in images.values() for q in ps], *masks.values()]
    _lint_pairs(pairs, split, info, sample, seed, col, files)


def _lint_pairs(
    pairs: list[tuple[Path, Path]],
    split: str,
    info: DatasetInfo | None,
    sample: int | None,
    seed: int,
    col: _Collector,
    files: list[Path] | None = None,
) -> None:
    """Empty-file check of ``files`` (default: the pairs'), then the pixel checks of (a sample of) the pairs."""
    where = f"split {split!r}"
    # Empty files are cheap to find (a stat), so every file is checked whatever the sample.
    files = files if files is not None else [p for pair in pairs for p in pair]
    dangling = [str(p) for p in files if _leads_nowhere(p)]
    if dangling:
        col.finding(
            "broken-link",
            "error",
            f"{where}: {len(dangling)} file(s) are symbolic links that lead nowhere (a loop of links or a "
            "missing target)",
            split,
            dangling,
        )
    empty = [str(p) for p in files if _is_empty(p)]
    if empty:
        col.finding("empty-file", "error", f"{where}: {len(empty)} file(s) are empty (0 bytes)", split, empty)
    empty_set = set(empty) | set(dangling)
    pairs = [(i, m) for i, m in pairs if str(i) not in empty_set and str(m) not in empty_set]
    read = pairs if sample is None or sample >= len(pairs) else random.Random(seed).sample(pairs, sample)
    _lint_pixels(read, len(pairs), split, info, col)


def _leads_nowhere(path: Path) -> bool:
    """A symbolic link whose target cannot be reached: a loop (ELOOP) or a missing file."""
    try:
        path.stat()
    except OSError:
        return path.is_symlink()
    return False


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _lint_pixels(
    pairs: list[tuple[Path, Path]], total: int, split: str, info: DatasetInfo | None, col: _Collector
) -> None:
    """Decode the chosen pairs and report encoding, value, size and class-coverage problems."""
    where = f"split {split!r}"
    unreadable: list[str] = []
    kinds: dict[str, list[str]] = defaultdict(list)  # rgb, grey-rgb, palette, size
    tally = _ValueTally()
    present = np.zeros(info.num_classes if info else 0, bool)
    for img_path, mask_path in pairs:
        facts = inspect_mask(mask_path)
        size = probe_image(img_path)
        if isinstance(size, str):
            unreadable.append(str(img_path))
        if facts.problem == "unreadable" or facts.problem == "empty":
            unreadable.append(str(mask_path))
            continue
        if facts.problem == "rgb":
            kinds["rgb"].append(str(mask_path))
            continue
        if facts.problem == "grey-rgb":
            kinds["grey-rgb"].append(str(mask_path))
        elif facts.mode == "P":
            kinds["palette"].append(str(mask_path))
        ids = facts.ids
        assert ids is not None
        if not isinstance(size, str) and size != ids.shape[:2]:
            kinds["size"].append(f"{mask_path} ({ids.shape[1]}x{ids.shape[0]} vs image {size[1]}x{size[0]})")
        if info is None:
            continue
        tally.masks_read += 1
        values = np.unique(ids).astype(np.int64)
        vset = set(values.tolist())
        tally.union |= vset
        if vset <= {0, 255}:
            tally.only_0_255 += 1
        if 255 in vset:
            tally.with_255.append(str(mask_path))
        in_range = values[(values >= 0) & (values < info.num_classes)]
        present[in_range] = True
        bad = values[((values < 0) | (values >= info.num_classes)) & (values != info.ignore_index)]
        if bad.size:
            tally.bad_values |= set(bad.tolist())
            tally.bad_files.append(str(mask_path))

    if unreadable:
        col.finding(
            "unreadable-file", "error", f"{where}: {len(unreadable)} file(s) cannot be decoded", split, unreadable
        )
    if kinds["rgb"]:
        col.finding(
            "rgb-mask",
            "error",
            f"{where}: {len(kinds['rgb'])} mask(s) are colour (3-channel) images, not single-channel class ids",
            split,
            kinds["rgb"],
        )
    if kinds["grey-rgb"]:
        col.finding(
            "grey-rgb-mask",
            "error",
            f"{where}: {len(kinds['grey-rgb'])} mask(s) are 3-channel (RGB) images with equal channels: "
            "grey ids saved as colour, which segcli refuses to read",
            split,
            kinds["grey-rgb"],
        )
    if kinds["palette"]:
        col.finding(
            "palette-mask",
            "warning",
            f"{where}: {len(kinds['palette'])} mask(s) are palette PNGs: the palette index must be the class id "
            "(tools that read colours see 3 channels)",
            split,
            kinds["palette"],
        )
    if kinds["size"]:
        col.finding(
            "size-mismatch",
            "error",
            f"{where}: {len(kinds['size'])} mask(s) differ in size from their image",
            split,
            kinds["size"],
        )
    if info is None:
        return
    n_before = len(col.findings)
    _value_findings(info, split, tally, col)
    masks_with_ids = tally.masks_read
    if masks_with_ids and len(col.findings) == n_before:  # coverage means little while the ids are wrong
        missing = [c for c, p in zip(info.classes, present) if not p]
        if missing:
            scope = "" if masks_with_ids >= total else f" (in the {masks_with_ids} of {total} masks read)"
            col.finding(
                "class-missing",
                "warning",
                f"{where}: {len(missing)} class(es) never occur{scope}: {', '.join(missing[:8])}"
                + (" ..." if len(missing) > 8 else ""),
                split,
                [],
            )
            col.findings[-1].count = len(missing)


@dataclass
class _ValueTally:
    """What the masks read so far hold: every value seen, the values past the classes and their files, the
    masks holding 255 and those holding only 0 and 255, out of ``masks_read`` masks with ids."""

    union: set[int] = field(default_factory=set)
    bad_values: set[int] = field(default_factory=set)
    bad_files: list[str] = field(default_factory=list)
    with_255: list[str] = field(default_factory=list)
    only_0_255: int = 0
    masks_read: int = 0


def _value_findings(info: DatasetInfo, split: str, tally: _ValueTally, col: _Collector) -> None:
    """Explain out-of-range values: 0/255 binary masks, raw Cityscapes labelIds, or plain bad ids."""
    where = f"split {split!r}"
    union, bad_values, bad_files, with_255 = tally.union, tally.bad_values, tally.bad_files, tally.with_255
    only_0_255, masks_read = tally.only_0_255, tally.masks_read
    n = info.num_classes
    # 0/255 binary masks: no mask holds any foreground id, only 0 and 255, so with 255 read as
    # ignore (or as an unknown id) the foreground never reaches the loss.
    if n >= 2 and 255 in union and union <= {0, 255} and only_0_255 == masks_read:
        role = "ignore_index" if info.ignore_index == 255 else "an id outside the classes"
        col.finding(
            "binary-0-255",
            "error",
            f"{where}: masks are 0/255 binary ({len(with_255)} of {masks_read} hold 255), and 255 is {role}: "
            f"the foreground would be ignored",
            split,
            with_255,
        )
        return
    if not bad_values:
        return
    raw = {v for v in union if v != info.ignore_index}
    if n == 19 and max(raw) <= 33 and raw & CITYSCAPES_TELLTALE_IDS and bad_values <= set(range(19, 34)):
        col.finding(
            "cityscapes-label-ids",
            "error",
            f"{where}: masks hold raw Cityscapes labelIds (values {sorted(raw & CITYSCAPES_TELLTALE_IDS)} "
            f"and up to {max(raw)}) but dataset.toml lists 19 classes (trainIds)",
            split,
            bad_files,
        )
        return
    if bad_values == {n}:
        col.finding(
            "one-based-ids",
            "error",
            f"{where}: the only value past the {n} classes is {n}: the ids look 1-based "
            "(0 = unlabelled or no-data, as in ADE20K and LoveDA)",
            split,
            bad_files,
        )
        return
    shown = sorted(bad_values)
    col.finding(
        "values-out-of-range",
        "error",
        f"{where}: mask values {shown[:8]}{' ...' if len(shown) > 8 else ''} are not class ids 0..{n - 1} "
        f"nor ignore_index {info.ignore_index}",
        split,
        bad_files,
    )


def lint_index(
    index: DatasetIndex, splits: list[str] | tuple[str, ...] | None = None, sample: int | None = None, seed: int = 0
) -> list[Finding]:
    """The lint of an already scanned, paired dataset: empty files and the pixel checks, no listing."""
    col = _Collector()
    for split in splits or index.names:
        _lint_pairs(index.pairs(split), split, index.info, sample, seed, col)
    order = {"error": 0, "warning": 1}
    return sorted(col.findings, key=lambda f: order[f.severity])


def quick_lint(
    dataset: str | os.PathLike | DatasetIndex, splits: list[str] | tuple[str, ...] | None = None, sample: int = 32
) -> list[Finding]:
    """Sampled lint for `seg train`: raise DataError with the first error, else return the warnings.

    ``dataset`` is a folder (linted file by file) or a :class:`DatasetIndex` (nothing listed again).
    """
    if isinstance(dataset, DatasetIndex):
        root = dataset.root
        findings = lint_index(dataset, splits, sample=sample)
    else:
        root = dataset
        findings = lint_dataset(root, splits, sample=sample)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        more = f" (+{len(errors) - 1} more: run `seg check {root}`)" if len(errors) > 1 else ""
        raise DataError(errors[0].one_line() + more)
    return findings


def summarise(findings: list[Finding]) -> dict[str, int]:
    """Counts of errors and warnings."""
    return {
        "errors": sum(f.severity == "error" for f in findings),
        "warnings": sum(f.severity == "warning" for f in findings),
    }
