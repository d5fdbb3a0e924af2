"""`seg crop-by-mask`: a new dataset of crops around the chosen classes.

Each image and its mask are cropped to the bounding box of the chosen classes' pixels, grown by
a relative margin on each side (clipped to the image), optionally made square around the box
centre (the part outside the image is padded: ``ignore_index`` in masks, 0 in images) and
optionally resized (masks nearest-neighbour). Images without any of the classes are skipped and
listed. The output is a dataset in the same format; its ``dataset.toml`` is written last, so an
interrupted run never looks like a finished dataset.

An interrupted crop continues: ``.crop-progress.json`` in the output folder holds the settings
while the crop runs (it is removed once ``dataset.toml`` is written); a re-run with the same
settings keeps the crops already written and writes the rest, other settings are refused.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.data.format import DatasetInfo, list_samples, list_splits, read_dataset_info, write_dataset_info
from segcli.data.io import read_image, read_mask, write_image, write_mask
from segcli.errors import DataError, UserError
from segcli.io_utils import atomic_write_text, require_folder

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (end exclusive), in source pixels
MARKER = ".crop-progress.json"  # in the output folder while a crop runs


@dataclass
class CropResult:
    """What was written: per split counts, the skipped images and each crop box."""

    out: Path
    classes: list[str]
    written: dict[str, int]
    skipped: list[str]  # "split/stem" of images without the classes
    boxes: dict[str, Box] = field(default_factory=dict)  # "split/stem" -> box in the source image

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "classes": self.classes,
            "written": self.written,
            "skipped": self.skipped,
            "boxes": {k: list(v) for k, v in self.boxes.items()},
        }


def resolve_classes(info: DatasetInfo, names: list[str] | None) -> list[int]:
    """Class ids from names (or ids as digits); default: every class but class 0."""
    if not names:
        if info.num_classes < 2:
            raise UserError("the dataset has one class; name the classes to crop around with --classes")
        return list(range(1, info.num_classes))
    ids = []
    for name in names:
        if name in info.classes:
            ids.append(info.classes.index(name))
        elif name.isdigit() and int(name) < info.num_classes:
            ids.append(int(name))
        else:
            close = difflib.get_close_matches(name, info.classes, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(f"--classes: unknown class {name!r} (classes: {', '.join(info.classes)}){hint}")
    return sorted(set(ids))


def crop_box(mask: np.ndarray, ids: list[int], margin: float, square: bool) -> Box | None:
    """The crop box around the pixels of ``ids`` (None when there are none).

    The tight box grows by ``round(margin * box side)`` on each side, clipped to the image. With
    ``square`` the short side then grows to the long side around the box centre; that box may
    extend past the image (the caller pads).
    """
    sel = np.isin(mask, ids)
    rows, cols = np.flatnonzero(sel.any(axis=1)), np.flatnonzero(sel.any(axis=0))
    if rows.size == 0:
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    h, w = mask.shape[:2]
    my, mx = round(margin * (y1 - y0)), round(margin * (x1 - x0))
    y0, y1, x0, x1 = max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)
    if square:
        side = max(y1 - y0, x1 - x0)
        # Grow the short side by (side - length), the odd pixel going after the box.
        if y1 - y0 < side:
            grow = side - (y1 - y0)
            y0, y1 = y0 - grow // 2, y1 + grow - grow // 2
        if x1 - x0 < side:
            grow = side - (x1 - x0)
            x0, x1 = x0 - grow // 2, x1 + grow - grow // 2
    return x0, y0, x1, y1


def cut(array: np.ndarray, box: Box, fill: int) -> np.ndarray:
    """``array[y0:y1, x0:x1]`` where the parts of the box outside the array are ``fill``."""
    x0, y0, x1, y1 = box
    h, w = array.shape[:2]
    outp = np.full((y1 - y0, x1 - x0, *array.shape[2:]), fill, array.dtype)
    sy0, sy1, sx0, sx1 = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
    outp[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = array[sy0:sy1, sx0:sx1]
    return outp


def _resize(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Long side to ``size`` (square crops become size x size); masks nearest-neighbour."""
    h, w = mask.shape
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return (
        cv2.resize(image, (nw, nh), interpolation=interp),
        cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_NEAREST),
    )


