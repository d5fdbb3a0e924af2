"""`seg prepare folder`: any folder of images plus a folder of masks.

Images and masks pair by file stem, after removing ``image_suffix`` / ``mask_suffix`` from the
stems (``00001_img.jpg`` + ``00001_gt.png`` pair with suffixes ``_img`` and ``_gt``). Masks are read
in one of three ways:

* ids (default): grey or palette PNGs whose values (palette *index*, not colour) are the class ids;
  values >= the number of classes other than ``ignore_index`` are an error;
* ``colors``: RGB masks mapped by a colour table file, one class per line in id order::

      # r, g, b, name    (commas or spaces; '#' starts a comment)
      0, 0, 0, background
      128, 0, 0, building
      255, 255, 255, ignore      # the name "ignore" marks void: mapped to ignore_index, not a class

  a colour not in the table is an error naming it;
* ``binary``: 0/255 masks (any grey/RGB image, thresholded at 128) → 0/1, classes background, foreground.

Splits come from list files (``{"train": "train.txt", ...}``, one sample id or file name per line;
samples in no list are left out) or from a seeded random ``val_ratio``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.decode import colors_to_ids, decode_ids, decode_image
from segcli.data.format import make_info
from segcli.data.io import IMAGE_EXTS
from segcli.data.prepare.converter import Converter, Option, Plan, register_converter
from segcli.data.prepare.sources import Member, Sources
from segcli.data.prepare.splits import assign_splits, parse_list_arg, split_options
from segcli.data.prepare.writer import Sample
from segcli.errors import DataError

EXPECTED = "an images folder and a masks folder (or one folder/archive holding both, see --images/--masks)"
IMAGE_DIRS = ("images", "image", "imgs", "img", "img_dir", "JPEGImages")
MASK_DIRS = ("masks", "mask", "labels", "label", "annotations", "gts", "gt", "ann_dir", "SegmentationClass")
IGNORE_NAME = "ignore"


def read_color_table(path: str | os.PathLike) -> tuple[list[tuple[int, int, int]], list[str]]:
    """Parse an ``r,g,b,name`` colour table; returns (colours, names) where name "ignore" marks void."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: colour table not found (expected lines 'r,g,b,name')")
    colors, names = [], []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in re.split(r"[,\s]+", line, maxsplit=3) if p]
        try:
            rgb = tuple(int(v) for v in parts[:3])
            if len(parts) < 4 or not all(0 <= v <= 255 for v in rgb):
                raise ValueError
        except ValueError:
            raise DataError(f"{path}:{no}: expected 'r,g,b,name' with r,g,b in 0..255, got {line!r}") from None
        if rgb in colors:
            raise DataError(f"{path}:{no}: colour {rgb} is listed twice")
        colors.append(rgb)
        names.append(parts[3].strip())
    if not [n for n in names if n != IGNORE_NAME]:
        raise DataError(f"{path}: no classes listed (expected lines 'r,g,b,name')")
    return colors, names


def read_class_names(classes: str | list[str] | None, classes_file: str | os.PathLike | None) -> list[str] | None:
    """Class names from ``a,b,c`` (or a list) or a file with one name per line."""
    if classes and classes_file:
        raise DataError("give --classes or --classes-file, not both")
    if classes:
        return parse_list_arg(classes)
    if classes_file:
        p = Path(classes_file)
        if not p.is_file():
            raise DataError(f"{p}: classes file not found (one class name per line)")
        return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return None


def _pick_dir(srcs: Sources, wanted: str | None, defaults: tuple[str, ...], what: str) -> str:
    """The folder (posix prefix inside the single source) holding the images or masks."""
    dirs = {m.name.rsplit("/", 1)[0] if "/" in m.name else "" for m in srcs.members}
    if wanted is not None:
        wanted = wanted.strip("/")
        if wanted not in dirs:
            raise DataError(f"{srcs.origin_list()}: no {what} folder {wanted!r} inside (folders: {sorted(dirs)[:8]})")
        return wanted
    for d in sorted(dirs, key=lambda x: (x.count("/"), x)):
        if d.rsplit("/", 1)[-1] in defaults:
            return d
    raise DataError(
        f"{srcs.origin_list()}: cannot tell which folder holds the {what} (none of {', '.join(defaults)}); "
        f"pass --{what} SUBFOLDER or give the images and masks folders as two arguments"
    )


