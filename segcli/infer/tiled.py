"""Tiled inference: images too big to hold (gigapixel scans, GeoTIFF orthophotos) predicted band by band.

`seg infer` sends an image here when it has more pixels than ``tiled_above`` squared (8192 x 8192 by default) or
when ``tiled`` is asked for. Nothing image-sized is ever allocated:

- **Reading.** :func:`open_raster` reads horizontal bands of rows. A TIFF (through ``tifffile``, the ``tiff``
  extra) decodes only the tiles or strips a band covers, or is memory-mapped when it is stored uncompressed and
  contiguous; a PNG, JPEG or other format goes through OpenCV, which decodes the whole picture (3 bytes a pixel,
  still a small fraction of what the class scores of a whole image would take).
- **Predicting.** The windows are the sliding-window grid of the prediction protocol (``tile``, ``stride``:
  :func:`segcli.infer.predict_core.window_grid`), run ``window_batch`` at a time through
  :func:`segcli.infer.predict_core.window_outputs`, the same forward pass as every other path.
- **Blending.** Each window's logits are weighted by a smooth window (:func:`~segcli.infer.predict_core.window_weight`:
  raised cosines, 1 in the middle, near 0 at the edges) and accumulated into a buffer of one window's height and
  the image's width; when a row of windows is done, the rows no later window touches are final, are divided by
  their summed weights and handed on. The result equals ``slide_logits(..., smooth=True)`` of the whole image.
- **Writing.** The class ids of finished rows fill a strip of output tiles that is written as soon as it is
  whole: a tiled, zlib-compressed TIFF (``masks/<stem>.tif``, palette colours like the PNG masks; ``ids/<stem>.tif``
  grey), BigTIFF when the ids would pass 4 GB, with the input's georeferencing tags (GeoTIFF's model
  tie-point, pixel scale and transformation, GeoKey directory and parameters, GDAL metadata and nodata) copied
  unchanged, so GIS software places the mask where the image lies.

Memory is O(width x tile height x classes), whatever the height; the native resolution is predicted (the
protocol's resize and TTA do not apply to a tiled image).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segcli import extras
from segcli.core.checkpoint import CheckpointMeta
from segcli.data.datasets import image_to_tensor
from segcli.data.decode import TIFF_EXTS, to_model_range
from segcli.data.io import read_image
from segcli.errors import DataError, UserError, arg
from segcli.infer.predict_core import (
    class_ids,
    input_multiple,
    scale_logits,
    window_grid,
    window_outputs,
    window_weight,
)
from segcli.infer.protocol import PredictionProtocol
from segcli.io_utils import atomic_write

TILED_ABOVE = 8192  # an image with more pixels than this squared is predicted tile by tile
TIFF_TILE = 512  # output tiles (TIFF wants multiples of 16)
BIGTIFF_ABOVE = 2**32 - 2**26  # bytes of uncompressed ids beyond which the output is BigTIFF (offsets past 4 GB)
# GeoTIFF: ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams;
# GDAL: GDAL_METADATA, GDAL_NODATA. Copied from the input's first page to the mask unchanged.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
ID_ROWS = 64  # rows of class ids made at once from a finished band
KINDS = ("mask", "ids")  # what a tiled image writes; the other kinds of ``save`` are not written for it


def need_tifffile(wanted: str) -> None:
    """A UserError naming the install line when ``tifffile`` (the ``tiff`` extra) is missing."""
    problem = extras.missing("tifffile", "tiff", wanted, f"leave out {arg('tiled')}, for images that fit in memory")
    if problem:
        raise UserError(problem)


# ---------------------------------------------------------------------- reading in bands
def _rgb(a: np.ndarray) -> np.ndarray:
    """Rows of a TIFF (h, w) or (h, w, S), 8- or 16-bit, as RGB uint8 (h, w, 3): grey repeated, alpha and extra
    samples dropped, 16-bit scaled as OpenCV-read images are (/257)."""
    if a.dtype == np.uint16:
        a = (a / 257).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] < 3:
        return np.repeat(a[..., :1], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def _pixels(a: np.ndarray, channels: int, where: str) -> np.ndarray:
    """Rows for a model of ``channels`` input channels (``data.channels``): RGB uint8 (:func:`_rgb`) for 3, else
    every channel in the model's units (:func:`segcli.data.decode.to_model_range`); another count is one line
    naming the file."""
    if channels == 3:
        return _rgb(a)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] != channels:
        raise DataError(f"{where}: image has {a.shape[2]} channels, not the {channels} the model takes")
    return to_model_range(a, where)


class Raster:
    """An image read in horizontal bands: ``height``, ``width``, :meth:`read` (RGB uint8 rows, or ``channels``
    channels for an N-channel model), the TIFF tags to copy to the mask (``tags``: (code, dtype, count, value) of
    :data:`GEO_TAGS`) and how it is read (``how``)."""

    height: int
    width: int
    channels: int = 3
    how: str = "whole image"
    tags: tuple[tuple[int, int, int, Any], ...] = ()

    def read(self, y0: int, y1: int) -> np.ndarray:  # pragma: no cover - every reader has its own
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (nothing to do for an image in memory)."""


