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
    decode_ids,
    open_sources,
    require,
    run_conversion,
)
from segcli.errors import DataError

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
    where = srcs.describe(s.label)
    ids = decode_ids(srcs.read(s.label), where)
    bad = np.unique(ids[(ids >= len(CLASSES)) & (ids != 255)])
    if bad.size:
        raise DataError(f"{where}: values {bad[:8].tolist()} are not LIP class ids 0..19")
    return ids.astype(np.uint8)


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
    missing = sorted(k for k in anns if k not in images)
    if missing:
        require([], f"{missing[0][0]}_images/{missing[0][1]}.jpg ({len(missing)} missing)", srcs, EXPECTED)
    samples = [Sample(split, stem, images[(split, stem)], mem) for (split, stem), mem in sorted(anns.items())]
    info = make_info(
        "lip", CLASSES, None, 255, source="Look Into Person (https://sysu-hcp.net/lip/)", label_map="none (grey ids)"
    )
    return run_conversion(
        root, info, samples, srcs, lip_mask, force=force, link=link, workers=workers, progress=progress
    )
