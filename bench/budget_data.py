"""Synthetic datasets of the budget benchmark suite (bench/budget.py), written in the segcli format.

* ``manyclass``: street-like scenes, 11 classes from large regions (sky, road, building) to small and thin
  ones (pole 2-3 px wide, sign, person, bicycle), CamVid's class list and proportions in spirit; colours
  jittered per instance, shared between some classes (pole and building, road and sidewalk are close), a
  lighting gradient and pixel noise, so context and shape matter and not only colour.
* ``street19``: the same scenes with Cityscapes' 19 classes (wall, traffic light, terrain, rider, truck, bus,
  train and motorcycle added), for the int8 gate on a 19-class model (bench/int8.py).
* ``smallfg``: binary, a small foreground share (about 1.5 %): small faint spots and short thin curves on a
  textured background, the foreground only a little brighter than its surroundings.

Each generator is deterministic in its seed and writes train, val and test splits under one root.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segcli.data.format import make_info, write_dataset_info
from segcli.data.io import write_image, write_mask

MANY_CLASSES = (
    "road", "sidewalk", "building", "sky", "vegetation", "car", "person", "pole", "sign", "bicycle", "fence",
)  # fmt: skip
# base colours (RGB); pole ~ building, sidewalk ~ road, fence ~ vegetation's darker tones
MANY_COLOURS = np.array(
    [
        [110, 105, 115], [135, 125, 130], [125, 120, 120], [150, 190, 230], [70, 120, 60], [60, 60, 150],
        [180, 80, 80], [120, 115, 110], [220, 200, 40], [200, 60, 200], [90, 110, 70],
    ],
    np.float32,
)  # fmt: skip
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
MANY_TO_CITYSCAPES = np.array([0, 1, 2, 10, 8, 13, 11, 5, 7, 18, 4], np.uint8)  # MANY_CLASSES id → trainId
CITYSCAPES_COLOURS = np.zeros((19, 3), np.float32)
CITYSCAPES_COLOURS[MANY_TO_CITYSCAPES] = MANY_COLOURS
CITYSCAPES_COLOURS[[3, 6, 9, 12, 14, 15, 16, 17]] = [
    [140, 130, 110], [240, 150, 30], [150, 140, 80], [200, 120, 60], [40, 80, 110], [50, 120, 160],
    [90, 70, 120], [170, 40, 90],
]  # fmt: skip
SPLITS = {"train": 0, "val": 1, "test": 2}


def _write(root: Path, split: str, stem: str, image: np.ndarray, mask: np.ndarray) -> None:
    write_image(root / "images" / split / f"{stem}.png", image)
    write_mask(root / "masks" / split / f"{stem}.png", mask)


def _finish(rng: np.random.Generator, colour: np.ndarray, noise: float) -> np.ndarray:
    """A lighting gradient across the image and pixel noise on the ``colour`` image (H, W, 3) float."""
    h, w = colour.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = rng.uniform(-0.25, 0.25, 2)
    light = 1.0 + a * (gx / w - 0.5) + b * (gy / h - 0.5)
    out = colour * light[..., None] + rng.normal(0, noise, colour.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def street_scene(rng: np.random.Generator, h: int = 192, w: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One street-like image and its 11-class mask (:data:`MANY_CLASSES`)."""
    m, _ = street_mask(rng, h, w)
    jitter = rng.uniform(-25, 25, (len(MANY_CLASSES), 3)).astype(np.float32)
    colour = (MANY_COLOURS + jitter)[m]
    return _finish(rng, colour, noise=18.0), m


