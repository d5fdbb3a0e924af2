"""`seg prepare coco-stuff`: COCO-Stuff 164k (stuffthingmaps) or 10k, 171 classes.

Published layouts (https://github.com/nightrome/cocostuff)::

    164k: stuffthingmaps_trainval2017.zip   {train2017,val2017}/<id>.png   values 0-181 (= COCO-Stuff id - 1),
          train2017.zip, val2017.zip (COCO)  {train2017,val2017}/<id>.jpg   255 = unlabeled
    10k:  cocostuff-10k-v1.1.zip             images/<name>.jpg, annotations/<name>.mat (S: ids 1-182, 0 = unlabeled),
                                             imageLists/{train,test}.txt   (test → split "val")

The 182 raw ids hold 11 thing ids that COCO never used; the other 171 are numbered 0-170 in id
order (80 things, then 91 stuff classes) and everything else becomes 255. Reading the 10k
``.mat`` files needs scipy (``pip install segcli[mat]``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from segcli.data.decode import load_mat, lut_map
from segcli.data.format import make_info
from segcli.data.prepare.converter import Converter, Plan, by_name, read_ids, register_converter
from segcli.data.prepare.fetch import Download
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import require_images
from segcli.data.prepare.writer import Sample
from segcli.errors import DataError

EXPECTED = (
    "stuffthingmaps_trainval2017.zip (https://github.com/nightrome/cocostuff) with the COCO images train2017.zip "
    "and val2017.zip (https://cocodataset.org/#download), or cocostuff-10k-v1.1.zip, as archives or folders"
)
# COCO-Stuff ids (1-based) of thing classes that were never annotated.
UNUSED_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)
THINGS = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
STUFF = (
    "banner",
    "blanket",
    "branch",
    "bridge",
    "building-other",
    "bush",
    "cabinet",
    "cage",
    "cardboard",
    "carpet",
    "ceiling-other",
    "ceiling-tile",
    "cloth",
    "clothes",
    "clouds",
    "counter",
    "cupboard",
    "curtain",
    "desk-stuff",
    "dirt",
    "door-stuff",
    "fence",
    "floor-marble",
    "floor-other",
    "floor-stone",
    "floor-tile",
    "floor-wood",
    "flower",
    "fog",
    "food-other",
    "fruit",
    "furniture-other",
    "grass",
    "gravel",
    "ground-other",
    "hill",
    "house",
    "leaves",
    "light",
    "mat",
    "metal",
    "mirror-stuff",
    "moss",
    "mountain",
    "mud",
    "napkin",
    "net",
    "paper",
    "pavement",
    "pillow",
    "plant-other",
    "plastic",
    "platform",
    "playingfield",
    "railing",
    "railroad",
    "river",
    "road",
    "rock",
    "roof",
    "rug",
    "salad",
    "sand",
    "sea",
    "shelf",
    "sky-other",
    "skyscraper",
    "snow",
    "solid-other",
    "stairs",
    "stone",
    "straw",
    "structural-other",
    "table",
    "tent",
    "textile-other",
    "towel",
    "tree",
    "vegetable",
    "wall-brick",
    "wall-concrete",
    "wall-other",
    "wall-panel",
    "wall-stone",
    "wall-tile",
    "wall-wood",
    "water-other",
    "waterdrops",
    "window-blind",
    "window-other",
    "wood",
)
CLASSES = THINGS + STUFF
# Raw map value (COCO-Stuff id - 1, 0-181) → contiguous id 0-170.
USED_VALUES = [i - 1 for i in range(1, 183) if i not in UNUSED_IDS]
RAW_TO_ID = {v: k for k, v in enumerate(USED_VALUES)}

_MAP_RX = re.compile(r"(?:^|/)(train2017|val2017)/([^/]+)\.png$")
_JPG_RX = re.compile(r"(?:^|/)(train2017|val2017)/([^/]+)\.jpg$")
_10K_IMG = re.compile(r"(?:^|/)images/([^/]+)\.jpg$")
_10K_MAT = re.compile(r"(?:^|/)annotations/([^/]+)\.mat$")
_10K_LIST = re.compile(r"(?:^|/)imageLists/(train|test)\.txt$")


# COCO-Stuff 164k: the label maps and the COCO 2017 images. The COCO md5s are the ones COCO users
# have long recorded (e.g. PaddleDetection's dataset table), the sizes as served. No checksum or
# exact size of stuffthingmaps_trainval2017.zip could be confirmed: it is checked only against the
# length the server announces.
DOWNLOADS = (
    Download(
        "coco-stuff",
        "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/stuffthingmaps_trainval2017.zip",
        "stuffthingmaps_trainval2017.zip",
    ),
    Download(
        "coco",
        "http://images.cocodataset.org/zips/train2017.zip",
        "train2017.zip",
        "md5:cced6f7f71b7629ddf16f17bbcfab6b2",
        19336861798,
    ),
    Download(
        "coco",
        "http://images.cocodataset.org/zips/val2017.zip",
        "val2017.zip",
        "md5:442b8da7639aecaf257c1dceb8ba8c80",
        815585330,
    ),
)


@register_converter
class CocoStuff(Converter):
    """COCO-Stuff 164k (train/val) or 10k (train/val from imageLists) → 171 classes."""

    name = "coco-stuff"
    help = "COCO-Stuff 164k (stuffthingmaps + COCO images) or 10k (.mat, needs the extra segcli[mat]) → 171 classes."
    expected = EXPECTED
    downloads = DOWNLOADS

    def want(self, member: str, opts: dict[str, Any]) -> bool:
        return bool(_10K_LIST.search(member))

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        maps = {(m.group(1), m.group(2)): mem for m, mem in srcs.find(_MAP_RX)}
        if maps:
            images = {(m.group(1), m.group(2)): mem for m, mem in srcs.find(_JPG_RX)}
            require_images(maps, images, lambda k: f"COCO image {k[0]}/{k[1]}.jpg", srcs, EXPECTED)
            samples = [Sample(sp[:-4], stem, images[(sp, stem)], mem) for (sp, stem), mem in sorted(maps.items())]
            variant = "164k"
        else:
            mats = by_name(srcs.find(_10K_MAT))
            require(mats, "{train2017,val2017}/*.png stuffthingmaps (164k) or annotations/*.mat (10k)", srcs, EXPECTED)
            images = by_name(srcs.find(_10K_IMG))
            samples = []
            lists = srcs.find(_10K_LIST)
            require(lists, "imageLists/{train,test}.txt (10k split lists)", srcs, EXPECTED)
            for m, mem in lists:
                split = "train" if m.group(1) == "train" else "val"
                for k in srcs.read(mem).decode().split():
                    if k not in mats or k not in images:
                        raise DataError(f"{srcs.describe(mem)}: {k!r} has no image or annotation; expected {EXPECTED}")
                    samples.append(Sample(split, k, images[k], mats[k]))
            variant = "10k"
        info = make_info(
            "coco-stuff",
            CLASSES,
            None,
            255,
            source=f"COCO-Stuff {variant} (https://github.com/nightrome/cocostuff)",
            label_map="182 COCO-Stuff ids -> 171 contiguous classes (11 unused thing ids and unlabeled -> 255)",
        )
        return Plan(info, samples, {"variant": variant}, settings={"variant": variant})

    def decode_label(self, srcs: Sources, sample: Sample, params: dict[str, Any]) -> np.ndarray:
        """164k: map value v → id; 10k: S - 1 first (S = 0 is unlabeled)."""
        if params["variant"] == "164k":
            return lut_map(read_ids(srcs, sample.label), RAW_TO_ID, 255)
        where = srcs.describe(sample.label)
        mat = load_mat(srcs.read(sample.label), where)
        if "S" not in mat:
            raise DataError(f"{where}: no 'S' label map in this .mat file (expected a COCO-Stuff 10k annotation)")
        raw = np.asarray(mat["S"]).astype(np.int64)
        lut = np.full(184, 255, np.uint8)
        for v, k in RAW_TO_ID.items():
            lut[v + 1] = k
        return lut[np.clip(raw, 0, 183)]
