"""The one place that decodes masks and images, from a path or from bytes.

* :func:`decode_mask` reads class ids. ``strict=True`` is the segcli format (single channel, or a
  palette PNG whose *index* is the id); ``strict=False`` is what converters read from downloads
  (also 3-channel PNGs whose channels are equal). Either way it raises one DataError naming the file.
* :func:`inspect_mask` and :func:`probe_image` never raise: they say what a file is (for `seg check`).
* :func:`decode_image` reads RGB uint8; :func:`decode_channels` every channel of an image (N-channel data:
  TIFF through ``tifffile``, 16-bit PNG) in the model's [0, 255] units; :func:`image_size` reads only the header.
* Label mapping helpers for converters: :func:`lut_map`, :func:`colors_to_ids`, :func:`load_mat`.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.errors import DataError
from segcli.extras import install_hint, package_available

# Decoding is single-threaded per call; the data loader parallelises across workers instead.
cv2.setNumThreads(0)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length 0, type, CRC


def read_file(path: str | os.PathLike, what: str, fix: str) -> bytes:
    """The bytes of ``path``; a missing or empty file is a DataError naming it and ``fix``."""
    path = Path(path)
    if not path.is_file():
        if path.is_symlink():
            raise DataError(
                f"{path}: {what} is a symbolic link that leads nowhere (a loop of links or a missing target)"
            )
        raise DataError(f"{path}: {what} file not found")
    data = path.read_bytes()
    if not data:
        raise DataError(f"{path}: {what} file is empty (0 bytes); {fix}")
    return data


def is_palette_png(data: bytes) -> bool:
    """True for an indexed-colour PNG (IHDR colour type, byte 25, is 3)."""
    return data[:8] == _PNG_SIGNATURE and len(data) > 25 and data[25] == 3


def _palette_indices(data: bytes, where: str, what: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im, dtype=np.uint8).copy()
    except OSError as e:
        raise DataError(f"{where}: cannot decode {what} ({e})") from None


def _equal_channels(arr: np.ndarray) -> bool:
    return np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])


def decode_mask(data: bytes, where: str, strict: bool = True) -> np.ndarray:
    """Class ids (H, W) as uint8 or uint16 from encoded bytes; palette PNGs give their indices.

    ``strict`` (the segcli format) refuses any 3-channel image; otherwise (a download being
    converted) a 3-channel image whose channels are equal is read as grey ids.
    """
    what = "mask" if strict else "label"
    _refuse_truncated(data, where, what)
    if is_palette_png(data):
        return _palette_indices(data, where, what)
    arr = _imdecode(data, where, what)
    if arr is None:
        raise DataError(f"{where}: cannot decode {what} (corrupt or unsupported format)")
    if arr.ndim == 3:
        if strict:
            raise DataError(
                f"{where}: mask has {arr.shape[2]} channels; masks must be single-channel class ids "
                "(convert colour masks with `seg prepare folder --colors FILE`)"
            )
        arr = arr[..., :3]
        if not _equal_channels(arr):
            raise DataError(f"{where}: label is a colour image; it needs a colour table (e.g. --colors FILE)")
        arr = np.ascontiguousarray(arr[..., 0])
    if arr.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{where}: {what} dtype {arr.dtype} unsupported; expected 8- or 16-bit ids (uint8 or uint16)")
    return arr


def decode_ids(data: bytes, where: str) -> np.ndarray:
    """A downloaded label holding ids (grey, palette index or equal-channel RGB): tolerant :func:`decode_mask`."""
    return decode_mask(data, where, strict=False)


def truncated(data: bytes) -> str:
    """``"PNG"`` or ``"JPEG"`` for a file of that kind cut short, else ``""``.

    Checked before OpenCV sees the bytes: it would grey-fill a truncated JPEG (or print libpng and
    libjpeg complaints on stderr). A PNG ends with its IEND chunk; a JPEG with the EOI marker, and
    only when it does not (truncation, or trailing bytes) is it decoded strictly by PIL.
    """
    if data[:8] == _PNG_SIGNATURE:
        return "" if _PNG_END in data else "PNG"  # bytes after IEND are tolerated
    if data[:2] != b"\xff\xd8" or data.rstrip(b"\x00\r\n ")[-2:] == b"\xff\xd9":
        return ""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (OSError, ValueError, SyntaxError):
        return "JPEG"
    return ""


def _refuse_truncated(data: bytes, where: str, what: str) -> None:
    kind = truncated(data)
    if kind:
        raise DataError(f"{where}: {what} is truncated (the {kind} file ends early); re-download or re-create it")


def max_pixels() -> int:
    """The most pixels OpenCV decodes in one image (its ``OPENCV_IO_MAX_IMAGE_PIXELS``, default 2**30)."""
    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "")) or 1 << 30
    except ValueError:
        return 1 << 30


def header_dims(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the file's header claims them, without decoding; None when unknown.

    A PNG's IHDR is read directly (PIL refuses to open a "decompression bomb" at all); other formats
    through PIL's lazy open."""
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _imdecode(data: bytes, where: str, what: str) -> np.ndarray | None:
    """``cv2.imdecode`` (unchanged depth and channels); OpenCV's own refusals (an image larger than its
    pixel limit, a malformed header) become one DataError naming the file and the reason."""
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        dims, limit = header_dims(data), max_pixels()
        if dims is not None and dims[0] * dims[1] > limit:
            raise DataError(
                f"{where}: {what} is {dims[0]}x{dims[1]} pixels (from its header), more than the "
                f"{limit:,} OpenCV decodes (OPENCV_IO_MAX_IMAGE_PIXELS); resize or tile it, or remove it"
            ) from None
        detail = next((ln for ln in str(e).splitlines() if "error:" in ln), str(e).strip()).split("error:")[-1]
        raise DataError(f"{where}: cannot decode {what} (OpenCV: {detail.strip()})") from None


