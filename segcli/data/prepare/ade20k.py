"""`seg prepare ade20k`: the ADE20K scene-parsing benchmark (ADEChallengeData2016, 150 classes).

Published layout (http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip)::

    ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_NNNNNNNN.jpg
    ADEChallengeData2016/annotations/{training,validation}/ADE_{train,val}_NNNNNNNN.png
    ADEChallengeData2016/objectInfo150.txt   (or objectInfo150.csv from the sceneparsing repository)

Annotation value 0 is "other objects" (not evaluated) and becomes 255; classes 1-150 become 0-149.
Annotations kept directly in ``annotations/`` (no split folder) go to ``train`` or ``val`` by their
``ADE_train_``/``ADE_val_`` prefix.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from segcli.data.format import make_info
from segcli.data.prepare.converter import LutConverter, Plan, register_converter
from segcli.data.prepare.fetch import Download
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import find_pairs
from segcli.errors import DataError

EXPECTED = (
    "ADEChallengeData2016.zip from http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip "
    "(or its extracted folder), holding images/, annotations/ and objectInfo150.txt"
)
NUM_CLASSES = 150
REDUCE_ZERO = {i: i - 1 for i in range(1, NUM_CLASSES + 1)}

_IMG_RX = re.compile(r"(?:^|/)images/(?:(training|validation)/)?([^/]+)\.jpg$")
_ANN_RX = re.compile(r"(?:^|/)annotations/(?:(training|validation)/)?([^/]+)\.png$")
_INFO_RX = re.compile(r"(?:^|/)objectInfo150\.(csv|txt)$")


def parse_object_info(text: str, where: str) -> list[str]:
    """Class names (first synonym) in id order from objectInfo150.csv (``Idx,...,Name``) or .txt
    (tab-separated ``Idx Ratio Train Val Name``). Duplicate first synonyms keep their full name."""
    rows: list[tuple[int, str]] = []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{where}: empty class list; re-download objectInfo150")
    if "," in lines[0] and "\t" not in lines[0]:
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            try:
                rows.append((int(row["Idx"]), row["Name"].split(";")[0].strip()))
            except (KeyError, ValueError, AttributeError):
                raise DataError(f"{where}: expected columns Idx,...,Name; got {reader.fieldnames}") from None
    else:
        for ln in lines[1:]:
            parts = [p for p in re.split(r"\t+", ln.strip()) if p]
            try:
                rows.append((int(parts[0]), parts[-1].split(",")[0].strip()))
            except (ValueError, IndexError):
                raise DataError(f"{where}: cannot parse line {ln!r} (expected Idx<TAB>...<TAB>Name)") from None
    rows.sort()
    if [i for i, _ in rows] != list(range(1, NUM_CLASSES + 1)):
        raise DataError(f"{where}: expected class ids 1..{NUM_CLASSES}, found {len(rows)} rows")
    names = [n for _, n in rows]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            names[i] = f"{n} ({i + 1})"
        seen[n] = i
    return names


def _split(folder: str | None, stem: str) -> str:
    if folder:
        return "train" if folder == "training" else "val"
    return "train" if stem.startswith("ADE_train_") else "val"


# The scene-parsing benchmark archive; sha1 as recorded by GluonCV / PyTorch-Encoding's ADE20K download
# scripts. The size (as reported by users' download records) is shown in messages; the sha1 checks the file.
DOWNLOADS = (
    Download(
        "ade20k",
        "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
        "ADEChallengeData2016.zip",
        "sha1:219e1696abb36c8ba3a3afe7fb2f4b4606a897c7",
        967382037,
    ),
)


@register_converter
class ADE20K(LutConverter):
    """ADEChallengeData2016 → 150 classes (0-149), 255 = other/unlabelled.

    Labels: Annotation 0 → 255, k → k - 1.
    """

    name = "ade20k"
    help = 'ADE20K (ADEChallengeData2016.zip or folder) → 150 classes; 0 ("other") → ignore.'
    expected = EXPECTED
    downloads = DOWNLOADS
    lut = REDUCE_ZERO

    def want(self, member: str, opts: dict[str, Any]) -> bool:
        return any(rx.search(member) for rx in (_IMG_RX, _ANN_RX, _INFO_RX))

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        info_hits = srcs.find(_INFO_RX)
        require(info_hits, "objectInfo150.txt / objectInfo150.csv (class names)", srcs, EXPECTED)
        info_member = info_hits[0][1]
        text = srcs.read(info_member).decode("utf-8", "replace")
        classes = parse_object_info(text, srcs.describe(info_member))
        samples = find_pairs(
            srcs,
            (_IMG_RX,),
            (_ANN_RX,),
            lambda m: (_split(m.group(1), m.group(2)), m.group(2)),
            "annotations/{training,validation}/*.png",
            lambda k: f"images/.../{k[1]}.jpg",
            EXPECTED,
        )
        info = make_info(
            "ade20k",
            classes,
            None,
            255,
            source="ADE20K scene parsing benchmark (ADEChallengeData2016), http://sceneparsing.csail.mit.edu",
            label_map="annotation k -> k-1 (1..150 -> 0..149); 0 (other objects) -> 255",
        )
        return Plan(info, samples)
