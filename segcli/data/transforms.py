"""Paired image/mask transforms on numpy arrays (OpenCV).

Images are RGB uint8 (H, W, 3), or N-channel (H, W, N) uint8 or float32 in [0, 255] units (``data.channels``:
every geometric op keeps the channel axis, OpenCV calls taking at most 4 channels get them 4 at a time); masks
are integer ids (H, W). Geometric ops resize masks with
nearest-neighbour so they stay integer ids, and pad masks with ``ignore_index`` so padding is
never learned as a class. Every random op draws from the ``rng`` it is given, which makes a
sample's augmentation a pure function of its seed (see ``datasets.SeededSampler``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from segcli.config.schema import AugmentConfig

Pair = tuple[np.ndarray, np.ndarray]
_CV_CHANNELS = 4  # the most channels every OpenCV warp and border call takes at once


def per_channels(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """``fn`` (an OpenCV call on one image) on an image of any channel count: on 4 channels at a time when it has
    more, and with the channel axis kept when it has one (OpenCV returns (H, W) for (H, W, 1))."""
    if image.ndim == 2 or image.shape[2] <= _CV_CHANNELS:
        out = fn(image)
        return out[..., None] if image.ndim == 3 and out.ndim == 2 else out
    step = _CV_CHANNELS
    parts = [per_channels(fn, np.ascontiguousarray(image[..., i : i + step])) for i in range(0, image.shape[2], step)]
    return np.concatenate(parts, axis=2)


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
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    image = per_channels(lambda im: cv2.resize(im, (w, h), interpolation=interpolation), image)
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


def scaled_size(height: int, width: int, ratio: float, resize_to: Sequence[int] = ()) -> tuple[int, int]:
    """The (height, width) a random rescale by ``ratio`` gives.

    Without ``resize_to`` the ratio is relative to the image's own size. With ``resize_to`` = [long, short] it is
    mmseg's ``RandomResize(scale=resize_to, ratio_range=..., keep_ratio=True)``: the target scale becomes
    ``(int(long * ratio), int(short * ratio))`` and the image is resized, keeping its aspect ratio, to fit inside
    it (:func:`keep_ratio_size`), so every image comes out at about the same size whatever its native size.
    """
    if resize_to:
        h, w = keep_ratio_size(height, width, (int(resize_to[0] * ratio), int(resize_to[1] * ratio)))
        return max(1, h), max(1, w)
    return max(1, round(height * ratio)), max(1, round(width * ratio))


def crop_is_varied(mask: np.ndarray, cat_max_ratio: float, ignore_index: int) -> bool:
    """mmseg ``RandomCrop``'s test: more than one class in the crop and none covering ``cat_max_ratio`` or more of
    its labelled pixels (``ignore_index`` excluded)."""
    counts = np.bincount(mask.ravel())
    if ignore_index < len(counts):
        counts[ignore_index] = 0
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio


def _offsets(
    rng: np.random.Generator,
    h: int,
    w: int,
    ch: int,
    cw: int,
    accept,
    cat_max_ratio: float,  # noqa: ANN001
) -> tuple[int, int]:
    """A random (y, x) for a (ch, cw) crop of an (h, w) image; with ``cat_max_ratio`` < 1 redrawn up to 10 times
    while ``accept(y, x)`` is false, the last draw kept (mmseg's rule)."""
    y, x = int(rng.integers(0, max(h - ch, 0) + 1)), int(rng.integers(0, max(w - cw, 0) + 1))
    if cat_max_ratio < 1.0:
        for _ in range(10):
            if accept(y, x):
                break
            y, x = int(rng.integers(0, max(h - ch, 0) + 1)), int(rng.integers(0, max(w - cw, 0) + 1))
    return y, x


class RandomScale:
    """Rescale both by a factor drawn uniformly from [lo, hi] (of ``resize_to`` when given: :func:`scaled_size`)."""

    def __init__(self, lo: float, hi: float, resize_to: Sequence[int] = ()) -> None:
        self.lo, self.hi, self.resize_to = lo, hi, tuple(resize_to)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        s = rng.uniform(self.lo, self.hi)
        h, w = mask.shape
        return resize_pair(image, mask, scaled_size(h, w, s, self.resize_to))  # type: ignore[return-value]


class RandomCrop:
    """Crop (height, width) at a random offset; pad first when smaller (image 0, mask ignore_index).

    ``cat_max_ratio`` < 1 redraws the offset (up to 10 times) while one class covers that share or more of the
    crop's labelled pixels: mmseg's ``RandomCrop(cat_max_ratio=0.75)``, which keeps crops from being all road or sky.
    """

    def __init__(self, height: int, width: int, ignore_index: int, cat_max_ratio: float = 1.0) -> None:
        self.h, self.w, self.ignore_index, self.cat_max_ratio = height, width, ignore_index, cat_max_ratio

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        h, w = mask.shape
        ph, pw = max(self.h - h, 0), max(self.w - w, 0)
        if ph or pw:
            image = per_channels(lambda im: cv2.copyMakeBorder(im, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0), image)
            mask = cv2.copyMakeBorder(mask, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=self.ignore_index)
            h, w = mask.shape

        def accept(y: int, x: int) -> bool:
            return crop_is_varied(mask[y : y + self.h, x : x + self.w], self.cat_max_ratio, self.ignore_index)

        y, x = _offsets(rng, h, w, self.h, self.w, accept, self.cat_max_ratio)
        return image[y : y + self.h, x : x + self.w], mask[y : y + self.h, x : x + self.w]


class RandomScaleCrop:
    """:class:`RandomScale` then :class:`RandomCrop` (same random draws), computing only the crop's pixels.

    The image is one ``cv2.warpAffine`` of the source window onto the crop, with the half-pixel mapping
    ``cv2.resize`` uses (bilinear, also when shrinking); the mask is a nearest-neighbour gather with the
    indices ``cv2.resize`` would pick. Pixels outside the rescaled image are padding (image 0, mask
    ignore_index), as when the crop is larger than the rescaled image. Resizing a 1024x2048 source to up
    to 2x before cropping 512x512 costs 5-30x the pixels of the crop itself. ``resize_to`` and
    ``cat_max_ratio`` are those of :class:`RandomScale` and :class:`RandomCrop`; a redrawn crop costs one
    mask gather, the image is warped once.
    """

    def __init__(
        self,
        lo: float,
        hi: float,
        height: int,
        width: int,
        ignore_index: int,
        resize_to: Sequence[int] = (),
        cat_max_ratio: float = 1.0,
    ) -> None:
        self.lo, self.hi, self.h, self.w, self.ignore_index = lo, hi, height, width, ignore_index
        self.resize_to, self.cat_max_ratio = tuple(resize_to), cat_max_ratio

    def _mask_crop(self, mask: np.ndarray, sh: int, sw: int, y: int, x: int) -> np.ndarray:
        """The (h, w) crop at (y, x) of ``mask`` resized (nearest) to (sh, sw), padded with ignore_index."""
        h, w = mask.shape
        ay, ax = h / sh, w / sw
        ys, xs = np.arange(y, y + self.h), np.arange(x, x + self.w)
        src_y = np.minimum((ys * ay).astype(np.intp), h - 1)
        src_x = np.minimum((xs * ax).astype(np.intp), w - 1)
        out = mask[src_y[:, None], src_x[None, :]]
        pad_y, pad_x = max(sh - y, 0), max(sw - x, 0)  # rows/columns past these are padding
        out[pad_y:], out[:, pad_x:] = self.ignore_index, self.ignore_index
        return out

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        s = rng.uniform(self.lo, self.hi)
        h, w = mask.shape
        sh, sw = scaled_size(h, w, s, self.resize_to)

        def accept(y: int, x: int) -> bool:
            return crop_is_varied(self._mask_crop(mask, sh, sw, y, x), self.cat_max_ratio, self.ignore_index)

        y, x = _offsets(rng, sh, sw, self.h, self.w, accept, self.cat_max_ratio)
        out_mask = self._mask_crop(mask, sh, sw, y, x)
        ay, ax = h / sh, w / sw  # source pixels per rescaled pixel
        m = np.array([[ax, 0.0, ax * (x + 0.5) - 0.5], [0.0, ay, ay * (y + 0.5) - 0.5]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        out = per_channels(
            lambda im: cv2.warpAffine(im, m, (self.w, self.h), flags=flags, borderMode=cv2.BORDER_REPLICATE), image
        )
        pad_y, pad_x = max(sh - y, 0), max(sw - x, 0)
        if pad_y < self.h or pad_x < self.w:
            out[pad_y:], out[:, pad_x:] = 0, 0
        return out, out_mask


class HorizontalFlip:
    """Mirror left-right with probability p."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() < self.p:
            return image[:, ::-1], mask[:, ::-1]
        return image, mask


class VerticalFlip:
    """Mirror top-bottom with probability p."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() < self.p:
            return image[::-1], mask[::-1]
        return image, mask


class QuarterTurns:
    """With probability p, rotate by 1, 2 or 3 quarter turns (each as likely); an image that is not square turns
    by a half turn only, so that every sample of a batch keeps the crop's size."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        k = int(rng.integers(1, 4)) if image.shape[0] == image.shape[1] else 2
        return np.rot90(image, k, axes=(0, 1)), np.rot90(mask, k, axes=(0, 1))


class ElasticWarp:
    """With probability p, U-Net's elastic deformation (Ronneberger et al. 2015, section 3.1): displacements drawn
    from N(0, std^2) pixels on a coarse 3x3 grid, interpolated bicubically to every pixel; the image resampled
    bilinearly, the mask by nearest neighbour (ids stay ids), both reflected at the border so that no pixel is
    left unlabelled."""

    GRID = 3

    def __init__(self, p: float, std: float) -> None:
        self.p, self.std = p, std

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        h, w = mask.shape[:2]
        coarse = rng.normal(0.0, self.std, size=(2, self.GRID, self.GRID)).astype(np.float32)
        dx, dy = (cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in coarse)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        mx, my = gx + dx, gy + dy
        border = cv2.BORDER_REFLECT_101
        image = per_channels(
            lambda im: cv2.remap(im, mx, my, cv2.INTER_LINEAR, borderMode=border), np.ascontiguousarray(image)
        )
        mask = cv2.remap(np.ascontiguousarray(mask), mx, my, cv2.INTER_NEAREST, borderMode=border)
        return image, mask


class ColorJitter:
    """Random brightness, contrast, saturation (relative amounts) and hue shift; image only.

    On an RGB uint8 image as always; on another (N channels, or float): brightness and contrast on every channel,
    saturation and hue on the first three (RGB) when there are three or more, the same draws (:meth:`_nonrgb`).
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        self.b, self.c, self.s, self.h = brightness, contrast, saturation, hue

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if not (self.b or self.c or self.s or self.h):
            return image, mask
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            return self._nonrgb(image, rng), mask
        # Brightness, contrast and saturation are one affine map of the RGB vector (the grey weights sum to
        # 1), applied in one cv2.transform pass that also rounds and saturates to uint8.
        image, alpha, beta = np.ascontiguousarray(image), 1.0, 0.0  # a flipped view has negative strides
        if self.b:
            alpha = rng.uniform(1 - self.b, 1 + self.b)
        if self.c:
            mean = alpha * float(np.mean(cv2.mean(image)[:3]))
            c = rng.uniform(1 - self.c, 1 + self.c)
            alpha, beta = alpha * c, (1 - c) * mean
        mix = np.eye(3)
        if self.s:
            sat = rng.uniform(1 - self.s, 1 + self.s)
            mix = sat * np.eye(3) + (1 - sat) * np.tile([0.299, 0.587, 0.114], (3, 1))
        img = cv2.transform(image, np.hstack([alpha * mix, np.full((3, 1), beta)]))
        if self.h:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            shift = int(round(rng.uniform(-self.h, self.h) * 180))
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return img, mask

    def _nonrgb(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The jitter of an N-channel or float image, in float32; the draws in the order of the RGB path."""
        img = image.astype(np.float32)
        alpha, beta = rng.uniform(1 - self.b, 1 + self.b) if self.b else 1.0, 0.0
        if self.c:
            mean = alpha * float(img.mean())
            c = rng.uniform(1 - self.c, 1 + self.c)
            alpha, beta = alpha * c, (1 - c) * mean
        img = img * alpha + beta
        rgb = img.ndim == 3 and img.shape[2] >= 3
        if self.s:
            sat = rng.uniform(1 - self.s, 1 + self.s)
            if rgb:
                grey = img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
                img[..., :3] = sat * img[..., :3] + (1 - sat) * grey[..., None]
        if self.h:
            shift = rng.uniform(-self.h, self.h) * 360.0  # degrees: float HSV hue is in [0, 360)
            if rgb:
                hsv = cv2.cvtColor(np.ascontiguousarray(np.maximum(img[..., :3], 0) / 255.0), cv2.COLOR_RGB2HSV)
                hsv[..., 0] = (hsv[..., 0] + shift) % 360.0
                img[..., :3] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
        if image.dtype == np.uint8:
            return np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return img


def build_train_transform(cfg: AugmentConfig, ignore_index: int) -> Compose:
    """The training pipeline of a preset: scale (to ``resize_to`` when set) → crop (padded, ``cat_max_ratio``)
    → elastic deformation → flips → quarter turns → colour jitter."""
    ops: list = []
    lo, hi = (tuple(cfg.scale) + (1.0, 1.0))[:2] if cfg.scale else (1.0, 1.0)
    ch, cw = (tuple(cfg.crop_size) * 2)[:2] if cfg.crop_size else (0, 0)
    scaling = bool(cfg.resize_to) or (lo, hi) != (1.0, 1.0)
    if scaling and cfg.crop_size:  # only the crop's pixels are computed
        ops.append(RandomScaleCrop(lo, hi, ch, cw, ignore_index, cfg.resize_to, cfg.cat_max_ratio))
    elif scaling:
        ops.append(RandomScale(lo, hi, cfg.resize_to))
    elif cfg.crop_size:
        ops.append(RandomCrop(ch, cw, ignore_index, cfg.cat_max_ratio))
    if cfg.elastic:
        ops.append(ElasticWarp(cfg.elastic, cfg.elastic_std))
    if cfg.hflip:
        ops.append(HorizontalFlip(cfg.hflip))
    if cfg.vflip:
        ops.append(VerticalFlip(cfg.vflip))
    if cfg.rot90:
        ops.append(QuarterTurns(cfg.rot90))
    ops.append(ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue))
    return Compose(ops)