def decode_image(data: bytes, where: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) from encoded bytes: grey, 16-bit, BGRA and palette images are converted.

    Strict everywhere (train, eval, infer): a truncated file is an error, never a grey-filled image.
    """
    _refuse_truncated(data, where, "image")
    img = _imdecode(data, where, "image")
    if img is None:
        raise DataError(f"{where}: cannot decode image (corrupt or unsupported format)")
    if img.dtype == np.uint16:
        img = (img / 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{where}: unsupported image dtype {img.dtype}; expected 8- or 16-bit")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


TIFF_EXTS = (".tif", ".tiff")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # little/big-endian TIFF and BigTIFF


def _tiff_channels(data: bytes, where: str) -> np.ndarray:
    """A TIFF's pixels as (H, W, C) through ``tifffile`` (the ``tiff`` extra): samples stored pixel by pixel
    (``YXS``) or plane by plane (``SYX``, ``CYX``, several pages) alike."""
    if not package_available("tifffile"):
        raise DataError(f"{where}: reading N-channel TIFF images needs tifffile; {install_hint('tiff')}")
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series[0]
            arr, axes = series.asarray(), series.axes
    except Exception as e:  # noqa: BLE001 - tifffile raises many types for damaged files
        raise DataError(f"{where}: cannot decode image ({type(e).__name__}: {str(e)[:120]})") from None
    if arr.ndim == 2:
        return arr[..., None]
    if arr.ndim == 3 and axes.endswith("YX"):
        return np.ascontiguousarray(np.moveaxis(arr, 0, -1))
    if arr.ndim == 3:
        return arr
    raise DataError(f"{where}: a TIFF of shape {arr.shape} (axes {axes}); expected one image of (H, W, channels)")


def to_model_range(arr: np.ndarray, where: str) -> np.ndarray:
    """Pixels in the units the model normalises (``model.mean``/``std`` are fractions of 255): uint8 as it is;
    16-bit as float32 value / 257 (65535 → 255); float as float32 value x 255 (float data in [0, 1], or in any
    units when the mean/std are the dataset's own from `seg check --stats`). Other types are a DataError."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 257.0
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32) * 255.0
    raise DataError(f"{where}: unsupported image dtype {arr.dtype}; expected 8- or 16-bit integers, or float")


def decode_channels(data: bytes, where: str, tiff: bool = False) -> np.ndarray:
    """Every channel of an image, (H, W, C), in :func:`to_model_range` units: a TIFF (``tiff``) through
    ``tifffile`` (16-bit, float, any number of channels), other formats through OpenCV unchanged (8- or 16-bit
    PNG; colour channels in RGB(A) order). Unlike :func:`decode_image` nothing is converted to RGB."""
    if tiff:
        arr = _tiff_channels(data, where)
    else:
        _refuse_truncated(data, where, "image")
        arr = _imdecode(data, where, "image")
        if arr is None:
            raise DataError(f"{where}: cannot decode image (corrupt or unsupported format)")
        if arr.ndim == 2:
            arr = arr[..., None]
        elif arr.shape[2] >= 3:  # OpenCV's BGR(A)
            arr = np.concatenate([arr[..., 2::-1], arr[..., 3:]], axis=2)
    return np.ascontiguousarray(to_model_range(arr, where))