def _unfinished(out: Path, settings: dict[str, Any]) -> bool:
    """True when ``out`` holds an unfinished crop with these ``settings`` (continue it), False when
    ``out`` is missing or empty; a UserError for any other content (nothing the user had is touched)."""
    require_folder(out)
    if not out.exists() or not any(out.iterdir()):
        return False
    marker = out / MARKER
    if not marker.is_file():
        raise UserError(f"{out}: exists and is not empty; give a new or empty folder with --out")
    try:
        had = json.loads(marker.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        had = None
    if not isinstance(had, dict):
        raise UserError(f"{out / MARKER}: damaged progress file of an unfinished crop; delete {out} and crop again")
    for key, value in settings.items():
        if had.get(key) != value:
            raise UserError(
                f"{out}: holds an unfinished crop with {key}={had.get(key)!r}, not {value!r}; "
                "re-run it with the same settings to finish it, or give a new folder with --out"
            )
    return True


@dataclass(frozen=True)
class CropOptions:
    """What a crop keeps: the box around ``classes`` (None: every class but the first), widened by ``margin``
    of its size on each side, made ``square`` on request, resized so its long side is ``size`` (None: as is),
    over ``splits`` (None: all)."""

    classes: list[str] | None = None
    margin: float = 0.1
    square: bool = False
    size: int | None = None
    splits: list[str] | None = None


def crop_by_mask(
    root: str | os.PathLike,
    out: str | os.PathLike,
    options: CropOptions = CropOptions(),
    progress: Callable[[int, int], None] | None = None,
) -> CropResult:
    """Write the cropped dataset to ``out`` (which must not exist, be empty, or hold an unfinished
    crop with the same settings, which is then finished)."""
    classes, margin, square, size = options.classes, options.margin, options.square, options.size
    splits = options.splits
    root, out = Path(root), Path(out)
    info = read_dataset_info(root)
    ids = resolve_classes(info, classes)
    if margin < 0:
        raise UserError(f"--margin {margin}: must be >= 0 (a fraction of the box size, e.g. 0.1)")
    if size is not None and size < 1:
        raise UserError(f"--size {size}: must be a positive number of pixels")
    if out.resolve() == root.resolve():
        raise UserError(f"{out}: is the source dataset; give a new folder with --out")
    chosen = splits or list_splits(root)
    settings = {
        "format": "segcli-crop-progress/1",
        "source": str(root.resolve()),
        "classes": ids,
        "margin": margin,
        "square": square,
        "size": size,
        "splits": chosen,
    }
    resuming = _unfinished(out, settings)
    pairs = {s: list_samples(root, s) for s in chosen}  # checks layout and pairing before writing
    total = sum(len(p) for p in pairs.values())
    if progress:
        progress(0, total)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        atomic_write_text(out / MARKER, json.dumps(settings) + "\n")
    res = CropResult(out, [info.classes[i] for i in ids], {}, [])
    for split, items in pairs.items():
        res.written[split] = 0
        for img_path, mask_path in items:
            mask = read_mask(mask_path)
            key = f"{split}/{img_path.stem}"
            box = crop_box(mask, ids, margin, square)
            if box is None:
                res.skipped.append(key)
            elif resuming and _written(out, split, img_path):
                res.boxes[key] = box  # cropped before the interruption (both files are written atomically)
                res.written[split] += 1
            else:
                image = read_image(img_path)
                if image.shape[:2] != mask.shape:
                    raise DataError(
                        f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                        f"{image.shape[1]}x{image.shape[0]}; run `seg check {root}`"
                    )
                img_c, mask_c = cut(image, box, 0), cut(mask, box, info.ignore_index)
                if size:
                    img_c, mask_c = _resize(img_c, mask_c, size)
                write_image(out / "images" / split / img_path.name, img_c)
                write_mask(out / "masks" / split / f"{img_path.stem}.png", mask_c)
                res.boxes[key] = box
                res.written[split] += 1
            if progress:
                progress(1, total)
    if not res.boxes:
        if created:
            shutil.rmtree(out)
        else:
            for sub in ("images", "masks"):
                shutil.rmtree(out / sub, ignore_errors=True)
            (out / MARKER).unlink(missing_ok=True)
        raise DataError(f"{root}: no image contains the classes {', '.join(res.classes)}; nothing written")
    for split, n in res.written.items():
        if n == 0:  # a split whose images were all skipped would not be a valid split
            for sub in ("images", "masks"):
                shutil.rmtree(out / sub / split, ignore_errors=True)
    note = (
        f"cropped by seg crop-by-mask from {root} (classes={','.join(res.classes)}, margin={margin}, "
        f"square={square}, size={size})"
    )
    d = info.to_dict()
    new = DatasetInfo(
        name=info.name,
        classes=info.classes,
        palette=info.palette,
        ignore_index=info.ignore_index,
        source=f"{info.source}; {note}" if info.source else note,
        label_map=info.label_map,
        extra={k: v for k, v in d.items() if k in info.extra},
    )
    write_dataset_info(out, new)
    (out / MARKER).unlink(missing_ok=True)  # only now is the output a finished dataset
    return res


def _written(out: Path, split: str, img_path: Path) -> bool:
    """Both files of this image's crop are in ``out`` (an interrupted run wrote them)."""
    return (out / "images" / split / img_path.name).is_file() and (
        out / "masks" / split / f"{img_path.stem}.png"
    ).is_file()
