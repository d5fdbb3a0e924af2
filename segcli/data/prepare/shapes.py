"""`seg prepare shapes`: a built-in, seeded synthetic dataset of textured shapes.

Classes are shape kinds drawn with class-typical (jittered) colours and textures on textured,
mostly grey backgrounds. About a third of the objects get a void border of ``ignore_index``
pixels, as VOC annotations do. Every image is a pure function of (seed, split, index).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
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
    r = int(rng.integers(size // 10, size // 4))
    cx, cy = (int(v) for v in rng.integers(r // 2, size - r // 2, size=2))
    return draw_shape(_ShapeGeometry(cls, r, *_shape_extras(rng, cls, r)), (cx, cy), 0.0, size)


@dataclass(frozen=True)
class _ShapeGeometry:
    """One shape's kind and size: radius ``r``, the square's angle and side factors, the triangle's first angle."""

    cls: int
    r: int
    angle: float = 0.0  # degrees (square), radians (triangle)
    sides: tuple[float, float] = (1.0, 1.0)


def _shape_extras(rng: np.random.Generator, cls: int, r: int) -> tuple[float, tuple[float, float]]:
    """The angle and side factors of a shape, drawn as the stills always drew them (same generator calls)."""
    if cls == 2:
        angle = rng.uniform(0, 90)
        return angle, (rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2))
    if cls == 3:
        return rng.uniform(0, 2 * np.pi), (1.0, 1.0)
    return 0.0, (1.0, 1.0)


def draw_shape(g: _ShapeGeometry, centre: tuple[float, float], turn: float, size: int) -> np.ndarray:
    """The (size, size) boolean region of shape ``g`` at ``centre``, turned by ``turn`` degrees."""
    m = np.zeros((size, size), np.uint8)
    cx, cy = (int(round(v)) for v in centre)
    r = g.r
    if g.cls == 1:
        cv2.circle(m, (cx, cy), r, 1, -1)
    elif g.cls == 2:
        box = cv2.boxPoints(((cx, cy), (2 * r * g.sides[0], 2 * r * g.sides[1]), g.angle + turn))
        cv2.fillPoly(m, [box.astype(np.int32)], 1)
    elif g.cls == 3:
        a0 = g.angle + np.deg2rad(turn)
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


VIDEO_SPLIT = "video"
VIDEO_FILE = "video.avi"  # lossless (FFV1): the frames the split holds as images, as one video


@dataclass(frozen=True)
class _Mover:
    """One object of the video: its shape, first centre, velocity (pixels a frame), turn (degrees a frame),
    colour field and whether it has a void border."""

    shape: _ShapeGeometry
    start: tuple[float, float]
    velocity: tuple[float, float]
    spin: float
    colour: np.ndarray
    void: bool


def _bounce(x0: float, v: float, t: int, lo: float, hi: float) -> float:
    """Where a point starting at ``x0`` with speed ``v`` is after ``t`` frames, reflected by the walls lo, hi."""
    span = max(hi - lo, 1e-6)
    p = (x0 - lo + v * t) % (2 * span)
    return lo + (p if p <= span else 2 * span - p)