def image_size(data: bytes, where: str) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels (a TIFF's through ``tifffile`` when it
    is installed: PIL opens few multispectral or float layouts)."""
    from PIL import Image, UnidentifiedImageError

    if data[:4] in _TIFF_MAGIC and package_available("tifffile"):
        import tifffile

        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                series = tif.series[0]
                return int(series.shape[series.axes.index("Y")]), int(series.shape[series.axes.index("X")])
        except Exception as e:  # noqa: BLE001 - tifffile raises many types for damaged files
            raise DataError(
                f"{where}: cannot read image ({type(e).__name__}: {str(e)[:120]}); re-download it"
            ) from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{where}: cannot read image ({e}); re-download it") from None
    return h, w


# ------------------------------------------------------------------------------- tolerant probes


@dataclass
class MaskFacts:
    """What one mask file is: its ids (None when unusable), its PIL-style mode and any problem.

    ``problem`` is None, ``"empty"``, ``"unreadable"``, ``"rgb"`` (colours) or ``"grey-rgb"``
    (3 equal channels; ``ids`` then holds one channel).
    """

    ids: np.ndarray | None = None
    mode: str = ""
    problem: str | None = None


def inspect_mask(path: str | os.PathLike) -> MaskFacts:
    """Decode a mask for `seg check`, never raising: the ids and how they are encoded."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return MaskFacts(problem="unreadable")
    if not data:
        return MaskFacts(problem="empty")
    if is_palette_png(data):
        try:
            return MaskFacts(ids=_palette_indices(data, str(path), "mask"), mode="P")
        except DataError:
            return MaskFacts(problem="unreadable")
    try:
        arr = _imdecode(data, str(path), "mask")
    except DataError:
        arr = None
    if arr is None or not np.issubdtype(arr.dtype, np.integer):
        return MaskFacts(problem="unreadable")
    if arr.ndim == 3:
        if arr.shape[2] >= 3 and _equal_channels(arr):
            return MaskFacts(ids=arr[..., 0], mode="RGB", problem="grey-rgb")
        return MaskFacts(mode="RGB", problem="rgb")
    return MaskFacts(ids=arr, mode="I;16" if arr.dtype == np.uint16 else "L")


def probe_image(path: str | os.PathLike) -> tuple[int, int] | str:
    """(height, width) of a fully decoded image, or ``"empty"`` / ``"unreadable"``; never raises. A TIFF is
    decoded by ``tifffile`` when it is installed (PIL reads few multispectral layouts)."""
    from PIL import Image

    try:
        if Path(path).stat().st_size == 0:
            return "empty"
        if Path(path).suffix.lower() in TIFF_EXTS and package_available("tifffile"):
            return _tiff_channels(Path(path).read_bytes(), str(path)).shape[:2]
        with Image.open(path) as im:
            im.load()  # decode: a truncated file fails here, not just its header
            return im.size[1], im.size[0]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, DataError):
        return "unreadable"


# ------------------------------------------------------------------------------- label mapping


def lut_map(raw: np.ndarray, table: dict[int, int], default: int = 255) -> np.ndarray:
    """Map raw ids through ``table``; ids not in it become ``default``. Output uint8 (uint16 if needed)."""
    size = 65536 if raw.dtype == np.uint16 else 256
    top = max([default, *table.values()])
    lut = np.full(size, default, np.uint16 if top > 255 else np.uint8)
    for k, v in table.items():
        if 0 <= k < size:
            lut[k] = v
    return lut[raw]


def colors_to_ids(
    rgb: np.ndarray, colors: list[tuple[int, int, int]] | list[list[int]], where: str, unknown: int | None = None
) -> np.ndarray:
    """Map an RGB label to ids: colour ``colors[i]`` → ``i``. Other colours become ``unknown``, or are
    a DataError naming the colour when ``unknown`` is None."""
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2].astype(np.int32)
    table = np.array([(r << 16) | (g << 8) | b for r, g, b in colors], np.int64)
    order = np.argsort(table, kind="stable")
    sorted_keys = table[order]
    pos = np.clip(np.searchsorted(sorted_keys, key), 0, len(sorted_keys) - 1)
    found = sorted_keys[pos] == key
    ids = order[pos]
    if not found.all():
        if unknown is None:
            k = int(key[~found][0])
            raise DataError(
                f"{where}: colour ({k >> 16}, {(k >> 8) & 255}, {k & 255}) is not in the colour table "
                f"({int((~found).sum())} pixels); add it to the table"
            )
        ids = np.where(found, ids, unknown)
    dtype = np.uint16 if max(len(colors) - 1, unknown or 0) > 255 else np.uint8
    return ids.astype(dtype)


def check_ids(ids: np.ndarray, num_classes: int, ignore: int, where: str, dataset: str = "") -> np.ndarray:
    """``ids`` unchanged, or a DataError listing values outside [0, num_classes) and ``ignore``."""
    bad = np.unique(ids[(ids >= num_classes) & (ids != ignore)])
    if bad.size:
        what = f"{dataset} class ids" if dataset else "class ids"
        raise DataError(f"{where}: values {bad[:8].tolist()} are not {what} 0..{num_classes - 1} nor {ignore}")
    return ids


def load_mat(data: bytes, where: str) -> dict[str, Any]:
    """Read a MATLAB ``.mat`` file with scipy (the optional ``mat`` extra); structs become objects."""
    try:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError
    except ImportError:
        raise DataError(
            f"{where}: reading .mat annotations needs scipy; install it with `pip install segcli[mat]`"
        ) from None
    try:
        return loadmat(io.BytesIO(data), struct_as_record=False, squeeze_me=True)
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError, IndexError, EOFError) as e:
        raise DataError(f"{where}: cannot read .mat file ({e}); re-download it") from None
