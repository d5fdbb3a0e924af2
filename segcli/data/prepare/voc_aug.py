"""`seg prepare voc-aug`: VOC 2012 + SBD → the standard ``train_aug`` (10,582) and ``val`` (1,449) splits.

Inputs: VOCtrainval_11-May-2012.tar (see :mod:`segcli.data.prepare.voc`) and SBD's benchmark.tgz
(http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz)::

    benchmark_RELEASE/dataset/cls/<id>.mat    GTcls.Segmentation: ids 0-20
    benchmark_RELEASE/dataset/{train,val}.txt

``train_aug`` = (SBD train ∪ SBD val ∪ VOC train) − VOC val; ``val`` = VOC val. A frame with a VOC
label uses it (it keeps the 255 object borders); the others use the SBD ``.mat``, which needs scipy
(``pip install segcli[mat]``). Images come from VOC's JPEGImages (SBD's ``img/`` as fallback).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from segcli.data.decode import load_mat
from segcli.data.prepare.converter import Converter, Plan, by_name, register_converter
from segcli.data.prepare.fetch import Download
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import read_id_list
from segcli.data.prepare.voc import CLASSES, JPEG_RX, LIST_RX, SEG_RX, VOC_TAR, voc_ids, voc_info
from segcli.data.prepare.writer import Sample
from segcli.errors import DataError

EXPECTED = (
    "VOCtrainval_11-May-2012.tar (http://host.robots.ox.ac.uk/pascal/VOC/voc2012/) and SBD benchmark.tgz "
    "(http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz), "
    "as archives or extracted folders"
)
_SBD_CLS = re.compile(r"(?:^|/)dataset/cls/([^/]+)\.mat$")
_SBD_IMG = re.compile(r"(?:^|/)dataset/img/([^/]+)\.jpg$")
_SBD_LIST = re.compile(r"(?:^|/)dataset/(train|val)\.txt$")


# SBD's archive, md5 as recorded by torchvision's SBDataset (size not confirmed: the md5 checks it).
SBD_TGZ = Download(
    "sbd",
    "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
    "benchmark.tgz",
    "md5:82b4d87ceb2ed10f6038a1cba92111cb",
)
DOWNLOADS = (VOC_TAR, SBD_TGZ)


@register_converter
class VOCAug(Converter):
    """train_aug = (SBD train ∪ SBD val ∪ VOC train) − VOC val; val = VOC val."""

    name = "voc-aug"
    help = "VOC 2012 + SBD benchmark.tgz → train_aug (10,582) and val (1,449); SBD .mat needs the extra segcli[mat]."
    expected = EXPECTED
    downloads = DOWNLOADS

    def want(self, member: str, opts: dict[str, Any]) -> bool:
        return bool(LIST_RX.search(member) or _SBD_LIST.search(member))

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        voc_lists, sbd_lists = srcs.find(LIST_RX), srcs.find(_SBD_LIST)
        require(voc_lists, "VOC ImageSets/Segmentation/{train,val}.txt", srcs, EXPECTED)
        require(sbd_lists, "SBD benchmark_RELEASE/dataset/{train,val}.txt", srcs, EXPECTED)
        voc_labels, sbd_labels = by_name(srcs.find(SEG_RX)), by_name(srcs.find(_SBD_CLS))
        images = {**by_name(srcs.find(_SBD_IMG)), **by_name(srcs.find(JPEG_RX))}
        voc_val = read_id_list(srcs, voc_lists, "val")
        aug = set(read_id_list(srcs, sbd_lists, "train")) | set(read_id_list(srcs, sbd_lists, "val"))
        aug |= set(read_id_list(srcs, voc_lists, "train"))
        samples = []
        for split, ids in (("train_aug", sorted(aug - set(voc_val))), ("val", voc_val)):
            for k in ids:
                label = voc_labels.get(k) or sbd_labels.get(k)
                if label is None or k not in images:
                    what = "image" if label is not None else "label (VOC SegmentationClass or SBD cls .mat)"
                    raise DataError(f"{srcs.origin_list()}: no {what} for {k} of {split}; expected {EXPECTED}")
                samples.append(Sample(split, k, images[k], label))
        return Plan(voc_info("voc-aug", "PASCAL VOC 2012 + SBD (Hariharan et al. 2011), train_aug / val"), samples)

    def decode_label(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        """VOC palette PNG, or SBD ``GTcls.Segmentation`` from the .mat file."""
        if not sample.label.name.endswith(".mat"):
            return voc_ids(srcs, sample)
        where = srcs.describe(sample.label)
        mat = load_mat(srcs.read(sample.label), where)
        try:
            seg = np.asarray(mat["GTcls"].Segmentation)
        except (KeyError, AttributeError):
            raise DataError(
                f"{where}: no GTcls.Segmentation in this .mat file (expected SBD dataset/cls/*.mat)"
            ) from None
        bad = np.unique(seg[(seg >= len(CLASSES)) & (seg != 255)])
        if seg.ndim != 2 or bad.size:
            raise DataError(f"{where}: GTcls.Segmentation is not a 2-D map of VOC ids 0..20")
        return seg.astype(np.uint8)