@functools.lru_cache(maxsize=4)
def _scene(seed: int, size: int) -> tuple[np.ndarray, tuple[_Mover, ...]]:
    """The video's background and moving objects (one of each class, up to two more): a function of (seed, size)."""
    rng = np.random.default_rng([seed, 0x71DE0])
    background = _background(rng, size)
    movers = []
    kinds = [*range(1, len(CLASSES)), *rng.integers(1, len(CLASSES), size=int(rng.integers(0, 3))).tolist()]
    for cls in rng.permutation(kinds).tolist():  # every class at least once, in a random drawing order
        r = int(rng.integers(size // 10, size // 5))
        start = tuple(float(v) for v in rng.uniform(r, size - r, size=2))
        speed, heading = rng.uniform(0.01, 0.025) * size, rng.uniform(0, 2 * np.pi)
        velocity = (speed * np.cos(heading), speed * np.sin(heading))
        shape = _ShapeGeometry(cls, r, *_shape_extras(rng, cls, r))
        spin = float(rng.uniform(-4, 4))
        movers.append(_Mover(shape, start, velocity, spin, _object_colour(rng, cls, size), bool(rng.random() < 0.33)))
    return background, tuple(movers)


def render_frame(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``index`` of the moving-shapes video (RGB image, id mask): one textured background, 4-6 shapes
    gliding and turning at constant speed, bouncing off the borders, each with its colour field moving along;
    fresh sensor noise every frame. A pure function of its arguments (any frame, in any order)."""
    background, movers = _scene(seed, size)
    img = background.copy()
    mask = np.zeros((size, size), np.uint8)
    for m in movers:
        r = m.shape.r
        centre = tuple(_bounce(x0, v, index, r / 2, size - r / 2) for x0, v in zip(m.start, m.velocity))
        region = draw_shape(m.shape, centre, m.spin * index, size)
        shift = np.float32([[1, 0, centre[0] - m.start[0]], [0, 1, centre[1] - m.start[1]]])
        colour = cv2.warpAffine(m.colour, shift, (size, size), borderMode=cv2.BORDER_REFLECT)
        img[region] = colour[region]
        mask[region] = m.shape.cls
        if m.void:
            ring = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            mask[ring.astype(bool)] = IGNORE
    img += np.random.default_rng([seed, 0x71DE0, index]).normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def write_video(path: str | os.PathLike, seed: int, frames: int, size: int, fps: float = 10.0) -> Path:
    """The video's ``frames`` frames as one lossless FFV1 ``.avi`` at ``path`` (written atomically)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"FFV1"), fps, (size, size))
    try:
        if not video.isOpened():
            raise DataError(f"{path}: OpenCV cannot write an FFV1 video here (no FFmpeg backend)")
        for k in range(frames):
            video.write(cv2.cvtColor(render_frame(seed, k, size)[0], cv2.COLOR_RGB2BGR))
        video.release()
        os.replace(tmp, path)
    finally:
        video.release()
        tmp.unlink(missing_ok=True)
    return path


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
        Option(
            "video",
            int,
            0,
            "Also a moving-shapes video of this many frames: split 'video' (its frames and masks, in order) "
            f"and {VIDEO_FILE} (the same frames, lossless).",
            min=0,
        ),
    )
    image_ext = ".jpg"

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        train, val, size, seed = opts["train"], opts["val"], opts["size"], opts["seed"]
        if min(train, val) < 1 or size < 32 or opts["video"] < 0:
            raise DataError(
                f"shapes: need train >= 1, val >= 1, size >= 32 and video >= 0 (got {train}, {val}, {size}, "
                f"{opts['video']})"
            )
        counts = {"train": train, "val": val, **({VIDEO_SPLIT: opts["video"]} if opts["video"] else {})}
        samples = [Sample(split, f"{split}_{i:05d}", None, extra=i) for split, n in counts.items() for i in range(n)]
        settings = {"seed": seed, "size": size, "counts": counts}
        return Plan(shapes_info(), samples, {"seed": seed, "size": size}, settings)

    def finish(self, result: PrepareResult, opts: dict[str, Any]) -> None:
        """With ``video``: the video file beside the split, unless a run that wrote nothing left it there."""
        path = result.root / VIDEO_FILE
        if opts["video"] and (result.written or not path.is_file()):
            write_video(path, opts["seed"], opts["video"], opts["size"])

    def decode_label(self, srcs: Sources, sample: Sample, params: dict[str, int]) -> np.ndarray:
        return _render(params["seed"], sample.split, sample.extra, params["size"])[1]

    def decode_image(self, srcs: Sources, sample: Sample, params: dict[str, int]) -> np.ndarray:
        return _render(params["seed"], sample.split, sample.extra, params["size"])[0]

    def report(self, result: PrepareResult) -> dict[str, Any]:
        """Only whether the dataset was already there (nothing regenerated)."""
        return {"skipped": result.written == 0}


@functools.lru_cache(maxsize=2)
def _render(seed: int, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_sample` (:func:`render_frame` for the video split), cached so the mask and the image of one
    sample are drawn once."""
    return render_frame(seed, index, size) if split == VIDEO_SPLIT else render_sample(seed, split, index, size)


def prepare_shapes(
    out: str | os.PathLike,
    train: int = 300,
    val: int = 100,
    size: int = 128,
    seed: int = 0,
    force: bool = False,
    video: int = 0,
) -> PrepareResult:
    """Write the shapes dataset to ``out`` (``video``: and a moving-shapes video of that many frames); a finished
    identical dataset is left as it is."""
    write = WriteOptions(force=force)
    return prepare("shapes", [], out, write=write, train=train, val=val, size=size, seed=seed, video=video)
