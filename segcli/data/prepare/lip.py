"""`seg prepare lip`: Look Into Person human parsing (20 classes, 0 = background).

Published layout (TrainVal_images.zip and TrainVal_parsing_annotations.zip, https://sysu-hcp.net/lip/)::

    TrainVal_images/{train,val}_images/<id>.jpg
    TrainVal_parsing_annotations/{train,val}_segmentations/<id>.png     grey ids 0-19
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.format import make_info
from segcli.data.prepare.common import (
    PrepareResult,
    Sample,
    Sources,
    decode_checked_ids,
    open_sources,
    paired_samples,
    require,
    run_conversion,
)

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


def lip_mask(srcs: Sources, s: Sample, _params: Any) -> np.ndarray:
    """Ids are stored as they are (0-19, 255 ignore); other values are an error."""
    return decode_checked_ids(srcs, s, len(CLASSES), "LIP")


def prepare_lip(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    force: bool = False,
    link: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> PrepareResult:
    """Convert LIP train/val."""
    root = Path(out)
    srcs = open_sources(sources, root, EXPECTED)
    images = {(m.group(1), m.group(2)): mem for m, mem in srcs.find(_IMG)}
    anns = {(m.group(1), m.group(2)): mem for m, mem in srcs.find(_ANN)}
    require(anns, "{train,val}_segmentations/*.png labels", srcs, EXPECTED)
    samples = paired_samples(anns, images, lambda k: f"{k[0]}_images/{k[1]}.jpg", srcs, EXPECTED)
    info = make_info(
        "lip", CLASSES, None, 255, source="Look Into Person (https://sysu-hcp.net/lip/)", label_map="none (grey ids)"
    )
    return run_conversion(
        root, info, samples, srcs, lip_mask, force=force, link=link, workers=workers, progress=progress
    )