def _files_in(srcs: Sources, src: int, prefix: str, exts: tuple[str, ...]) -> dict[str, Member]:
    out = {}
    for mem in srcs.members:
        if mem.src != src:
            continue
        head, _, base = mem.name.rpartition("/")
        if head == prefix and os.path.splitext(base)[1].lower() in exts and not base.startswith("."):
            out[os.path.splitext(base)[0]] = mem
    return out


def _strip(stem: str, suffix: str) -> str:
    return stem[: -len(suffix)] if suffix and stem.endswith(suffix) else stem


@register_converter
class Folder(Converter):
    """Any images folder + masks folder (see the module docstring for the mask modes)."""

    name = "folder"
    help = "Any images folder + masks folder: id, palette, RGB-colour (--colors) or 0/255 (--binary) masks."
    expected = EXPECTED
    sources_help = "IMAGES_DIR MASKS_DIR, or one folder/archive holding both (see --images/--masks)."
    options = (
        Option("name", str, "folder", "Dataset name written to dataset.toml."),
        Option("images_dir", str, None, "Images subfolder inside a single SRC (default: auto).", flag="--images"),
        Option("masks_dir", str, None, "Masks subfolder inside a single SRC (default: auto).", flag="--masks"),
        Option("image_suffix", str, "", "Suffix removed from image stems before pairing (e.g. _img)."),
        Option("mask_suffix", str, "", "Suffix removed from mask stems before pairing (e.g. _gt, _mask)."),
        Option("classes", str, None, "Class names in id order: a,b,c."),
        Option("classes_file", Path, None, "File with one class name per line."),
        Option("colors", Path, None, "RGB masks: table file of 'r,g,b,name' lines in id order (name 'ignore' = void)."),
        Option("binary", bool, False, "0/255 masks → 0/1 (background, foreground)."),
        Option("ignore_index", int, 255, "Mask value of void pixels."),
        *split_options(0.2, "Splits from list files: train=train.txt,val=val.txt (one id per line)."),
    )

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        binary, colors, ignore_index = opts["binary"], opts["colors"], opts["ignore_index"]
        image_suffix, mask_suffix = opts["image_suffix"], opts["mask_suffix"]
        classes = read_class_names(opts["classes"], opts["classes_file"])
        if binary and colors:
            raise DataError("--binary and --colors exclude each other: pick one way to read the masks")
        if len(srcs.roots) == 2:
            img_loc, mask_loc = (0, ""), (1, "")
        elif len(srcs.roots) == 1:
            img_loc = (0, _pick_dir(srcs, opts["images_dir"], IMAGE_DIRS, "images"))
            mask_loc = (0, _pick_dir(srcs, opts["masks_dir"], MASK_DIRS, "masks"))
        else:
            raise DataError(f"give one folder/archive holding images and masks, or two folders; got {len(srcs.roots)}")
        images = {_strip(k, image_suffix): m for k, m in _files_in(srcs, *img_loc, IMAGE_EXTS).items()}
        masks = {
            _strip(k, mask_suffix): m
            for k, m in _files_in(srcs, *mask_loc, (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg")).items()
        }
        if not images:
            raise DataError(f"{srcs.origin_list()}: no images found in {img_loc[1] or 'the images folder'}")
        if not masks:
            raise DataError(f"{srcs.origin_list()}: no masks found in {mask_loc[1] or 'the masks folder'}")
        ids = sorted(set(images) & set(masks))
        if not ids:
            raise DataError(
                f"{srcs.origin_list()}: no image stem matches a mask stem (e.g. image {next(iter(sorted(images)))!r}, "
                f"mask {next(iter(sorted(masks)))!r}); set --image-suffix/--mask-suffix"
            )
        unpaired = sorted(set(images) ^ set(masks))
        if unpaired:
            k = unpaired[0]
            side = srcs.describe(images[k]) if k in images else srcs.describe(masks[k])
            raise DataError(f"{side}: has no matching {'mask' if k in images else 'image'} ({len(unpaired)} unpaired)")

        params: dict[str, Any] = {"ignore_index": ignore_index}
        settings: dict[str, Any] = {
            "ignore_index": ignore_index,
            "image_suffix": image_suffix,
            "mask_suffix": mask_suffix,
        }
        if binary:
            params["mode"] = "binary"
            classes = classes or ["background", "foreground"]
            if len(classes) != 2:
                raise DataError(f"--binary makes 2 classes; --classes gives {len(classes)}: {', '.join(classes)}")
            label_map = "binary: pixel >= 128 -> 1, else 0"
        elif colors:
            table, names = read_color_table(colors)
            class_names = [n for n in names if n != IGNORE_NAME]
            if classes and classes != class_names:
                raise DataError(f"{colors}: the colour table names the classes; drop --classes/--classes-file")
            classes = class_names
            remap, k = [], 0
            for n in names:
                remap.append(ignore_index if n == IGNORE_NAME else k)
                k += n != IGNORE_NAME
            params.update(mode="colors", colors=table, remap=remap)
            settings["colors"] = [list(c) for c in table]
            label_map = f"RGB colour -> id by {Path(colors).name}"
        else:
            if not classes:
                raise DataError("name the classes with --classes a,b,c or --classes-file FILE (ids 0..N-1 in order)")
            params["mode"] = "ids"
            label_map = "none (masks hold class ids)"
        if len(set(classes)) != len(classes):
            raise DataError(f"class names must be unique: {', '.join(classes)}")
        if ignore_index < len(classes):
            raise DataError(f"--ignore-index {ignore_index} must be >= the number of classes ({len(classes)})")
        params["num_classes"] = len(classes)
        settings.update(mode=params["mode"], classes=list(classes))

        def key_of(line: str) -> str:
            key = _strip(Path(line).stem, image_suffix)
            return key if key in images else _strip(key, mask_suffix)

        split_of, split_settings = assign_splits(ids, opts["split_lists"], opts["val_ratio"], opts["seed"], key_of)
        settings.update(split_settings)
        samples = [Sample(split_of[k], k, images[k], masks[k]) for k in ids if k in split_of]
        source = f"seg prepare folder ({srcs.origin_list()})"
        info = make_info(opts["name"], classes, None, ignore_index, source=source, label_map=label_map)
        return Plan(info, samples, params, settings)

    def decode_label(self, srcs: Sources, s: Sample, params: dict[str, Any]) -> np.ndarray:
        """Decode one mask by the chosen mode (ids / colours / binary)."""
        data, where = srcs.read(s.label), srcs.describe(s.label)
        mode = params["mode"]
        if mode == "binary":
            rgb = decode_image(data, where)
            return (rgb.max(axis=2) >= 128).astype(np.uint8)
        if mode == "colors":
            ids = colors_to_ids(decode_image(data, where), params["colors"], where)
            return np.asarray(params["remap"], np.uint8)[ids]
        ids = decode_ids(data, where)
        bad = np.unique(ids[(ids >= params["num_classes"]) & (ids != params["ignore_index"])])
        if bad.size:
            hint = " (a 0/255 mask? use --binary)" if set(np.unique(ids).tolist()) <= {0, 255} else ""
            raise DataError(
                f"{where}: mask values {bad[:8].tolist()} are not class ids 0..{params['num_classes'] - 1} "
                f"nor ignore {params['ignore_index']}{hint}"
            )
        return ids
