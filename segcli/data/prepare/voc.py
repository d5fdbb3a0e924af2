"""`seg prepare voc`: PASCAL VOC 2012 segmentation (21 classes, 255 = object borders / difficult).

Published layout (VOCtrainval_11-May-2012.tar, http://host.robots.ox.ac.uk/pascal/VOC/voc2012/)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png        palette PNGs: the palette *index* is the class
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from segcli.data.format import DatasetInfo, default_palette, make_info
from segcli.data.prepare.converter import Converter, Plan, by_name, decode_checked_ids, register_converter
from segcli.data.prepare.fetch import Download
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import read_id_list
from segcli.data.prepare.writer import Sample
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


def voc_info(name: str, source: str) -> DatasetInfo:
    return make_info(
        name,
        CLASSES,
        default_palette(len(CLASSES)),
        IGNORE,
        source=source,
        label_map="palette index = class id (0-20), 255 = border/difficult (ignore)",
    )


def voc_ids(srcs: Sources, sample: Sample) -> np.ndarray:
    """Palette index = class id; 255 (borders) stays ignore; anything else is an error."""
    return decode_checked_ids(srcs, sample, len(CLASSES), "VOC", IGNORE)


# The published archive; md5 as recorded by torchvision's VOCSegmentation, size as served by the host.
VOC_TAR = Download(
    "voc",
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "VOCtrainval_11-May-2012.tar",
    "md5:6cd6e144f989b92b3379bac3b3de84fd",
    1999639040,
)
DOWNLOADS = (VOC_TAR,)


@register_converter
class VOC(Converter):
    """Train (1,464) and val (1,449) from ImageSets/Segmentation."""

    name = "voc"
    help = "PASCAL VOC 2012 (VOCtrainval_11-May-2012.tar or folder) → 21 classes."
    expected = EXPECTED
    downloads = DOWNLOADS

    def want(self, member: str, opts: dict[str, Any]) -> bool:
        return bool(LIST_RX.search(member))

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        images, labels = by_name(srcs.find(JPEG_RX)), by_name(srcs.find(SEG_RX))
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
        return Plan(info, samples)

    def decode_label(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        return voc_ids(srcs, sample)
