"""`seg prepare shapes`: a built-in, seeded synthetic dataset of textured shapes.

Classes are shape kinds drawn with class-typical (jittered) colours and textures on textured,
mostly grey backgrounds. About a third of the objects get a void border of ``ignore_index``
pixels, as VOC annotations do. Every image is a pure function of (seed, split, index).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import cv2
import numpy as np

from segcli.data.format import DatasetInfo, make_info
from segcli.data.prepare.converter import Converter, Option, Plan, prepare, register_converter
from segcli.data.prepare.sources import Sources
from segcli.data.prepare.writer import PrepareResult, Sample, WriteOptions
from segcli.errors import DataError

CLASSES = ("background", "circle", "square", "triangle", "cross")
PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]]
# Base hues (OpenCV scale 0-180) of the object classes.
_HUES = {1: 0, 2: 60, 3: 110, 4: 18}
IGNORE = 255


def _texture(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Smooth noise in [-1, 1] at a random spatial scale."""
    small = rng.standard_normal((max(2, size // scale),) * 2).astype(np.float32)
    tex = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(tex / 2.0, -1, 1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    grey = rng.uniform(70, 190)
    tint = rng.uniform(-25, 25, size=3)
    img = np.full((size, size, 3), grey, np.float32) + tint
    img += 35 * _texture(rng, size, int(rng.integers(4, 24)))[..., None]
    if rng.random() < 0.5:  # stripes
        yy, xx = np.mgrid[0:size, 0:size]
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(6, 20)
        img += 18 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)[..., None]
    return img


def _shape_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    r = int(rng.integers(size // 10, size // 4))
    cx, cy = (int(v) for v in rng.integers(r // 2, size - r // 2, size=2))
    if cls == 1:
        cv2.circle(m, (cx, cy), r, 1, -1)
    elif cls == 2:
        angle = rng.uniform(0, 90)
        box = cv2.boxPoints(((cx, cy), (2 * r * rng.uniform(0.8, 1.2), 2 * r * rng.uniform(0.8, 1.2)), angle))
        cv2.fillPoly(m, [box.astype(np.int32)], 1)
    elif cls == 3:
        a0 = rng.uniform(0, 2 * np.pi)
        pts = [(cx + r * np.cos(a0 + k * 2 * np.pi / 3), cy + r * np.sin(a0 + k * 2 * np.pi / 3)) for k in range(3)]
        cv2.fillPoly(m, [np.array(pts, np.int32)], 1)
    else:
        t = max(3, r // 3)
        cv2.rectangle(m, (cx - r, cy - t), (cx + r, cy + t), 1, -1)
        cv2.rectangle(m, (cx - t, cy - r), (cx + t, cy + r), 1, -1)
    return m.astype(bool)


def _object_colour(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    hue = (_HUES[cls] + rng.uniform(-6, 6)) % 180
    hsv = np.array([[[hue, rng.uniform(150, 255), rng.uniform(140, 250)]]], np.float32)
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)[0, 0]
    tex = _texture(rng, size, int(rng.integers(3, 10)))
    return rgb[None, None, :] * (1 + 0.25 * tex[..., None])


def render_sample(seed: int, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (RGB image, id mask) pair; deterministic in its arguments."""
    split_code = sum(ord(c) * 31**i for i, c in enumerate(split)) % 1_000_003
    rng = np.random.default_rng([seed, split_code, index])
    img = _background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        cls = int(rng.integers(1, len(CLASSES)))
        region = _shape_mask(rng, cls, size)
        img[region] = _object_colour(rng, cls, size)[region]
        mask[region] = cls
        if rng.random() < 0.33:  # void border, as in VOC
            ring = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            mask[ring.astype(bool)] = IGNORE
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def shapes_info() -> DatasetInfo:
    return make_info(
        "shapes",
        CLASSES,
        PALETTE,
        IGNORE,
        source="segcli built-in synthetic shapes (seg prepare shapes)",
        label_map="none (generated as ids)",
    )


@register_converter
class Shapes(Converter):
    """Generated samples: no downloads; every pair is a pure function of (seed, split, index, size)."""

    name = "shapes"
    help = "Built-in synthetic dataset of textured shapes (5 classes, some ignore pixels)."
    options = (
        Option("train", int, 300, "Number of training images."),
        Option("val", int, 100, "Number of validation images."),
        Option("size", int, 128, "Image side length in pixels."),
        Option("seed", int, 0, "Random seed (same seed, same dataset)."),
    )
    image_ext = ".jpg"

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        train, val, size, seed = opts["train"], opts["val"], opts["size"], opts["seed"]
        if min(train, val) < 1 or size < 32:
            raise DataError(f"shapes: need train >= 1, val >= 1 and size >= 32 (got {train}, {val}, {size})")
        counts = {"train": train, "val": val}
        samples = [Sample(split, f"{split}_{i:05d}", None, extra=i) for split, n in counts.items() for i in range(n)]
        settings = {"seed": seed, "size": size, "counts": counts}
        return Plan(shapes_info(), samples, {"seed": seed, "size": size}, settings)

    def decode_label(self, srcs: Sources, sample: Sample, params: dict[str, int]) -> np.ndarray:
        return _render(params["seed"], sample.split, sample.extra, params["size"])[1]

    def decode_image(self, srcs: Sources, sample: Sample, params: dict[str, int]) -> np.ndarray:
        return _render(params["seed"], sample.split, sample.extra, params["size"])[0]

    def report(self, result: PrepareResult) -> dict[str, Any]:
        """Only whether the dataset was already there (nothing regenerated)."""
        return {"skipped": result.written == 0}


@functools.lru_cache(maxsize=2)
def _render(seed: int, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_sample`, cached so the mask and the image of one sample are drawn once."""
    return render_sample(seed, split, index, size)


def prepare_shapes(
    out: str | os.PathLike, train: int = 300, val: int = 100, size: int = 128, seed: int = 0, force: bool = False
) -> PrepareResult:
    """Write the shapes dataset to ``out``; a finished identical dataset is left as it is."""
    return prepare("shapes", [], out, write=WriteOptions(force=force), train=train, val=val, size=size, seed=seed)
