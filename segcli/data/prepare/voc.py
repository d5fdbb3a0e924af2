"""`seg prepare voc`: PASCAL VOC 2012 segmentation (21 classes, 255 = object borders / difficult).

Published layout (VOCtrainval_11-May-2012.tar, http://host.robots.ox.ac.uk/pascal/VOC/voc2012/)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png        palette PNGs: the palette *index* is the class
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.format import default_palette, make_info
from segcli.data.prepare.common import (
    PrepareResult,
    Sample,
    Sources,
    decode_checked_ids,
    open_sources,
    require,
    run_conversion,
)
from segcli.errors import DataError

EXPECTED = (
    "VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (or its extracted "
    "VOCdevkit folder)"
)
CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
IGNORE = 255

JPEG_RX = re.compile(r"(?:^|/)JPEGImages/([^/]+)\.jpg$")
SEG_RX = re.compile(r"(?:^|/)SegmentationClass/([^/]+)\.png$")
LIST_RX = re.compile(r"(?:^|/)ImageSets/Segmentation/(train|val)\.txt$")


def voc_mask(srcs: Sources, s: Sample, _params: Any) -> np.ndarray:
    """Palette index = class id; 255 (borders) stays ignore; anything else is an error."""
    return decode_checked_ids(srcs, s, len(CLASSES), "VOC", IGNORE)


def read_id_list(srcs: Sources, hits: list, split: str) -> list[str]:
    """Image ids listed in the split file ``split`` among the ``hits`` of LIST_RX-like patterns."""
    for m, mem in hits:
        if m.group(1) == split:
            return srcs.read(mem).decode("utf-8").split()
    return []


def voc_info(name: str, source: str) -> Any:
    return make_info(
        name,
        CLASSES,
        default_palette(len(CLASSES)),
        IGNORE,
        source=source,
        label_map="palette index = class id (0-20), 255 = border/difficult (ignore)",
    )


def prepare_voc(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    force: bool = False,
    link: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> PrepareResult:
    """Convert VOC 2012 segmentation: train (1,464) and val (1,449) from ImageSets/Segmentation."""
    root = Path(out)
    srcs = open_sources(sources, root, EXPECTED, lambda n: bool(LIST_RX.search(n)))
    images = {m.group(1): mem for m, mem in srcs.find(JPEG_RX)}
    labels = {m.group(1): mem for m, mem in srcs.find(SEG_RX)}
    lists = srcs.find(LIST_RX)
    require(labels, "SegmentationClass/*.png labels", srcs, EXPECTED)
    require(lists, "ImageSets/Segmentation/{train,val}.txt split lists", srcs, EXPECTED)
    samples = []
    for split in ("train", "val"):
        for k in read_id_list(srcs, lists, split):
            if k not in images or k not in labels:
                what = "JPEGImages" if k not in images else "SegmentationClass"
                raise DataError(
                    f"{srcs.origin_list()}: {what}/{k} listed in {split}.txt is missing; expected {EXPECTED}"
                )
            samples.append(Sample(split, k, images[k], labels[k]))
    info = voc_info("voc", "PASCAL VOC 2012 segmentation (http://host.robots.ox.ac.uk/pascal/VOC/voc2012/)")
    return run_conversion(
        root, info, samples, srcs, voc_mask, force=force, link=link, workers=workers, progress=progress
    )
