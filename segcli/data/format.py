"""The one dataset format every `seg prepare` converter writes and every other command reads.

Layout::

    <root>/dataset.toml                 name, classes, palette, ignore_index, source, label_map
    <root>/images/<split>/<stem>.<ext>  RGB images (jpg or png)
    <root>/masks/<split>/<stem>.png     single-channel ids (uint8; uint16 above 255 classes),
                                        ignore_index marks void pixels
    <root>/<extra>/<split>/<stem>.<ext> optional extra-channel folders (``extra_channels = ["nir"]``), appended
                                        to the image's channels

N-channel data (``channels = N`` in dataset.toml, with ``data.channels = N``): TIFF (any bit depth, float),
8/16-bit PNG, and extra-channel folders; ``mean``/``std`` (one value per channel, `seg check --stats`) are the
statistics ``model.mean``/``std`` = "auto" take.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segcli.config.toml_io import dumps_toml, load_toml
from segcli.data.io import IMAGE_EXTS, read_mask
from segcli.errors import DataError
from segcli.io_utils import atomic_write_text

DATASET_FILE = "dataset.toml"


def default_palette(num_classes: int) -> list[list[int]]:
    """The VOC colour map (bit-interleaved), distinct for up to 256 classes."""
    palette = []
    for i in range(num_classes):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette.append([r, g, b])
    return palette


@dataclass(frozen=True)
class DatasetInfo:
    """What ``dataset.toml`` says about a dataset."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255
    source: str = ""
    label_map: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        """Channels of every image: ``channels`` in dataset.toml, else 3 (RGB)."""
        return int(self.extra.get("channels", 3))

    @property
    def extra_channels(self) -> tuple[str, ...]:
        """The extra-channel folders (``extra_channels = ["nir"]``: ``<root>/nir/<split>/<stem>.*``), in order."""
        return tuple(str(f) for f in self.extra.get("extra_channels", ()))

    @property
    def states_channels(self) -> bool:
        """Whether dataset.toml states ``channels`` (else the count is the reader's: ``data.channels``)."""
        return "channels" in self.extra

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
            "ignore_index": self.ignore_index,
            "source": self.source,
            "label_map": self.label_map,
        }
        d.update(self.extra)
        return d


def make_info(
    name: str,
    classes: list[str] | tuple[str, ...],
    palette: list[list[int]] | None = None,
    ignore_index: int = 255,
    source: str = "",
    label_map: str = "",
    **extra: Any,
) -> DatasetInfo:
    """Build a DatasetInfo, filling in the default palette when none is given."""
    pal = palette if palette is not None else default_palette(len(classes))
    return DatasetInfo(
        name=name,
        classes=tuple(classes),
        palette=tuple(tuple(int(v) for v in c) for c in pal),  # type: ignore[misc]
        ignore_index=ignore_index,
        source=source,
        label_map=label_map,
        extra=dict(extra),
    )


def write_dataset_info(root: str | os.PathLike, info: DatasetInfo) -> Path:
    """Write ``<root>/dataset.toml`` atomically."""
    header = "# segcli dataset: images/<split>/*, masks/<split>/*.png (single-channel class ids)\n"
    return atomic_write_text(Path(root) / DATASET_FILE, header + dumps_toml(info.to_dict()))


