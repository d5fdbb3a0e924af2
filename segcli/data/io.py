"""Image and mask files: read through :mod:`segcli.data.decode`, written atomically with OpenCV."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from segcli.data.decode import TIFF_EXTS, decode_channels, decode_image, decode_mask, read_file
from segcli.errors import DataError
from segcli.extras import package_available
from segcli.io_utils import atomic_write_bytes

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(
    path: str | os.PathLike, channels: int | None = 3, extras: Sequence[str | os.PathLike] = ()
) -> np.ndarray:
    """Read an image for a model of ``channels`` input channels (``data.channels``; None: as many as it has).

    RGB (3 channels, no ``extras``): RGB uint8 (H, W, 3), greyscale and 16-bit inputs converted (a TIFF through
    ``tifffile`` when it is installed, grey repeated). Any other count: (H, W, channels), the file's own channels
    then each ``extras`` file's (extra-channel folders such as ``nir/``), in the model's units
    (:func:`segcli.data.decode.to_model_range`: uint8 when every part is 8-bit, else float32 in [0, 255] for
    16-bit). A file with another channel count, or another size than the image, is a DataError naming it.
    """
    data = read_file(path, "image", "re-download or remove it")
    tiff = Path(path).suffix.lower() in TIFF_EXTS
    if channels == 3 and not extras and not (tiff and package_available("tifffile")):
        return decode_image(data, str(path))
    parts = [decode_channels(data, str(path), tiff)]
    if channels == 3 and not extras and parts[0].shape[2] == 1:
        parts[0] = np.repeat(parts[0], 3, axis=2)  # a grey TIFF in an RGB dataset, as decode_image reads grey
    for extra in extras:
        part = decode_channels(
            read_file(extra, "image", "re-create it"), str(extra), Path(extra).suffix.lower() in TIFF_EXTS
        )
        if part.shape[:2] != parts[0].shape[:2]:
            raise DataError(
                f"{extra}: extra channel is {part.shape[1]}x{part.shape[0]} but its image {Path(path).name} is "
                f"{parts[0].shape[1]}x{parts[0].shape[0]}"
            )
        parts.append(part)
    if any(p.dtype != np.uint8 for p in parts):
        parts = [p.astype(np.float32) for p in parts]
    image = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    if channels is not None and image.shape[2] != channels:
        have = f"{image.shape[2]} channels" + (f" with its {len(extras)} extra-channel file(s)" if extras else "")
        raise DataError(f"{path}: image has {have}, not the {channels} the model takes (data.channels = {channels})")
    return image


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a class-id mask (H, W) as uint8 or uint16.

    Palette (mode P) PNGs are read as their palette indices, which are the class ids. A
    colour (RGB) mask is an error: its colours must first be mapped to ids by ``seg prepare``.
    """
    return decode_mask(read_file(path, "mask", "re-create it with seg prepare"), str(path), strict=True)


def _encode(ext: str, array: np.ndarray, params: list[int], path: str | os.PathLike, what: str) -> bytes:
    """Encode in memory: OpenCV's file functions crash on names that are not valid UTF-8. An extension OpenCV
    has no encoder for is the same one-line error as a failed encode, naming the file."""
    try:
        ok, buf = cv2.imencode(ext, array, params)
    except cv2.error:
        ok = False
    if not ok:
        raise DataError(f"{os.fsdecode(path)!r}: cannot encode {what} as {ext}")
    return buf.tobytes()


def write_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write an RGB uint8 image atomically (format from the extension)."""
    ext = Path(path).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    return atomic_write_bytes(path, _encode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params, path, "image"))


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a single-channel id mask as PNG atomically (uint8, or uint16 above 255 classes)."""
    if mask.ndim != 2 or mask.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"mask must be 2-D uint8/uint16, got {mask.shape} {mask.dtype}")
    return atomic_write_bytes(path, _encode(".png", mask, [], path, "mask"))


def write_palette_mask(
    path: str | os.PathLike, mask: np.ndarray, palette: list[list[int]], compress_level: int = 6
) -> Path:
    """Write a uint8 id mask as a palette PNG: viewers show colours, readers get the ids back.

    ``compress_level`` is zlib's (1 is about 3x faster than 6 for slightly larger files: inference uses it)."""
    import io

    from PIL import Image

    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    flat = [c for rgb in palette for c in rgb]
    flat += [0] * (768 - len(flat))
    im.putpalette(flat[:768])
    buf = io.BytesIO()  # encoded in memory, written with one open/write/rename
    im.save(buf, format="PNG", compress_level=compress_level)
    return atomic_write_bytes(path, buf.getvalue())


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files directly inside ``folder``."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
