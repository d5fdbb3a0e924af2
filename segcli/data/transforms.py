"""Paired image/mask transforms on numpy arrays (OpenCV).

Images are RGB uint8 (H, W, 3); masks are integer ids (H, W). Geometric ops resize masks with
nearest-neighbour so they stay integer ids, and pad masks with ``ignore_index`` so padding is
never learned as a class. Every random op draws from the ``rng`` it is given, which makes a
sample's augmentation a pure function of its seed (see ``datasets.SeededSampler``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from segcli.config.schema import AugmentConfig

Pair = tuple[np.ndarray, np.ndarray]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        for t in self.transforms:
            image, mask = t(image, mask, rng)
        return image, mask


def resize_pair(
    image: np.ndarray, mask: np.ndarray | None, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to (height, width): bilinear (area when shrinking) for the image, nearest for the mask."""
    h, w = size
    shrink = h * w < image.shape[0] * image.shape[1]
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if mask is not None:
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, mask


def keep_ratio_size(height: int, width: int, scale: Sequence[int]) -> tuple[int, int]:
    """(height, width) that fits inside ``scale`` = [long, short] (either order) keeping the aspect ratio.

    mmseg/mmcv's ``Resize(scale, keep_ratio=True)`` rule: factor = min(long / long side, short / short side),
    each side ``int(side * factor + 0.5)``.
    """
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def inference_size(
    height: int, width: int, size: Sequence[int] = (), keep_ratio: Sequence[int] = ()
) -> tuple[int, int]:
    """The size an image is resized to before the model: ``eval.size`` (exact), ``eval.keep_ratio``, or its own."""
    if size:
        return int(size[0]), int(size[1])
    if keep_ratio:
        return keep_ratio_size(height, width, keep_ratio)
    return height, width


class RandomScale:
    """Rescale both by a factor drawn uniformly from [lo, hi]."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        s = rng.uniform(self.lo, self.hi)
        h, w = mask.shape
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return resize_pair(image, mask, size)  # type: ignore[return-value]


class RandomCrop:
    """Crop (height, width) at a random offset; pad first when smaller (image 0, mask ignore_index)."""

    def __init__(self, height: int, width: int, ignore_index: int) -> None:
        self.h, self.w, self.ignore_index = height, width, ignore_index

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        h, w = mask.shape
        ph, pw = max(self.h - h, 0), max(self.w - w, 0)
        if ph or pw:
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            mask = cv2.copyMakeBorder(mask, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=self.ignore_index)
            h, w = mask.shape
        y = int(rng.integers(0, h - self.h + 1))
        x = int(rng.integers(0, w - self.w + 1))
        return image[y : y + self.h, x : x + self.w], mask[y : y + self.h, x : x + self.w]


class HorizontalFlip:
    """Mirror left-right with probability p."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() < self.p:
            return image[:, ::-1], mask[:, ::-1]
        return image, mask


class ColorJitter:
    """Random brightness, contrast, saturation (relative amounts) and hue shift; image only."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        self.b, self.c, self.s, self.h = brightness, contrast, saturation, hue

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if not (self.b or self.c or self.s or self.h):
            return image, mask
        img = image.astype(np.float32)
        if self.b:
            img *= rng.uniform(1 - self.b, 1 + self.b)
        if self.c:
            mean = img.mean()
            img = (img - mean) * rng.uniform(1 - self.c, 1 + self.c) + mean
        if self.s:
            grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            img = (img - grey[..., None]) * rng.uniform(1 - self.s, 1 + self.s) + grey[..., None]
        img = np.clip(img, 0, 255).astype(np.uint8)
        if self.h:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            shift = int(round(rng.uniform(-self.h, self.h) * 180))
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return img, mask


def build_train_transform(cfg: AugmentConfig, ignore_index: int) -> Compose:
    """The training pipeline of a preset: scale → crop (padded) → flip → colour jitter."""
    ops: list = []
    lo, hi = (tuple(cfg.scale) + (1.0, 1.0))[:2] if cfg.scale else (1.0, 1.0)
    if (lo, hi) != (1.0, 1.0):
        ops.append(RandomScale(lo, hi))
    if cfg.crop_size:
        ch, cw = cfg.crop_size if len(cfg.crop_size) == 2 else (cfg.crop_size[0], cfg.crop_size[0])
        ops.append(RandomCrop(ch, cw, ignore_index))
    if cfg.hflip:
        ops.append(HorizontalFlip(cfg.hflip))
    ops.append(ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue))
    return Compose(ops)
