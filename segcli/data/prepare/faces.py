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

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.data.decode import decode_image
from segcli.data.format import make_info
from segcli.data.prepare.converter import Converter, Plan, by_name, decode_checked_ids, read_ids, register_converter
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import require_images, split_options, split_samples
from segcli.data.prepare.writer import Sample
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


@register_converter
class FaceSynthetics(Converter):
    """FaceSynthetics: ids kept as they are."""

    name = "facesynthetics"
    help = "Microsoft FaceSynthetics (<id>.png + <id>_seg.png) → 19 classes."
    expected = FS_EXPECTED
    options = split_options(0.1)

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        segs = by_name(srcs.find(_FS_SEG))
        require(segs, "<id>_seg.png labels", srcs, FS_EXPECTED)
        images = by_name(srcs.find(_FS_IMG))
        require_images(segs, images, lambda k: f"image {k}.png", srcs, FS_EXPECTED)
        samples, settings = split_samples(segs, images, opts, lambda line: Path(line).stem.removesuffix("_seg"))
        source, label_map = "Microsoft FaceSynthetics", "none (ids 0-18, 255 ignore)"
        info = make_info("facesynthetics", FS_CLASSES, None, 255, source=source, label_map=label_map)
        return Plan(info, samples, settings=settings)

    def decode_label(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        return decode_checked_ids(srcs, sample, len(FS_CLASSES), "FaceSynthetics")


@register_converter
class CelebAMaskHQ(Converter):
    """CelebAMask-HQ: merged part masks (19 classes) and images resized to 512 px."""

    name = "celebamask-hq"
    help = "CelebAMask-HQ: per-part masks merged into 19 classes, images resized to 512 px."
    expected = CELEBA_EXPECTED
    options = split_options(0.1)
    image_ext = ".png"

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        parts: dict[str, list[tuple[int, Any]]] = {}
        for m, mem in srcs.find(_CA_PART):
            if m.group(2) in CELEBA_PARTS:
                parts.setdefault(str(int(m.group(1))), []).append((CELEBA_PARTS.index(m.group(2)), mem))
        require(parts, "CelebAMask-HQ-mask-anno/<k>/<id:05d>_<part>.png part masks", srcs, CELEBA_EXPECTED)
        images = by_name(srcs.find(_CA_IMG))
        ordered = {k: tuple(sorted(v, key=lambda t: t[0])) for k, v in sorted(parts.items(), key=lambda kv: int(kv[0]))}
        require_images(ordered, images, lambda k: f"CelebA-HQ-img/{k}.jpg", srcs, CELEBA_EXPECTED)
        samples, settings = split_samples(ordered, images, opts, lambda line: str(int(Path(line).stem)), order=int)
        label_map = "part masks merged in order " + ", ".join(CELEBA_PARTS) + " (ids 1-18; 0 background)"
        info = make_info("celebamask-hq", CELEBA_CLASSES, None, 255, source="CelebAMask-HQ", label_map=label_map)
        return Plan(info, samples, settings=settings)

    def decode_label(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        """Merge the part masks: pixel > 0 in part k's mask → class k + 1, later parts on top."""
        out = np.zeros((MASK_SIZE, MASK_SIZE), np.uint8)
        for part_index, mem in sample.label:
            part = read_ids(srcs, mem)
            if part.shape != out.shape:
                raise DataError(
                    f"{srcs.describe(mem)}: part mask is {part.shape[1]}x{part.shape[0]}, "
                    f"expected {MASK_SIZE}x{MASK_SIZE}"
                )
            out[part > 0] = part_index + 1
        return out

    def decode_image(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        """The 1024 px image resized (area filter) to the 512 px masks."""
        rgb = decode_image(srcs.read(sample.image), srcs.describe(sample.image))
        if rgb.shape[:2] == (MASK_SIZE, MASK_SIZE):
            return rgb
        return cv2.resize(rgb, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_AREA)
