"""Face parsing sets: `seg prepare facesynthetics` and `seg prepare celebamask-hq` (19 classes each).

* FaceSynthetics (https://github.com/microsoft/FaceSynthetics, dataset_100000.zip): ``<id>.png``
  with ``<id>_seg.png`` holding ids 0-18 (255 = ignore).
* CelebAMask-HQ (https://github.com/switchablenorms/CelebAMask-HQ, CelebAMask-HQ.zip):
  ``CelebA-HQ-img/<i>.jpg`` (1024 px) and one binary mask per part,
  ``CelebAMask-HQ-mask-anno/<i // 2000>/<i:05d>_<part>.png`` (512 px). The parts are merged into one
  id mask in the standard order (:data:`CELEBA_PARTS`; a later part paints over an earlier one, as
  the dataset's own script does) and the images are resized to the 512 px mask size.

Neither ships an official split: a seeded ``val_ratio`` or ``split_lists`` decide.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.data.format import make_info
from segcli.data.prepare.common import (
    PrepareResult,
    Sample,
    Sources,
    assign_splits,
    decode_checked_ids,
    decode_ids,
    decode_rgb,
    open_sources,
    require,
    run_conversion,
)
from segcli.errors import DataError

FS_EXPECTED = "dataset_100000.zip (or dataset_1000.zip) from https://github.com/microsoft/FaceSynthetics, or its folder"
FS_CLASSES = (
    "background",
    "skin",
    "nose",
    "right_eye",
    "left_eye",
    "right_brow",
    "left_brow",
    "right_ear",
    "left_ear",
    "mouth_interior",
    "top_lip",
    "bottom_lip",
    "neck",
    "hair",
    "beard",
    "clothing",
    "glasses",
    "headwear",
    "facewear",
)
CELEBA_EXPECTED = "CelebAMask-HQ.zip from https://github.com/switchablenorms/CelebAMask-HQ (or its folder)"
CELEBA_PARTS = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
CELEBA_CLASSES = ("background", *CELEBA_PARTS)
MASK_SIZE = 512

_FS_IMG = re.compile(r"(?:^|/)(\d+)\.png$")
_FS_SEG = re.compile(r"(?:^|/)(\d+)_seg\.png$")
_CA_IMG = re.compile(r"(?:^|/)CelebA-HQ-img/(\d+)\.jpg$")
_CA_PART = re.compile(r"(?:^|/)CelebAMask-HQ-mask-anno/\d+/(\d+)_([a-z_]+)\.png$")


def facesynthetics_mask(srcs: Sources, s: Sample, _params: Any) -> np.ndarray:
    return decode_checked_ids(srcs, s, len(FS_CLASSES), "FaceSynthetics")


def prepare_facesynthetics(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    split_lists: dict[str, Path] | None = None,
    val_ratio: float = 0.1,
    seed: int = 0,
    force: bool = False,
    link: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> PrepareResult:
    """Convert FaceSynthetics (ids kept as they are)."""
    root = Path(out)
    srcs = open_sources(sources, root, FS_EXPECTED)
    segs = {m.group(1): mem for m, mem in srcs.find(_FS_SEG)}
    require(segs, "<id>_seg.png labels", srcs, FS_EXPECTED)
    images = {m.group(1): mem for m, mem in srcs.find(_FS_IMG)}
    missing = sorted(k for k in segs if k not in images)
    if missing:
        require([], f"image {missing[0]}.png ({len(missing)} missing)", srcs, FS_EXPECTED)
    split_of, settings = assign_splits(
        list(segs), split_lists, val_ratio, seed, lambda line: Path(line).stem.removesuffix("_seg")
    )
    samples = [Sample(split_of[k], k, images[k], segs[k]) for k in sorted(segs) if k in split_of]
    info = make_info(
        "facesynthetics",
        FS_CLASSES,
        None,
        255,
        source="Microsoft FaceSynthetics",
        label_map="none (ids 0-18, 255 ignore)",
    )
    return run_conversion(
        root,
        info,
        samples,
        srcs,
        facesynthetics_mask,
        settings=settings,
        force=force,
        link=link,
        workers=workers,
        progress=progress,
    )


def celeba_mask(srcs: Sources, s: Sample, _params: Any) -> np.ndarray:
    """Merge the part masks: pixel > 0 in part k's mask → class k + 1, later parts on top."""
    out = np.zeros((MASK_SIZE, MASK_SIZE), np.uint8)
    for part_index, mem in s.label:
        where = srcs.describe(mem)
        part = decode_ids(srcs.read(mem), where)
        if part.shape != out.shape:
            raise DataError(f"{where}: part mask is {part.shape[1]}x{part.shape[0]}, expected {MASK_SIZE}x{MASK_SIZE}")
        out[part > 0] = part_index + 1
    return out


def celeba_image(srcs: Sources, s: Sample, _params: Any) -> np.ndarray:
    """The 1024 px image resized (area filter) to the 512 px masks."""
    rgb = decode_rgb(srcs.read(s.image), srcs.describe(s.image))
    if rgb.shape[:2] == (MASK_SIZE, MASK_SIZE):
        return rgb
    return cv2.resize(rgb, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_AREA)


def prepare_celebamask_hq(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    split_lists: dict[str, Path] | None = None,
    val_ratio: float = 0.1,
    seed: int = 0,
    force: bool = False,
    link: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> PrepareResult:
    """Convert CelebAMask-HQ: merged part masks (19 classes) and images resized to 512 px."""
    root = Path(out)
    srcs = open_sources(sources, root, CELEBA_EXPECTED)
    parts: dict[str, list[tuple[int, Any]]] = {}
    for m, mem in srcs.find(_CA_PART):
        if m.group(2) in CELEBA_PARTS:
            parts.setdefault(str(int(m.group(1))), []).append((CELEBA_PARTS.index(m.group(2)), mem))
    require(parts, "CelebAMask-HQ-mask-anno/<k>/<id:05d>_<part>.png part masks", srcs, CELEBA_EXPECTED)
    images = {m.group(1): mem for m, mem in srcs.find(_CA_IMG)}
    missing = sorted((k for k in parts if k not in images), key=int)
    if missing:
        require([], f"CelebA-HQ-img/{missing[0]}.jpg ({len(missing)} missing)", srcs, CELEBA_EXPECTED)
    split_of, settings = assign_splits(
        list(parts), split_lists, val_ratio, seed, lambda line: str(int(Path(line).stem))
    )
    samples = [
        Sample(split_of[k], k, images[k], tuple(sorted(parts[k], key=lambda t: t[0])))
        for k in sorted(parts, key=int)
        if k in split_of
    ]
    info = make_info(
        "celebamask-hq",
        CELEBA_CLASSES,
        None,
        255,
        source="CelebAMask-HQ",
        label_map="part masks merged in order " + ", ".join(CELEBA_PARTS) + " (ids 1-18; 0 background)",
    )
    return run_conversion(
        root,
        info,
        samples,
        srcs,
        celeba_mask,
        image_fn=celeba_image,
        settings=settings,
        force=force,
        link=link,
        workers=workers,
        progress=progress,
    )
