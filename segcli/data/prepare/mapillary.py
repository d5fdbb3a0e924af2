"""`seg prepare mapillary`: Mapillary Vistas v1.2 (65 classes) or v2.0 (labels from its config file).

Published layout (the research-edition zip from https://www.mapillary.com/dataset/vistas)::

    config_v1.2.json, config_v2.0.json     {"labels": [{"name", "readable", "color": [r, g, b], "evaluate"}, ...]}
    {training,validation}/images/<id>.jpg
    {training,validation}/v1.2/labels/<id>.png   (and v2.0/labels/<id>.png)

Label ``k`` of the config is the k-th entry of ``labels``. The label PNGs store it as the palette
index; labels saved as RGB colours are mapped back through the config colours. Labels with
``evaluate = false`` (e.g. "unlabeled") become 255; the others are numbered 0..N-1 in config order.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from segcli.data.decode import colors_to_ids, decode_ids, decode_image, is_palette_png
from segcli.data.format import make_info
from segcli.data.prepare.converter import Converter, Option, Plan, register_converter
from segcli.data.prepare.sources import Sources, require
from segcli.data.prepare.splits import find_pairs
from segcli.data.prepare.writer import Sample
from segcli.errors import DataError

VERSIONS = ("1.2", "2.0")


def expected(version: str) -> str:
    return (
        f"the Mapillary Vistas research zip from https://www.mapillary.com/dataset/vistas (or its folder), with "
        f"config_v{version}.json, {{training,validation}}/images/ and {{training,validation}}/v{version}/labels/"
    )


def parse_config(text: str, where: str) -> list[dict[str, Any]]:
    """The ``labels`` list of a Mapillary config, checked."""
    try:
        labels = json.loads(text)["labels"]
        for lab in labels:
            if len(lab["color"]) != 3 or not isinstance(lab.get("readable", lab.get("name")), str):
                raise ValueError
    except (ValueError, KeyError, TypeError):
        raise DataError(
            f"{where}: not a Mapillary config (expected labels = [{{name, color, evaluate}}, ...])"
        ) from None
    return labels


def _config_rx(version: str) -> re.Pattern[str]:
    return re.compile(rf"(?:^|/)config_v{re.escape(version)}\.json$")


def _key(m: re.Match[str]) -> tuple[str, str]:
    return ("val" if m.group(1) == "validation" else "train", m.group(2))


@register_converter
class Mapillary(Converter):
    """Training/validation labels of one Vistas version (1.2 or 2.0)."""

    name = "mapillary"
    help = "Mapillary Vistas v1.2/v2.0: labels → ids by the dataset's config_v*.json table."
    expected = expected("1.2")
    options = (Option("version", str, "1.2", "Label version: 1.2 (65 classes) or 2.0."),)

    def expected_for(self, opts: dict[str, Any]) -> str:
        if opts["version"] not in VERSIONS:
            raise DataError(f"--version {opts['version']!r}: Mapillary Vistas versions are {', '.join(VERSIONS)}")
        return expected(opts["version"])

    def want(self, member: str, opts: dict[str, Any]) -> bool:
        return bool(_config_rx(opts["version"]).search(member))

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        version, exp = opts["version"], self.expected_for(opts)
        img_rx = re.compile(r"(?:^|/)(?:(training|validation)/)?images/([^/]+)\.jpg$")
        ann_rx = re.compile(rf"(?:^|/)(?:(training|validation)/)?v{re.escape(version)}/(?:labels/)?([^/]+)\.png$")
        cfg_hits = srcs.find(_config_rx(version))
        require(cfg_hits, f"config_v{version}.json (the label table)", srcs, exp)
        labels = parse_config(srcs.read(cfg_hits[0][1]).decode("utf-8"), srcs.describe(cfg_hits[0][1]))
        lut, classes, palette = [], [], []
        for lab in labels:
            if lab.get("evaluate", True):
                lut.append(len(classes))
                classes.append(str(lab.get("readable") or lab["name"]))
                palette.append([int(c) for c in lab["color"]])
            else:
                lut.append(255)
        if len(set(classes)) != len(classes):
            classes = [str(lab["name"]) for lab in labels if lab.get("evaluate", True)]
        hint = "images/{0[1]}.jpg".format
        samples = find_pairs(srcs, (img_rx,), (ann_rx,), _key, f"v{version}/labels/*.png labels", hint, exp)
        params = {"lut": lut, "colors": [tuple(int(c) for c in lab["color"]) for lab in labels]}
        info = make_info(
            "mapillary",
            classes,
            palette,
            255,
            source=f"Mapillary Vistas v{version} (https://www.mapillary.com/dataset/vistas)",
            label_map=f"config_v{version}.json label index (palette index or colour) -> evaluated labels 0..N-1; "
            "evaluate=false -> 255",
        )
        return Plan(info, samples, params, settings={"version": version})

    def decode_label(self, srcs: Sources, sample: Sample, params: dict[str, Any]) -> np.ndarray:
        """Palette index (or RGB colour via the config) → config label → contiguous id or 255."""
        data, where = srcs.read(sample.label), srcs.describe(sample.label)
        lut = np.asarray(params["lut"], np.uint8)
        if is_palette_png(data):
            raw = decode_ids(data, where)
            if int(raw.max()) >= len(lut):
                raise DataError(f"{where}: label {int(raw.max())} beyond the {len(lut)} labels of the config")
        else:
            raw = colors_to_ids(decode_image(data, where), params["colors"], where)
        return lut[raw]
