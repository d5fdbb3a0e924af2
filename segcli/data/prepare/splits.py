"""Split helpers for converters: pairing labels with images, list files, seeded random splits."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from segcli.data.prepare.converter import Option
from segcli.data.prepare.sources import Member, Sources, require
from segcli.data.prepare.writer import Sample
from segcli.errors import DataError


def split_options(
    val_ratio: float, lists_help: str = "train=train.txt,val=val.txt (ids per line)."
) -> tuple[Option, ...]:
    """The options of a dataset without an official split: ``--split-lists``, ``--val-ratio``, ``--seed``."""
    return (
        Option("split_lists", str, None, lists_help),
        Option("val_ratio", float, val_ratio, "Without --split-lists: share of samples for val."),
        Option("seed", int, 0, "Seed of the random split."),
    )


def require_images(labels: dict, images: dict, hint: Callable[[Any], str], srcs: Sources, expected: str) -> None:
    """A DataError naming the first label (in sorted order) whose image is missing, and how many are."""
    missing = sorted(k for k in labels if k not in images)
    if missing:
        require([], f"{hint(missing[0])} ({len(missing)} missing)", srcs, expected)


def paired_samples(
    anns: dict[tuple[str, str], Any],
    images: dict[tuple[str, str], Any],
    image_hint: Callable[[tuple[str, str]], str],
    srcs: Sources,
    expected: str,
) -> list[Sample]:
    """One Sample per (split, stem) label, sorted; a label without its image is a DataError naming it."""
    require_images(anns, images, image_hint, srcs, expected)
    return [Sample(split, stem, images[(split, stem)], mem) for (split, stem), mem in sorted(anns.items())]


def find_pairs(
    srcs: Sources,
    image_rxs: tuple[re.Pattern[str], ...],
    label_rxs: tuple[re.Pattern[str], ...],
    key: Callable[[re.Match[str]], tuple[str, str]],
    what: str,
    image_hint: Callable[[tuple[str, str]], str],
    expected: str,
) -> list[Sample]:
    """Samples of a dataset whose files name their split: ``key(match)`` → (split, stem) for every
    member matching one of ``image_rxs`` / ``label_rxs``; no label at all, or a label without its
    image, is a DataError (``what`` names the labels looked for)."""
    images = {key(m): mem for rx in image_rxs for m, mem in srcs.find(rx)}
    labels = {key(m): mem for rx in label_rxs for m, mem in srcs.find(rx)}
    require(labels, what, srcs, expected)
    return paired_samples(labels, images, image_hint, srcs, expected)


def split_samples(
    labels: dict[str, Any],
    images: dict[str, Member],
    opts: dict[str, Any],
    key_of: Callable[[str], str],
    order: Callable[[str], Hashable] | None = None,
) -> tuple[list[Sample], dict[str, Any]]:
    """Samples of an unsplit dataset, split by ``opts`` (split_lists / val_ratio / seed; see
    :func:`assign_splits`); returns (samples, the split settings to record)."""
    split_of, settings = assign_splits(list(labels), opts["split_lists"], opts["val_ratio"], opts["seed"], key_of)
    keys = sorted(labels, key=order) if order else sorted(labels)
    return [Sample(split_of[k], k, images[k], labels[k]) for k in keys if k in split_of], settings


def read_id_list(srcs: Sources, hits: list, split: str) -> list[str]:
    """Ids listed in the split file ``split`` among ``hits`` (``(match, member)``, group 1 = split)."""
    for m, mem in hits:
        if m.group(1) == split:
            return srcs.read(mem).decode("utf-8").split()
    return []


def parse_list_arg(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"a,b, c"`` → ``["a", "b", "c"]`` (empty items dropped); a list is returned as it is."""
    if isinstance(text, (list, tuple)):
        return list(text)
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def parse_split_lists(text: str | dict[str, Path] | None) -> dict[str, Path]:
    """``"train=a.txt,val=b.txt"`` → {"train": Path("a.txt"), "val": Path("b.txt")}; a dict is kept."""
    if isinstance(text, dict):
        return {k: Path(v) for k, v in text.items()}
    out: dict[str, Path] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        split, sep, file = item.partition("=")
        if not sep or not split.strip() or not file.strip():
            raise DataError(f"--split-lists: {item!r} must look like split=file.txt (e.g. train=train.txt)")
        out[split.strip()] = Path(file.strip())
    return out


def assign_splits(
    keys: list[str],
    split_lists: str | dict[str, Path] | None,
    val_ratio: float,
    seed: int,
    key_of: Callable[[str], str] = lambda line: Path(line).stem,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Split sample keys by list files (``{"train": path, ...}`` or ``"train=a.txt,..."``; one entry
    per line, mapped to a key by ``key_of``; keys in no list are left out) or by a seeded random ``val_ratio``.

    Returns (key → split, the settings to record).
    """
    known = set(keys)
    split_lists = parse_split_lists(split_lists)
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
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_ratio)) if val_ratio > 0 and len(order) > 1 else 0
    return {k: "val" if i < n_val else "train" for i, k in enumerate(order)}, {"val_ratio": val_ratio, "seed": seed}
