"""`seg prepare shapes`: a built-in, seeded synthetic dataset of textured shapes.

Classes are shape kinds drawn with class-typical (jittered) colours and textures on textured,
mostly grey backgrounds. About a third of the objects get a void border of ``ignore_index``
pixels, as VOC annotations do. Every image is a pure function of (seed, split, index).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from segcli.data.format import DatasetInfo, make_info, read_dataset_info, validate_dataset, write_dataset_info
from segcli.data.io import write_image, write_mask
from segcli.errors import DataError

CLASSES = ("background", "circle", "square", "triangle", "cross")
PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]]
# Base hues (OpenCV scale 0-180) of the object classes.
_HUES = {1: 0, 2: 60, 3: 110, 4: 18}
IGNORE = 255


@dataclass(frozen=True)
class ShapesResult:
    root: Path
    counts: dict[str, int]
    skipped: bool


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


def shapes_info(size: int, seed: int, counts: dict[str, int]) -> DatasetInfo:
    return make_info(
        "shapes",
        CLASSES,
        PALETTE,
        IGNORE,
        source="segcli built-in synthetic shapes (seg prepare shapes)",
        label_map="none (generated as ids)",
        generator={"seed": seed, "size": size, "counts": counts},
    )


def prepare_shapes(
    out: str | os.PathLike,
    train: int = 300,
    val: int = 100,
    size: int = 128,
    seed: int = 0,
    force: bool = False,
) -> ShapesResult:
    """Write the shapes dataset to ``out``; a finished identical dataset is left as it is."""
    root = Path(out)
    counts = {"train": train, "val": val}
    if min(train, val) < 1 or size < 32:
        raise DataError(f"shapes: need train >= 1, val >= 1 and size >= 32 (got {train}, {val}, {size})")
    want = shapes_info(size, seed, counts)
    if root.exists() and any(root.iterdir()):
        if not (root / "dataset.toml").is_file():
            raise DataError(f"{root}: folder exists and is not a segcli dataset; choose an empty --out folder")
        have = read_dataset_info(root)
        if have.name != "shapes":
            raise DataError(f"{root}: holds dataset {have.name!r}; choose another --out folder")
        if have.extra.get("generator") != want.extra["generator"] and not force:
            raise DataError(
                f"{root}: holds shapes made with other settings {have.extra.get('generator')}; "
                "pass --force to regenerate or choose another --out folder"
            )
    skipped = True
    for split, n in counts.items():
        for i in range(n):
            stem = f"{split}_{i:05d}"
            img_path = root / "images" / split / f"{stem}.jpg"
            mask_path = root / "masks" / split / f"{stem}.png"
            if not force and img_path.is_file() and mask_path.is_file():
                continue
            skipped = False
            image, mask = render_sample(seed, split, i, size)
            write_image(img_path, image)
            write_mask(mask_path, mask)
    write_dataset_info(root, want)
    validate_dataset(root, sample_masks=8)
    return ShapesResult(root=root, counts=counts, skipped=skipped)
