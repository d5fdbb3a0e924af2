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

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.prepare.common import (
    PrepareResult,
    Sample,
    Sources,
    load_mat,
    open_sources,
    require,
    run_conversion,
)
from segcli.data.prepare.voc import CLASSES, JPEG_RX, LIST_RX, SEG_RX, read_id_list, voc_info, voc_mask
from segcli.errors import DataError

EXPECTED = (
    "VOCtrainval_11-May-2012.tar (http://host.robots.ox.ac.uk/pascal/VOC/voc2012/) and SBD benchmark.tgz "
    "(http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz), "
    "as archives or extracted folders"
)
_SBD_CLS = re.compile(r"(?:^|/)dataset/cls/([^/]+)\.mat$")
_SBD_IMG = re.compile(r"(?:^|/)dataset/img/([^/]+)\.jpg$")
_SBD_LIST = re.compile(r"(?:^|/)dataset/(train|val)\.txt$")


def voc_aug_mask(srcs: Sources, s: Sample, params: Any) -> np.ndarray:
    """VOC palette PNG, or SBD ``GTcls.Segmentation`` from the .mat file."""
    if not s.label.name.endswith(".mat"):
        return voc_mask(srcs, s, params)
    where = srcs.describe(s.label)
    mat = load_mat(srcs.read(s.label), where)
    try:
        seg = np.asarray(mat["GTcls"].Segmentation)
    except (KeyError, AttributeError):
        raise DataError(f"{where}: no GTcls.Segmentation in this .mat file (expected SBD dataset/cls/*.mat)") from None
    bad = np.unique(seg[(seg >= len(CLASSES)) & (seg != 255)])
    if seg.ndim != 2 or bad.size:
        raise DataError(f"{where}: GTcls.Segmentation is not a 2-D map of VOC ids 0..20")
    return seg.astype(np.uint8)


def prepare_voc_aug(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    force: bool = False,
    link: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> PrepareResult:
    """Build train_aug and val from VOC 2012 and SBD."""
    root = Path(out)
    srcs = open_sources(sources, root, EXPECTED, lambda n: bool(LIST_RX.search(n) or _SBD_LIST.search(n)))
    voc_lists, sbd_lists = srcs.find(LIST_RX), srcs.find(_SBD_LIST)
    require(voc_lists, "VOC ImageSets/Segmentation/{train,val}.txt", srcs, EXPECTED)
    require(sbd_lists, "SBD benchmark_RELEASE/dataset/{train,val}.txt", srcs, EXPECTED)
    voc_labels = {m.group(1): mem for m, mem in srcs.find(SEG_RX)}
    sbd_labels = {m.group(1): mem for m, mem in srcs.find(_SBD_CLS)}
    images = {m.group(1): mem for m, mem in srcs.find(_SBD_IMG)}
    images.update({m.group(1): mem for m, mem in srcs.find(JPEG_RX)})
    voc_val = read_id_list(srcs, voc_lists, "val")
    val_set = set(voc_val)
    aug = set(read_id_list(srcs, sbd_lists, "train")) | set(read_id_list(srcs, sbd_lists, "val"))
    aug |= set(read_id_list(srcs, voc_lists, "train"))
    samples = []
    for split, ids in (("train_aug", sorted(aug - val_set)), ("val", voc_val)):
        for k in ids:
            label = voc_labels.get(k) or sbd_labels.get(k)
            if label is None or k not in images:
                what = "image" if label is not None else "label (VOC SegmentationClass or SBD cls .mat)"
                raise DataError(f"{srcs.origin_list()}: no {what} for {k} of {split}; expected {EXPECTED}")
            samples.append(Sample(split, k, images[k], label))
    info = voc_info("voc-aug", "PASCAL VOC 2012 + SBD (Hariharan et al. 2011), train_aug / val")
    return run_conversion(
        root, info, samples, srcs, voc_aug_mask, force=force, link=link, workers=workers, progress=progress
    )
