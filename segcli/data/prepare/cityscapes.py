"""`seg prepare cityscapes`: leftImg8bit + gtFine (+ gtCoarse) → the 19 Cityscapes training classes.

Published layout (https://www.cityscapes-dataset.com/downloads/, login required)::

    leftImg8bit_trainvaltest.zip  leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine_trainvaltest.zip       gtFine/{train,val,test}/<city>/<stem>_gtFine_labelIds.png
    leftImg8bit_trainextra.zip    leftImg8bit/train_extra/<city>/...        (--coarse)
    gtCoarse.zip                  gtCoarse/train_extra/<city>/<stem>_gtCoarse_labelIds.png   (--coarse)

The labelIds (34 raw ids) are mapped to trainIds 0-18 with the official label table; every other
id becomes 255 (ignore).
"""

from __future__ import annotations

import re
from typing import Any

from segcli.data.format import make_info
from segcli.data.prepare.converter import LutConverter, Option, Plan, register_converter
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import paired_samples

EXPECTED = (
    "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip (plus leftImg8bit_trainextra.zip and gtCoarse.zip "
    "for --coarse) from https://www.cityscapes-dataset.com/downloads/ (free login), as archives or extracted folders"
)

# The Cityscapes label table: (name, labelId, trainId, colour). trainId 255 = not evaluated.
# "license plate" has labelId -1 in the official table and never appears in labelIds images.
LABELS: tuple[tuple[str, int, int, tuple[int, int, int]], ...] = (
    ("unlabeled", 0, 255, (0, 0, 0)),
    ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)),
    ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)),
    ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)),
    ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)),
    ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
)
ID_TO_TRAIN: dict[int, int] = {lid: tid for _, lid, tid, _ in LABELS if tid != 255}
CLASSES = tuple(name for name, _, tid, _ in sorted(LABELS, key=lambda r: r[2]) if tid != 255)
PALETTE = [list(c) for _, _, tid, c in sorted(LABELS, key=lambda r: r[2]) if tid != 255]

_IMG_RX = re.compile(r"(?:^|/)leftImg8bit/(train|val|test|train_extra)/[^/]+/([^/]+)_leftImg8bit\.png$")
_GT_RX = re.compile(r"(?:^|/)(gtFine|gtCoarse)/(train|val|test|train_extra)/[^/]+/([^/]+)_\1_labelIds\.png$")


@register_converter
class Cityscapes(LutConverter):
    """Fine annotations (train/val/test); with ``coarse`` also train_extra from gtCoarse.

    Labels: labelIds → trainIds (255 for every id outside the 19 classes).
    """

    name = "cityscapes"
    help = "Cityscapes: leftImg8bit + gtFine (zips or folders) → 19 trainId classes, other ids ignored."
    expected = EXPECTED
    lut = ID_TO_TRAIN
    options = (Option("coarse", bool, False, "Add the train_extra split from gtCoarse."),)

    def want(self, member: str, opts: dict[str, Any]) -> bool:
        return bool(_IMG_RX.search(member) or _GT_RX.search(member))

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        coarse = opts["coarse"]
        images = {(m.group(1), m.group(2)): mem for m, mem in srcs.find(_IMG_RX)}
        labels = {}
        for m, mem in srcs.find(_GT_RX):
            kind, split, stem = m.group(1), m.group(2), m.group(3)
            if kind == "gtFine" and split != "train_extra":
                labels[(split, stem)] = mem
            elif kind == "gtCoarse" and coarse and split == "train_extra":
                labels[(split, stem)] = mem
        require(images, "leftImg8bit/<split>/<city>/*_leftImg8bit.png images", srcs, EXPECTED)
        fine = [k for k in labels if k[0] != "train_extra"]
        require(fine, "gtFine/<split>/<city>/*_gtFine_labelIds.png labels", srcs, EXPECTED)
        if coarse and len(fine) == len(labels):
            require([], "gtCoarse/train_extra/<city>/*_gtCoarse_labelIds.png labels (--coarse)", srcs, EXPECTED)
        samples = paired_samples(
            labels, images, lambda k: f"leftImg8bit/{k[0]}/.../{k[1]}_leftImg8bit.png", srcs, EXPECTED
        )
        info = make_info(
            "cityscapes",
            CLASSES,
            PALETTE,
            255,
            source="Cityscapes (https://www.cityscapes-dataset.com), gtFine"
            + (" + gtCoarse train_extra" if coarse else ""),
            label_map="labelIds -> trainIds (official cityscapesScripts label table), other ids -> 255",
        )
        return Plan(info, samples, settings={"coarse": coarse})