def write_channel_stats(
    root: str | os.PathLike, channels: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Path:
    """Record the images' channel count and per-channel statistics in ``<root>/dataset.toml`` (what
    ``model.mean``/``std`` = "auto" read for N-channel data); the rest of the file is kept."""
    info = read_dataset_info(root)
    extra = {**info.extra, "channels": channels, "mean": list(mean), "std": list(std)}
    return write_dataset_info(root, replace(info, extra=extra))


def read_dataset_info(root: str | os.PathLike) -> DatasetInfo:
    """Read and check ``<root>/dataset.toml``."""
    root = Path(root)
    path = root / DATASET_FILE
    if not root.is_dir():
        raise DataError(
            f"{root}: dataset folder not found; convert your download with `seg prepare <dataset> SRC --out {root}` "
            "(`seg prepare --help` lists them) or point data.root / --data at an existing one"
        )
    if not path.is_file():
        raise DataError(f"{path}: missing; {root} is not a segcli dataset (convert it with `seg prepare ...`)")
    raw = load_toml(path, error=DataError)
    known = {"name", "classes", "palette", "ignore_index", "source", "label_map"}
    _check_channel_keys(raw, path)
    classes = raw.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DataError(f"{path}: 'classes' must be a non-empty list of class names")
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise DataError(f"{path}: 'classes' has duplicate names: {', '.join(dup)}")
    palette = raw.get("palette", default_palette(len(classes)))
    if (
        not isinstance(palette, list)
        or len(palette) != len(classes)
        or not all(
            isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in palette
        )
    ):
        raise DataError(f"{path}: 'palette' must list one [r, g, b] (0-255) per class ({len(classes)} classes)")
    ignore_index = raw.get("ignore_index", 255)
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or ignore_index < len(classes):
        raise DataError(
            f"{path}: 'ignore_index' = {ignore_index!r} must be an integer >= number of classes "
            f"({len(classes)}), usually 255"
        )
    return make_info(
        name=str(raw.get("name", root.name)),
        classes=classes,
        palette=palette,
        ignore_index=ignore_index,
        source=str(raw.get("source", "")),
        label_map=str(raw.get("label_map", "")),
        **{k: v for k, v in raw.items() if k not in known},
    )


def _check_channel_keys(raw: dict[str, Any], path: Path) -> None:
    """``channels``, ``extra_channels``, ``mean`` and ``std`` of dataset.toml, when present, are well formed."""
    channels = raw.get("channels", 3)
    if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= 64:
        raise DataError(f"{path}: 'channels' = {channels!r} must be an integer from 1 to 64")
    extra = raw.get("extra_channels", [])
    if not isinstance(extra, list) or not all(isinstance(f, str) and f and "/" not in f for f in extra):
        raise DataError(f"{path}: 'extra_channels' must list folder names beside images/, e.g. [\"nir\"]")
    for key in ("mean", "std"):
        values = raw.get(key, [0.5] * channels)
        if (
            not isinstance(values, list)
            or len(values) != channels
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ):
            raise DataError(f"{path}: '{key}' must list {channels} numbers, one per channel")


def extra_channel_files(image: Path, info: DatasetInfo) -> list[Path]:
    """The extra-channel files of ``image`` (``<root>/images/<split>/<stem>.*``): ``<root>/<extra>/<split>/``
    holds one file of the same stem per extra-channel folder; a missing one is a DataError naming it."""
    if not info.extra_channels:
        return []
    root, split = image.parent.parent.parent, image.parent.name
    found = []
    for folder in info.extra_channels:
        d = root / folder / split
        match = [d / f"{image.stem}{ext}" for ext in IMAGE_EXTS if (d / f"{image.stem}{ext}").is_file()]
        if not match:
            raise DataError(
                f"{d / image.stem}.*: extra channel {folder!r} of {image.name} not found "
                f"(dataset.toml extra_channels = {list(info.extra_channels)})"
            )
        found.append(match[0])
    return found


def list_splits(root: str | os.PathLike) -> list[str]:
    """Splits that have an images folder."""
    d = Path(root) / "images"
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


def is_dataset_file(p: Path) -> bool:
    """Whether a folder entry counts as one of the dataset's files: not hidden and not a folder.

    A symbolic link that leads nowhere (a loop, a missing target) still counts, so that every reader (`seg check`,
    training, evaluation) sees the same files and reports that link instead of silently skipping it."""
    return not p.name.startswith(".") and not p.is_dir()


def list_samples(root: str | os.PathLike, split: str) -> list[tuple[Path, Path]]:
    """Pairs (image, mask) of a split, sorted by stem. Every image must have a mask and vice versa."""
    root = Path(root)
    img_dir, mask_dir = root / "images" / split, root / "masks" / split
    if not img_dir.is_dir():
        have = ", ".join(list_splits(root)) or "none"
        raise DataError(f"{img_dir}: split {split!r} not found (splits present: {have})")
    if not mask_dir.is_dir():
        raise DataError(f"{mask_dir}: masks folder for split {split!r} is missing")
    images: dict[str, Path] = {}
    for p in img_dir.iterdir():
        if p.suffix.lower() in IMAGE_EXTS and is_dataset_file(p):
            if p.stem in images:
                raise DataError(f"{img_dir}: two images share the stem {p.stem!r}: {images[p.stem].name}, {p.name}")
            images[p.stem] = p
    masks = {p.stem: p for p in mask_dir.glob("*.png") if is_dataset_file(p)}
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask:
        raise DataError(
            f"{mask_dir}: {len(no_mask)} image(s) have no mask, e.g. {', '.join(no_mask[:3])}.png; "
            "add the masks or remove the images"
        )
    if no_image:
        raise DataError(
            f"{img_dir}: {len(no_image)} mask(s) have no image, e.g. {', '.join(no_image[:3])}; "
            "add the images or remove the masks"
        )
    if not images:
        raise DataError(f"{img_dir}: split {split!r} has no images")
    return [(images[s], masks[s]) for s in sorted(images)]


def check_mask_values(mask: np.ndarray, info: DatasetInfo, path: Path) -> None:
    """Raise DataError when a mask holds values outside [0, classes) ∪ {ignore_index}.

    Cheap enough for every sample a loader reads: one ``max``, and a histogram only when the
    mask holds ignore pixels (or bad values).
    """
    if not mask.size or int(mask.max()) < info.num_classes:
        return
    counts = np.bincount(mask.ravel())
    values = np.nonzero(counts)[0]
    bad = values[(values >= info.num_classes) & (values != info.ignore_index)]
    if bad.size:
        raise DataError(
            f"{path}: mask values {bad[:8].tolist()} are not class ids 0..{info.num_classes - 1} "
            f"nor ignore_index {info.ignore_index} (check it with `seg check`)"
        )


@dataclass(frozen=True)
class DatasetIndex:
    """A dataset scanned once: its ``dataset.toml`` and the sorted (image, mask) pairs per split.

    Validation, the sampled lint, the torch datasets and the statistics all accept an index, so a
    command that needs several of them reads the folder and ``dataset.toml`` only once.
    """

    root: Path
    info: DatasetInfo
    splits: dict[str, tuple[tuple[Path, Path], ...]]

    @classmethod
    def scan(cls, root: str | os.PathLike, splits: list[str] | tuple[str, ...] | None = None) -> DatasetIndex:
        """Read ``dataset.toml`` and pair the files of ``splits`` (default: every split present)."""
        info = read_dataset_info(root)
        names = list(splits) if splits else list_splits(root)
        return cls(Path(root), info, {s: tuple(list_samples(root, s)) for s in names})

    @property
    def names(self) -> list[str]:
        """The indexed splits, in scan order."""
        return list(self.splits)

    def with_channels(self, channels: int, source: str) -> DatasetIndex:
        """This index read as ``channels``-channel data; ``source`` says who asks (``"data.channels ="``, ``"the
        model takes"``). When dataset.toml states another count, a DataError naming it and both counts."""
        info = self.info
        if info.states_channels and info.channels != channels:
            raise DataError(
                f"{self.root / DATASET_FILE}: the dataset has {info.channels}-channel images (channels = "
                f"{info.channels}) but {source} {channels}"
            )
        return replace(self, info=replace(info, extra={**info.extra, "channels": channels}))

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The (image, mask) pairs of ``split``, sorted by stem."""
        if split not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DataError(f"{self.root / 'images' / split}: split {split!r} not found (splits present: {have})")
        return list(self.splits[split])


@dataclass(frozen=True)
class DataFingerprint:
    """The data a run trained on: its folder as an absolute path, and what tells its content apart (images per
    split, class names). Every checkpoint stores it, so an evaluation can find that folder again from anywhere
    and notices when the folder it would score holds other data."""

    root: str
    splits: dict[str, int]
    classes: tuple[str, ...]

    @classmethod
    def of(cls, index: DatasetIndex) -> DataFingerprint:
        """The fingerprint of a scanned dataset (its indexed splits)."""
        counts = {split: len(pairs) for split, pairs in index.splits.items()}
        return cls(str(index.root.resolve()), counts, tuple(index.info.classes))

    def to_json(self) -> str:
        return json.dumps({"root": self.root, "splits": self.splits, "classes": list(self.classes)})

    @classmethod
    def from_json(cls, text: str) -> DataFingerprint | None:
        """The fingerprint a checkpoint stores; None when it has none (older files) or it is unreadable."""
        try:
            d = json.loads(text)
            return cls(str(d["root"]), {str(k): int(v) for k, v in d["splits"].items()}, tuple(d["classes"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def describe(self) -> str:
        """``/abs/root (16 train, 8 val images)``."""
        return f"{self.root} ({', '.join(f'{n} {s}' for s, n in self.splits.items())} images)"

    def difference(self, index: DatasetIndex, first: str | None = None) -> str:
        """What ``index`` holds that this fingerprint does not ("" when the classes and the image count of
        every split both list agree), the split ``first`` compared first: e.g. "val has 8 images, not 100"."""
        if tuple(index.info.classes) != self.classes:
            return f"classes {list(index.info.classes)[:6]}, not {list(self.classes)[:6]}"
        for split in sorted(self.splits, key=lambda s: s != first):
            n = self.splits[split]
            if split in index.splits and len(index.splits[split]) != n:
                return f"{split} has {len(index.splits[split])} images, not {n}"
        return ""


def as_index(
    dataset: str | os.PathLike | DatasetIndex, splits: list[str] | tuple[str, ...] | None = None
) -> DatasetIndex:
    """``dataset`` itself when it is an index (checking it holds ``splits``), else a new scan of it."""
    if isinstance(dataset, DatasetIndex):
        for split in splits or ():
            dataset.pairs(split)
        return dataset
    return DatasetIndex.scan(dataset, splits)


def validate_dataset(
    dataset: str | os.PathLike | DatasetIndex,
    splits: list[str] | tuple[str, ...] | None = None,
    sample_masks: int | None = 16,
    seed: int = 0,
) -> DatasetInfo:
    """Check the layout, pairing and (a sample of) mask values; return the DatasetInfo.

    ``dataset`` is a folder or a :class:`DatasetIndex` (then nothing is listed again).
    ``sample_masks=None`` reads every mask; 0 reads none. Every reading command calls this first.
    """
    index = as_index(dataset, splits)
    names = list(splits) if splits else index.names
    if not names:
        raise DataError(f"{index.root / 'images'}: no splits found (expected images/<split>/)")
    for split in names:
        pairs = index.pairs(split)
        chosen = pairs if sample_masks is None else random.Random(seed).sample(pairs, min(sample_masks, len(pairs)))
        for _, mask_path in chosen:
            check_mask_values(read_mask(mask_path), index.info, mask_path)
    return index.info
