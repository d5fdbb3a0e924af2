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

from segcli.data.format import make_info
from segcli.data.prepare.converter import LutConverter, Plan, register_converter
from segcli.data.prepare.fetch import Download
from segcli.data.prepare.sources import Sources
from segcli.data.prepare.splits import find_pairs

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


# Zenodo record 5706578; md5s as recorded by torchgeo's LoveDA dataset. The sizes (as reported by users'
# download records) are shown in messages; the md5s check the files.
DOWNLOADS = (
    Download(
        "loveda",
        "https://zenodo.org/records/5706578/files/Train.zip?download=1",
        "Train.zip",
        "md5:de2b196043ed9b4af1690b3f9a7d558f",
        4021669263,
    ),
    Download(
        "loveda",
        "https://zenodo.org/records/5706578/files/Val.zip?download=1",
        "Val.zip",
        "md5:84cae2577468ff0b5386758bb386d31d",
        2425958254,
    ),
)


@register_converter
class LoveDA(LutConverter):
    """LoveDA train/val (the test split has no labels and is left out).

    Labels: 1-7 → 0-6; 0 (no data) and anything else → 255.
    """

    name = "loveda"
    help = "LoveDA (Train.zip, Val.zip or folders): raw 1-7 → 0-6, 0 → ignore."
    expected = EXPECTED
    downloads = DOWNLOADS
    lut = RAW_TO_ID

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        labels = "Train|Val/{Urban,Rural}/masks_png/*.png labels"
        hint = "image {0[1]}.png of split {0[0]}".format
        samples = find_pairs(srcs, (_PUB_IMG, _MM_IMG), (_PUB_ANN, _MM_ANN), _key, labels, hint, EXPECTED)
        info = make_info(
            "loveda",
            CLASSES,
            PALETTE,
            255,
            source="LoveDA (https://github.com/Junjue-Wang/LoveDA)",
            label_map="raw 1-7 -> 0-6; 0 (no data) -> 255",
        )
        return Plan(info, samples)
