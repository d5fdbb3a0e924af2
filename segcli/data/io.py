"""Image and mask reading/writing with OpenCV (PIL only for palette PNGs), with clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from segcli.errors import DataError
from segcli.io_utils import atomic_write

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# Decoding is single-threaded per call; the data loader parallelises across workers instead.
cv2.setNumThreads(0)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3). Greyscale and 16-bit inputs are converted."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: image file is empty (0 bytes); re-download or remove it")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: cannot decode image (corrupt or unsupported format)")
    if img.dtype == np.uint16:
        img = (img / 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: unsupported image dtype {img.dtype}; expected 8- or 16-bit")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a class-id mask (H, W) as uint8 or uint16.

    Palette (mode P) PNGs are read as their palette indices, which are the class ids. A
    colour (RGB) mask is an error: its colours must first be mapped to ids by ``seg prepare``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mask file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: mask file is empty (0 bytes); re-create it with seg prepare")
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"{path}: cannot decode mask (corrupt or unsupported format)")
    if mask.ndim == 3:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode == "P":
                return np.asarray(im, dtype=np.uint8).copy()
        raise DataError(
            f"{path}: mask has {mask.shape[2]} channels; masks must be single-channel class ids "
            "(convert colour masks with `seg prepare folder --colors FILE`)"
        )
    if mask.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: mask dtype {mask.dtype} unsupported; expected uint8 or uint16")
    return mask


def write_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write an RGB uint8 image atomically (format from the extension)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if Path(path).suffix.lower() in (".jpg", ".jpeg") else []

    def _w(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
            raise DataError(f"{path}: cannot write image")

    return atomic_write(path, _w)


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a single-channel id mask as PNG atomically (uint8, or uint16 above 255 classes)."""
    if mask.ndim != 2 or mask.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"mask must be 2-D uint8/uint16, got {mask.shape} {mask.dtype}")

    def _w(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), mask):
            raise DataError(f"{path}: cannot write mask")

    return atomic_write(path, _w, suffix=".png")


def write_palette_mask(path: str | os.PathLike, mask: np.ndarray, palette: list[list[int]]) -> Path:
    """Write a uint8 id mask as a palette PNG: viewers show colours, readers get the ids back."""
    from PIL import Image

    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    flat = [c for rgb in palette for c in rgb]
    flat += [0] * (768 - len(flat))
    im.putpalette(flat[:768])
    return atomic_write(path, lambda tmp: im.save(tmp, format="PNG"), suffix=".png")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files directly inside ``folder``."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
