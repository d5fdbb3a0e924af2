"""`seg prepare lip`: Look Into Person human parsing (20 classes, 0 = background).

Published layout (TrainVal_images.zip and TrainVal_parsing_annotations.zip, https://sysu-hcp.net/lip/)::

    TrainVal_images/{train,val}_images/<id>.jpg
    TrainVal_parsing_annotations/{train,val}_segmentations/<id>.png     grey ids 0-19
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from segcli.data.format import make_info
from segcli.data.prepare.converter import Converter, Plan, decode_checked_ids, register_converter
from segcli.data.prepare.sources import Sources
from segcli.data.prepare.splits import find_pairs
from segcli.data.prepare.writer import Sample

EXPECTED = (
    "TrainVal_images.zip and TrainVal_parsing_annotations.zip from https://sysu-hcp.net/lip/ "
    "(or their extracted folders)"
)
CLASSES = (
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper-clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "jumpsuits",
    "scarf",
    "skirt",
    "face",
    "left-arm",
    "right-arm",
    "left-leg",
    "right-leg",
    "left-shoe",
    "right-shoe",
)

_IMG = re.compile(r"(?:^|/)(train|val)_images/([^/]+)\.jpg$")
_ANN = re.compile(r"(?:^|/)(train|val)_segmentations/([^/]+)\.png$")


@register_converter
class LIP(Converter):
    """LIP train/val; ids are kept as they are (0-19, 255 ignore), other values are an error."""

    name = "lip"
    help = "Look Into Person (TrainVal images + parsing annotations) → 20 classes."
    expected = EXPECTED

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        labels, hint = "{train,val}_segmentations/*.png labels", "{0[0]}_images/{0[1]}.jpg".format
        samples = find_pairs(srcs, (_IMG,), (_ANN,), lambda m: (m.group(1), m.group(2)), labels, hint, EXPECTED)
        source = "Look Into Person (https://sysu-hcp.net/lip/)"
        return Plan(make_info("lip", CLASSES, None, 255, source=source, label_map="none (grey ids)"), samples)

    def decode_label(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        return decode_checked_ids(srcs, sample, len(CLASSES), "LIP")