class _WholeImage(Raster):
    """A PNG, JPEG... decoded whole by OpenCV (no windowed decoder for these), read in bands from memory."""

    def __init__(self, path: Path, channels: int = 3) -> None:
        self.image = read_image(path, channels)
        self.height, self.width = self.image.shape[:2]

    def read(self, y0: int, y1: int) -> np.ndarray:
        return self.image[y0:y1]


class _TiffBands(Raster):
    """A TIFF's first page through ``tifffile``: memory-mapped when uncompressed and contiguous, else only the
    tiles or strips a band covers are decoded (a row of them is kept while the next band still needs it)."""

    def __init__(self, tf: Any, path: Path) -> None:
        self.tf, self.path = tf, path
        page = tf.pages[0]
        self.page = page
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        self.samples = int(page.samplesperpixel)
        self.tags = tuple(
            (t.code, int(t.dtype), int(t.count), t.value) for t in page.tags.values() if t.code in GEO_TAGS
        )
        self.map: np.ndarray | None = None
        if page.is_memmappable:
            import tifffile

            self.map = tifffile.memmap(path, page=0, mode="r")
            self.how = "memory-mapped (uncompressed TIFF)"
            return
        if page.is_tiled:
            self.chunk = (int(page.tilelength), int(page.tilewidth))
            self.how = f"{self.chunk[0]}x{self.chunk[1]} TIFF tiles, decoded as needed"
        else:
            self.chunk = (min(int(page.rowsperstrip) or self.height, self.height), self.width)
            self.how = f"TIFF strips of {self.chunk[0]} rows, decoded as needed"
        self.cols = -(-self.width // self.chunk[1])
        self.cache: dict[int, np.ndarray] = {}

    def read(self, y0: int, y1: int) -> np.ndarray:
        if self.map is not None:
            return _pixels(np.asarray(self.map[y0:y1]), self.channels, str(self.path))
        ch = self.chunk[0]
        first, last = y0 // ch, (y1 - 1) // ch
        for r in [r for r in self.cache if r < first]:
            del self.cache[r]
        parts = [self._chunk_row(r) for r in range(first, last + 1)]
        rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return _pixels(rows[y0 - first * ch : y1 - first * ch], self.channels, str(self.path))

    def _chunk_row(self, r: int) -> np.ndarray:
        """Row ``r`` of tiles (or strip ``r``) decoded: (rows, width, samples), the image's own dtype."""
        if r in self.cache:
            return self.cache[r]
        (ch, cw), page, fh = self.chunk, self.page, self.tf.filehandle
        rows = min(ch, self.height - r * ch)
        out = np.zeros((rows, self.width, self.samples), page.dtype)
        for c in range(self.cols):
            index = r * self.cols + c
            offset, count = page.dataoffsets[index], page.databytecounts[index]
            if not count:  # a sparse file's missing tile: zeros
                continue
            fh.seek(offset)
            try:
                segment = page.decode(fh.read(count), index, jpegtables=page.jpegtables)[0]
            except Exception as e:  # noqa: BLE001 - a codec tifffile lacks (imagecodecs), or damaged data
                hint = "; pip install imagecodecs for this compression" if "imagecodecs" in str(e) else ""
                raise DataError(f"{self.path}: cannot decode TIFF tile {index} ({e}){hint}") from None
            seg = np.asarray(segment).reshape(-1, cw, self.samples)  # the last strip may be short
            width = min(cw, self.width - c * cw)
            out[:, c * cw : c * cw + width] = seg[:rows, :width]
        self.cache[r] = out
        return out

    def close(self) -> None:
        self.map = None
        self.tf.close()


def _tiff_readable(page: Any) -> bool:
    """Pages read band by band: one plane of interleaved samples, 8- or 16-bit, grey or RGB(A) (a palette,
    separate planes or another sample type is decoded whole by OpenCV instead)."""
    return (
        int(page.planarconfig) == 1
        and page.dtype in (np.uint8, np.uint16)
        and int(page.photometric) in (0, 1, 2)  # miniswhite, minisblack, rgb
        and len(page.shape) in (2, 3)
    )


def open_raster(path: str | os.PathLike, channels: int = 3) -> Raster:
    """The image at ``path`` as a :class:`Raster` of ``channels`` channels (the model's ``data.channels``): a TIFF
    band by band (``tifffile``), anything else decoded whole."""
    path = Path(path)
    if path.suffix.lower() in TIFF_EXTS and extras.package_available("tifffile"):
        import tifffile

        try:
            tf = tifffile.TiffFile(path)
        except (OSError, ValueError, tifffile.TiffFileError) as e:
            raise DataError(f"{path}: cannot read this TIFF ({e})") from None
        if _tiff_readable(tf.pages[0]):
            bands = _TiffBands(tf, path)
            bands.channels = channels
            return bands
        tags = tuple((t.code, int(t.dtype), int(t.count), t.value) for t in tf.pages[0].tags.values())
        tf.close()
        whole = _WholeImage(path, channels)
        whole.tags = tuple(t for t in tags if t[0] in GEO_TAGS)
        return whole
    return _WholeImage(path, channels)


def image_pixels(path: str | os.PathLike) -> int:
    """Pixels of the image at ``path`` from its header, without decoding it: TIFF through ``tifffile``, else
    Pillow. An image Pillow refuses as a decompression bomb (over about 179 Mpx) counts as infinitely large."""
    path = Path(path)
    if path.suffix.lower() in TIFF_EXTS and extras.package_available("tifffile"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tf:
                page = tf.pages[0]
                return int(page.imagelength) * int(page.imagewidth)
        except (OSError, ValueError, tifffile.TiffFileError):
            pass  # Pillow, then the reader, says what is wrong with it
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # a size check, not a decode
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError:
        return math.inf  # type: ignore[return-value]
    except (UnidentifiedImageError, OSError):
        return 0  # not an image Pillow knows: the plain path reports it
    return w * h


def is_tiled(path: str | os.PathLike, tiled: bool | None, above: int = TILED_ABOVE) -> bool:
    """Whether `seg infer` predicts the image at ``path`` tile by tile: ``tiled`` when given, else when it has
    more than ``above`` x ``above`` pixels."""
    if tiled is not None:
        return tiled
    return image_pixels(path) > above * above


# ---------------------------------------------------------------------- predicting and blending
@torch.no_grad()
def blended_rows(
    model: torch.nn.Module, raster: Raster, proto: PredictionProtocol
) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, logits (K, n, W)) of consecutive finished bands of rows, top to bottom, on the model's device:
    the protocol's sliding windows blended by :func:`window_weight`, held one window-row at a time. Each band is
    a view of the accumulator, valid until the next one is asked for (clone it to keep it)."""
    height, width = raster.height, raster.width
    multiple = input_multiple(model)
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    rows: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    for box in window_grid((height, width), proto.tile, proto.stride):
        rows.setdefault(box[:2], []).append(box)
    spans = list(rows)
    band_h = spans[0][1] - spans[0][0]  # every row of windows is min(tile, height) high
    total: torch.Tensor | None = None
    weights = torch.zeros((band_h, width), device=dev)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seg-tiled-read") as reader:
        ahead = reader.submit(raster.read, *spans[0])
        for k, (y1, y2) in enumerate(spans):
            band = ahead.result()
            if k + 1 < len(spans):  # the next band is read while this one is predicted
                ahead = reader.submit(raster.read, *spans[k + 1])
            x = image_to_tensor(band)[None]
            local = [(0, y2 - y1, x1, x2) for _, _, x1, x2 in rows[(y1, y2)]]
            for (_, h, x1, x2), out in window_outputs(model, x, local, proto, multiple):
                out = scale_logits(out[None], proto.temperature)[0]
                if total is None:
                    total = torch.zeros((out.shape[0], band_h, width), device=dev)
                weight = window_weight((h, x2 - x1)).to(dev)
                total[:, :h, x1:x2].addcmul_(out.to(dev), weight)  # no temporary of the window's size
                weights[:h, x1:x2] += weight
            assert total is not None
            done = (spans[k + 1][0] if k + 1 < len(spans) else height) - y1  # rows no later window touches
            yield y1, total[:, :done].div_(weights[:done])  # in place: no second band-sized buffer
            keep = band_h - done
            total[:, :keep] = total[:, done:].clone()
            weights[:keep] = weights[done:].clone()
            total[:, keep:] = 0
            weights[keep:] = 0


def _id_tiles(
    bands: Iterator[tuple[int, torch.Tensor]], width: int, dtype: np.dtype, counts: np.ndarray
) -> Iterator[np.ndarray]:
    """The class ids of ``bands`` as (TIFF_TILE, TIFF_TILE) tiles in row-major order, each strip of tiles handed
    on as soon as its rows are final (the last strip and column padded with zeros); ``counts`` gets the pixels
    of each class."""
    t = TIFF_TILE
    strip = np.zeros((t, -(-width // t) * t), dtype)
    filled = 0
    for _, logits in bands:
        ids = np.empty(logits.shape[1:], dtype)
        for r in range(0, len(ids), ID_ROWS):  # a few rows at a time: argmax's int64 indices stay small
            part = class_ids(logits[:, r : r + ID_ROWS]).to(torch.int32).cpu().numpy()
            counts += np.bincount(part.ravel(), minlength=len(counts))[: len(counts)]
            ids[r : r + ID_ROWS] = part
        pos = 0
        while pos < len(ids):
            take = min(t - filled, len(ids) - pos)
            strip[filled : filled + take, :width] = ids[pos : pos + take]
            filled, pos = filled + take, pos + take
            if filled == t:
                yield from (strip[:, c : c + t].copy() for c in range(0, strip.shape[1], t))
                filled = 0
    if filled:
        strip[filled:] = 0
        yield from (strip[:, c : c + t].copy() for c in range(0, strip.shape[1], t))


def write_tiles(path: Path, tiles: Iterator[np.ndarray], shape: tuple[int, int], options: dict[str, Any]) -> bool:
    """Write ``tiles`` (row-major, :data:`TIFF_TILE` square) as one tiled, zlib-compressed TIFF at ``path``
    atomically; ``options`` are tifffile's (dtype, photometric, colormap, extratags). Returns whether it is BigTIFF."""
    import tifffile

    dtype = np.dtype(options.pop("dtype"))
    bigtiff = shape[0] * shape[1] * dtype.itemsize > BIGTIFF_ABOVE

    def write(tmp: Path) -> None:
        tifffile.imwrite(
            tmp,
            data=tiles,
            shape=shape,
            dtype=dtype,
            tile=(TIFF_TILE, TIFF_TILE),
            compression="zlib",
            compressionargs={"level": 1},
            bigtiff=bigtiff,
            metadata=None,
            **options,
        )

    atomic_write(path, write, suffix=path.suffix)
    return bigtiff


def tiled_paths(out: Path, stem: str, save: tuple[str, ...]) -> dict[str, Path]:
    """Where a tiled image's outputs go: ``masks/<stem>.tif`` and/or ``ids/<stem>.tif`` (the mask when ``save``
    asks for neither)."""
    kinds = [k for k in KINDS if k in save] or ["mask"]
    return {k: out / {"mask": "masks", "ids": "ids"}[k] / f"{stem}.tif" for k in kinds}


def predict_tiled(
    model: torch.nn.Module,
    src: str | os.PathLike,
    files: dict[str, Path],
    proto: PredictionProtocol,
    meta: CheckpointMeta,
) -> dict[str, Any]:
    """Predict the image at ``src`` band by band and write its class ids as tiled TIFFs at ``files`` (kind →
    path: ``mask`` with the class palette, ``ids`` grey); returns `seg infer`'s entry for it (the class
    shares and how it was read, predicted and written)."""
    if proto.crf is not None:  # the CRF needs every pixel's scores at once; an image predicted by bands never has them
        raise UserError(
            f"{src}: predicted band by band (tiled inference), which the dense CRF cannot refine (it needs the whole "
            f"image's scores at once); drop {arg('crf')} for this image"
        )
    need_tifffile(f"{src}: tiled inference")
    raster = open_raster(src, meta.preset.data.channels)
    try:
        k = meta.num_classes
        dtype = np.dtype(np.uint8 if k <= 256 else np.uint16)
        shape = (raster.height, raster.width)
        windows = len(window_grid(shape, proto.tile, proto.stride))
        counts = np.zeros(k, np.int64)
        first, *others = files.items()
        tags = [(code, dt, count, value, True) for code, dt, count, value in raster.tags]
        kind, path = first
        for p in files.values():
            p.parent.mkdir(parents=True, exist_ok=True)
        bigtiff = write_tiles(
            path, _id_tiles(blended_rows(model, raster, proto), shape[1], dtype, counts), shape, _look(kind, meta, tags)
        )
    finally:
        raster.close()
    for kind, other in others:  # the same ids again, read back tile by tile from the first file
        _copy_ids(path, other, shape, _look(kind, meta, tags))
    total = max(int(counts.sum()), 1)
    return {
        "input": str(src),
        **{kind: str(p) for kind, p in files.items()},
        "classes": {meta.classes[c]: round(float(counts[c]) / total, 4) for c in np.nonzero(counts)[0]},
        "tiled": {
            "size": list(shape),
            "windows": windows,
            "tile": list(proto.tile),
            "stride": list(proto.stride),
            "read": raster.how,
            "bigtiff": bigtiff,
            "geotags": [t[0] for t in tags],
        },
    }


def _look(kind: str, meta: CheckpointMeta, tags: list) -> dict[str, Any]:
    """tifffile's options for a ``mask`` (palette colours, 8-bit) or ``ids`` (grey) file, with ``tags``."""
    dtype = np.uint8 if meta.num_classes <= 256 else np.uint16
    if kind == "mask" and dtype is np.uint8:
        colormap = np.zeros((3, 256), np.uint16)
        palette = np.array(meta.palette, np.uint16)[:256]
        colormap[:, : len(palette)] = palette.T * 257
        return {"dtype": dtype, "photometric": "palette", "colormap": colormap, "extratags": tags}
    return {"dtype": dtype, "photometric": "minisblack", "extratags": tags}


def _copy_ids(src: Path, dest: Path, shape: tuple[int, int], options: dict[str, Any]) -> None:
    """The ids of the tiled TIFF ``src`` written again to ``dest`` with other ``options``, tile by tile."""
    import tifffile

    with tifffile.TiffFile(src) as tf:
        page, fh = tf.pages[0], tf.filehandle

        def tiles() -> Iterator[np.ndarray]:
            for index, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
                fh.seek(offset)
                yield np.asarray(page.decode(fh.read(count), index)[0]).reshape(TIFF_TILE, TIFF_TILE)

        write_tiles(dest, tiles(), shape, options)
