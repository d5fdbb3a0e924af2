"""`seg prepare loveda`: LoveDA land-cover segmentation (7 classes; raw 0 = no-data → ignore).

Published layout (Train.zip, Val.zip from https://zenodo.org/records/5706578)::

    Train/{Urban,Rural}/images_png/<id>.png   Train/{Urban,Rural}/masks_png/<id>.png
    Val/{Urban,Rural}/...

The mmsegmentation layout (``img_dir[/<split>]/<id>.png``, ``ann_dir[/<split>]/<id>.png``; no split
folder → train) is read too. Raw labels 1-7 become 0-6, 0 becomes 255.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from segcli.data.decode import lut_map
from segcli.data.format import make_info
from segcli.data.prepare.converter import Converter, Plan, read_ids, register_converter
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import paired_samples
from segcli.data.prepare.writer import Sample

EXPECTED = "Train.zip and Val.zip from https://zenodo.org/records/5706578 (or their extracted folders)"
CLASSES = ("background", "building", "road", "water", "barren", "forest", "agricultural")
PALETTE = [[255, 255, 255], [255, 0, 0], [255, 255, 0], [0, 0, 255], [159, 129, 183], [0, 255, 0], [255, 195, 128]]
RAW_TO_ID = {k: k - 1 for k in range(1, 8)}

_PUB_IMG = re.compile(r"(?:^|/)(Train|Val)/(?:Urban|Rural)/images_png/([^/]+)\.png$")
_PUB_ANN = re.compile(r"(?:^|/)(Train|Val)/(?:Urban|Rural)/masks_png/([^/]+)\.png$")
_MM_IMG = re.compile(r"(?:^|/)img_dir/(?:(train|val)/)?([^/]+)\.png$")
_MM_ANN = re.compile(r"(?:^|/)ann_dir/(?:(train|val)/)?([^/]+)\.png$")


def _key(m: re.Match[str]) -> tuple[str, str]:
    return ((m.group(1) or "train").lower(), m.group(2))


@register_converter
class LoveDA(Converter):
    """LoveDA train/val (the test split has no labels and is left out)."""

    name = "loveda"
    help = "LoveDA (Train.zip, Val.zip or folders): raw 1-7 → 0-6, 0 → ignore."
    expected = EXPECTED

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        images = {_key(m): mem for rx in (_PUB_IMG, _MM_IMG) for m, mem in srcs.find(rx)}
        anns = {_key(m): mem for rx in (_PUB_ANN, _MM_ANN) for m, mem in srcs.find(rx)}
        require(anns, "Train|Val/{Urban,Rural}/masks_png/*.png labels", srcs, EXPECTED)
        samples = paired_samples(anns, images, lambda k: f"image {k[1]}.png of split {k[0]}", srcs, EXPECTED)
        info = make_info(
            "loveda",
            CLASSES,
            PALETTE,
            255,
            source="LoveDA (https://github.com/Junjue-Wang/LoveDA)",
            label_map="raw 1-7 -> 0-6; 0 (no data) -> 255",
        )
        return Plan(info, samples)

    def decode_label(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        """1-7 → 0-6; 0 (no data) and anything else → 255."""
        return lut_map(read_ids(srcs, sample.label), RAW_TO_ID, 255)