def street_scene19(rng: np.random.Generator, h: int = 192, w: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One street-like image and its mask in Cityscapes' 19 classes (:data:`CITYSCAPES_CLASSES`)."""
    base, horizon = street_mask(rng, h, w)
    m = MANY_TO_CITYSCAPES[base]
    low = horizon + 10
    for _ in range(int(rng.integers(0, 3))):  # a wall at the foot of the buildings
        x0 = int(rng.integers(0, w - 30))
        wall = m[low - 8 : low, x0 : x0 + int(rng.integers(15, 40))]
        wall[wall == 2] = 3
    if rng.random() < 0.5:  # terrain: a patch of grass on the right sidewalk
        cx, cy = int(rng.integers(int(w * 0.75), w)), int(rng.integers(low + 10, h))
        patch = np.zeros_like(m)
        cv2.ellipse(patch, (cx, cy), (int(rng.integers(10, 30)), int(rng.integers(5, 12))), 0, 0, 360, 1, -1)
        m[(patch == 1) & (m == 1)] = 9
    for _ in range(int(rng.integers(0, 3))):  # traffic lights on short poles
        px, base_y = int(rng.integers(5, w - 5)), int(rng.integers(low + 5, h - 5))
        top = base_y - int(rng.integers(25, 45))
        cv2.line(m, (px, top), (px, base_y), 5, 2)
        cv2.rectangle(m, (px - 2, top - 8), (px + 2, top), 6, -1)
    if rng.random() < 0.3:  # a train along the horizon
        x0 = int(rng.integers(0, w // 2))
        cv2.rectangle(m, (x0, low - 14), (x0 + int(rng.integers(60, 120)), low + 2), 16, -1)
    for cls, (cw, ch) in ((15, (60, 28)), (14, (44, 22))):  # a bus, a truck on the road
        if rng.random() < 0.5:
            cx, cy = int(rng.integers(int(w * 0.3), int(w * 0.7))), int(rng.integers(low + 20, h - 15))
            size = 0.5 + 0.7 * (cy - horizon) / (h - horizon)
            cv2.rectangle(m, (cx - int(cw * size) // 2, cy - int(ch * size)), (cx + int(cw * size) // 2, cy), cls, -1)
    if rng.random() < 0.5:  # a motorcycle and its rider
        bx, by, r = int(rng.integers(20, w - 20)), int(rng.integers(low + 25, h - 8)), int(rng.integers(3, 6))
        cv2.circle(m, (bx - r - 1, by), r, 17, -1)
        cv2.circle(m, (bx + r + 1, by), r, 17, -1)
        cv2.ellipse(m, (bx, by - r - 6), (3, 7), 0, 0, 360, 12, -1)
    jitter = rng.uniform(-25, 25, (len(CITYSCAPES_CLASSES), 3)).astype(np.float32)
    colour = (CITYSCAPES_COLOURS + jitter)[m]
    return _finish(rng, colour, noise=18.0), m


def street_mask(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, int]:
    """The 11-class mask of one street-like scene (:data:`MANY_CLASSES`) and its horizon row."""
    m = np.full((h, w), 3, np.uint8)  # sky
    horizon = int(h * rng.uniform(0.3, 0.45))
    x = 0
    while x < w:  # buildings along the horizon
        bw = int(rng.integers(20, 70))
        top = int(rng.integers(5, horizon))
        m[top : horizon + 10, x : x + bw] = 2
        if rng.random() < 0.4:  # a tree in front
            axes = (int(rng.integers(8, 20)), int(rng.integers(8, 18)))
            cv2.ellipse(m, (x + bw // 2, top + 5), axes, 0, 0, 360, 4, -1)
        x += bw + int(rng.integers(0, 6))
    m[horizon + 10 :, :] = 1  # sidewalk
    road = np.array([[w * 0.42, horizon + 10], [w * 0.58, horizon + 10], [w * 1.05, h], [-w * 0.05, h]], np.int32)
    cv2.fillPoly(m, [road], 0)
    if rng.random() < 0.6:  # a fence along the left sidewalk
        y0 = horizon + 12
        cv2.rectangle(m, (0, y0), (int(w * 0.3), y0 + 3), 10, -1)
        for fx in range(0, int(w * 0.3), 6):
            cv2.line(m, (fx, y0 - 8), (fx, y0 + 3), 10, 1)
    for _ in range(int(rng.integers(1, 4))):  # cars on the road
        cy = int(rng.integers(horizon + 25, h - 10))
        size = 0.4 + 0.8 * (cy - horizon) / (h - horizon)
        cw, ch = int(36 * size), int(16 * size)
        cx = int(rng.integers(int(w * 0.25), int(w * 0.75)))
        cv2.rectangle(m, (cx - cw // 2, cy - ch // 2), (cx + cw // 2, cy + ch // 2), 5, -1)
        cv2.ellipse(m, (cx, cy - ch // 2), (cw // 3, max(ch // 3, 2)), 0, 180, 360, 5, -1)
    for _ in range(int(rng.integers(1, 4))):  # poles with a sign
        px = int(rng.choice([rng.integers(5, int(w * 0.3)), rng.integers(int(w * 0.7), w - 5)]))
        base = int(rng.integers(horizon + 15, h - 5))
        top = base - int(rng.integers(40, 80))
        cv2.line(m, (px, top), (px, base), 7, int(rng.integers(2, 4)))
        if rng.random() < 0.7:
            s = int(rng.integers(4, 7))
            cv2.rectangle(m, (px - s, top - s), (px + s, top + s), 8, -1)
    for _ in range(int(rng.integers(0, 5))):  # people on the sidewalks
        px = int(rng.choice([rng.integers(5, int(w * 0.35)), rng.integers(int(w * 0.65), w - 5)]))
        py = int(rng.integers(horizon + 20, h - 12))
        cv2.ellipse(m, (px, py), (int(rng.integers(2, 5)), int(rng.integers(7, 13))), 0, 0, 360, 6, -1)
    if rng.random() < 0.5:  # a bicycle: two thin rings and a bar
        bx, by, r = int(rng.integers(20, w - 20)), int(rng.integers(horizon + 30, h - 8)), int(rng.integers(4, 7))
        cv2.circle(m, (bx - r - 2, by), r, 9, 1)
        cv2.circle(m, (bx + r + 2, by), r, 9, 1)
        cv2.line(m, (bx - r - 2, by), (bx + r + 2, by - r), 9, 1)
    return m, horizon


def small_foreground(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One textured grey image with faint spots and short thin curves (class 1) on it (about 1.5 % of the pixels)."""
    base = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 8)
    base = 125 + 30 * base / (np.abs(base).max() + 1e-6)
    m = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(8, 20))):
        cv2.circle(m, (int(rng.integers(4, size - 4)), int(rng.integers(4, size - 4))), int(rng.integers(2, 6)), 1, -1)
    for _ in range(int(rng.integers(2, 6))):
        pts = np.cumsum(rng.normal(0, 6, (6, 2)), axis=0) + rng.integers(30, size - 30, 2)
        cv2.polylines(m, [pts.astype(np.int32)], False, 1, int(rng.integers(1, 3)))
    grey = base + 28.0 * m
    colour = np.repeat(grey[..., None], 3, axis=2)
    return _finish(rng, colour, noise=14.0), m


def write_synthetic(name: str, root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """Write dataset ``name`` (manyclass, street19 or smallfg) to ``root`` with ``counts`` images per split (once)."""
    if (root / "dataset.toml").is_file():
        return root
    classes, scene = GENERATORS[name]
    for split, n in counts.items():
        rng = np.random.default_rng([seed, SPLITS[split]])
        for i in range(n):
            image, mask = scene(rng)
            _write(root, split, f"{i:04d}", image, mask)
    write_dataset_info(root, make_info(name, list(classes), source="bench/budget_data.py (synthetic)"))
    return root


GENERATORS = {  # name → (class names, one image and its mask)
    "manyclass": (MANY_CLASSES, street_scene),
    "street19": (CITYSCAPES_CLASSES, street_scene19),
    "smallfg": (("background", "spot"), small_foreground),
}
