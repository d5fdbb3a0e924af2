"""`seg prepare folder`: any folder of images plus a folder of masks.

Images and masks pair by file stem, after removing ``image_suffix`` / ``mask_suffix`` from the
stems (``00001_img.jpg`` + ``00001_gt.png`` pair with suffixes ``_img`` and ``_gt``); without a
``mask_suffix``, the one of ``_mask``, ``-mask`` and ``_label`` that pairs the most masks is used. Masks are read
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

Where the files are: two folders (images, masks), or one folder/archive holding ``images/`` +
``masks/``, ``<split>/images/`` + ``<split>/masks/``, or ``images/<split>/`` + ``masks/<split>/``
(mmseg's ``img_dir``/``ann_dir``). Split folders are kept as splits (``validation``/``valid`` → ``val``,
``training`` → ``train``). The labels folder is ``--masks NAME`` (any name), else the one folder beside
the images named like one (``masks``, ``labels``, ``ann_dir`` ...) or holding files named like the
images; when several could be the labels, the error lists them instead of guessing.

``--roi FOLDER`` pairs a region mask with every image by stem (anywhere under FOLDER): pixels where
it is 0 become ``ignore_index``, so training and every metric count only the region. A name that is no
folder of its own is looked up beside each split's images, like ``--masks`` (``training/mask``, ``test/mask``).

Without split folders, splits come from list files (``{"train": "train.txt", ...}``, one sample id
or file name per line; samples in no list are left out) or from a seeded random ``val_ratio``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.decode import colors_to_ids, decode_ids, decode_image, read_file
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
MASK_SUFFIXES = ("_mask", "-mask", "_label")  # tried on the mask stems when no --mask-suffix is given


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


MASK_EXTS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg")
# Split folder names mapped to the names presets use (data.train_split / data.val_split); others are kept.
SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "testing": "test"}


@dataclass(frozen=True)
class Part:
    """One split's images and masks folders, each ``(source index, posix folder)``; ``split`` is None
    when the folders do not split the data (the split then comes from --split-lists or --val-ratio)."""

    split: str | None
    images: tuple[int, str]
    masks: tuple[int, str]


def _parent(d: str) -> str:
    return d.rsplit("/", 1)[0] if "/" in d else ""


def _base(d: str) -> str:
    return d.rsplit("/", 1)[-1]


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a else b


def _named(d: str, wanted: str) -> bool:
    wanted = wanted.strip("/")
    return d == wanted or d.endswith("/" + wanted)


class _Tree:
    """The folders of one source holding image-like files (``exclude``, a folder, left out)."""

    def __init__(self, srcs: Sources, src: int, exclude: tuple[str, ...] = ()) -> None:
        self.files: dict[str, list[str]] = {}  # folder -> stems of the files directly in it
        for mem in srcs.members:
            head, _, base = mem.name.rpartition("/")
            ext = os.path.splitext(base)[1].lower()
            if mem.src != src or base.startswith(".") or ext not in IMAGE_EXTS + MASK_EXTS:
                continue
            if any(head == x or head.startswith(x + "/") for x in exclude):
                continue
            self.files.setdefault(head, []).append(os.path.splitext(base)[0])
        self.dirs = {""}
        for d in self.files:
            while d:
                self.dirs.add(d)
                d = _parent(d)

    def children(self, d: str) -> list[str]:
        return sorted(c for c in self.dirs if c and _parent(c) == d)

    def stems_under(self, d: str) -> set[str]:
        return {s for f, stems in self.files.items() if not d or f == d or f.startswith(d + "/") for s in stems}

    def split_dirs(self, d: str) -> list[str]:
        """The subfolders of ``d`` holding files, when ``d`` itself holds none (``img_dir/<split>/``)."""
        return [] if d in self.files else [c for c in self.children(d) if c in self.files]


def _image_dirs(tree: _Tree, wanted: str | None, where: str) -> list[str]:
    """The images folder(s): the shallowest named ``wanted`` (default: one of IMAGE_DIRS). Several
    at that depth under different parents are the ``<split>/images`` layout; two in one parent are an error."""
    hits = [d for d in tree.dirs if d and (_named(d, wanted) if wanted else _base(d) in IMAGE_DIRS)]
    if not hits:
        if wanted:
            raise DataError(f"{where}: no images folder {wanted!r} inside (folders: {sorted(tree.dirs - {''})[:8]})")
        raise DataError(
            f"{where}: cannot tell which folder holds the images (none of {', '.join(IMAGE_DIRS)}); "
            "pass --images SUBFOLDER or give the images and masks folders as two arguments"
        )
    depth = min(d.count("/") for d in hits)
    hits = sorted(d for d in hits if d.count("/") == depth)
    by_parent: dict[str, list[str]] = {}
    for d in hits:
        by_parent.setdefault(_parent(d), []).append(d)
    for ds in by_parent.values():
        if len(ds) > 1:
            raise DataError(f"{where}: more than one folder could hold the images: {', '.join(ds)}; pass --images NAME")
    return hits


def _mask_dir(tree: _Tree, images: str, wanted: str | None, suffixes: tuple[str, str], where: str) -> str:
    """The labels folder beside ``images``: ``wanted``, else the one sibling named like a labels folder
    (MASK_DIRS) or holding files whose stems match the images'. Several candidates are an error
    listing them: guessing would silently train on the wrong labels."""
    siblings = [c for c in tree.children(_parent(images)) if c != images]
    if wanted:
        hit = [c for c in siblings if _named(c, wanted)] or [c for c in tree.dirs if c and c == wanted.strip("/")]
        if not hit:
            there = ", ".join(_base(c) for c in siblings) or "none"
            raise DataError(f"{where}: no masks folder {wanted!r} beside {images} (folders there: {there})")
        return hit[0]
    image_stems = {_strip(s, suffixes[0]) for s in tree.stems_under(images)}
    tried = (suffixes[1],) if suffixes[1] else ("", *MASK_SUFFIXES)
    found = [
        c
        for c in siblings
        if _base(c) in MASK_DIRS or image_stems & {_strip(s, x) for s in tree.stems_under(c) for x in tried}
    ]
    if len(found) > 1:
        raise DataError(
            f"{where}: more than one folder could hold the labels: {', '.join(found)}; pass --masks NAME to pick one"
        )
    if not found:
        raise DataError(
            f"{where}: cannot tell which folder holds the masks (none of {', '.join(MASK_DIRS)} beside "
            f"{images}, and no folder there holds files named like the images); pass --masks NAME "
            "or give the images and masks folders as two arguments"
        )
    return found[0]


def find_parts(srcs: Sources, opts: dict[str, Any], exclude: tuple[str, ...] = ()) -> list[Part]:
    """Where the images and masks are, per split: two folders, or one folder/archive holding
    ``images/`` + ``masks/``, ``<split>/{images,masks}/`` or ``images/<split>/`` + ``masks/<split>/``
    (mmseg's ``img_dir``/``ann_dir``); the folder names are found or given (--images, --masks)."""
    where = srcs.origin_list()
    suffixes = (opts["image_suffix"], opts["mask_suffix"])
    if len(srcs.roots) == 2:
        itree, mtree = _Tree(srcs, 0), _Tree(srcs, 1)
        pairs: list[tuple[str | None, str, str]] = [(None, "", "")]
        isrc, msrc = 0, 1
    elif len(srcs.roots) == 1:
        itree = mtree = _Tree(srcs, 0, exclude)
        isrc = msrc = 0
        dirs = _image_dirs(itree, opts["images_dir"], where)
        pairs = [
            (
                None if len(dirs) == 1 else _split_name(_base(_parent(d))),
                d,
                _mask_dir(itree, d, opts["masks_dir"], suffixes, where),
            )
            for d in dirs
        ]
    else:
        raise DataError(f"give one folder/archive holding images and masks, or two folders; got {len(srcs.roots)}")
    parts = []
    for split, img, mask in pairs:
        subs = itree.split_dirs(img) if split is None else []
        if not subs:
            parts.append(Part(split, (isrc, img), (msrc, mask)))
            continue
        for d in subs:
            m = _join(mask, _base(d))
            if m not in mtree.files:
                raise DataError(f"{where}: images folder {d} has no masks folder {m} (folders split the same way)")
            parts.append(Part(_split_name(_base(d)), (isrc, d), (msrc, m)))
    return parts


def _split_name(folder: str) -> str:
    return SPLIT_ALIASES.get(folder.lower(), folder)


def _files_in(srcs: Sources, src: int, prefix: str, exts: tuple[str, ...]) -> dict[str, Member]:
    out = {}
    for mem in srcs.members:
        if mem.src != src:
            continue
        head, _, base = mem.name.rpartition("/")
        if head == prefix and os.path.splitext(base)[1].lower() in exts and not base.startswith("."):
            out[os.path.splitext(base)[0]] = mem
    return out


def _one_folder_source(srcs: Sources) -> bool:
    return len(srcs.roots) == 1 and srcs.kinds[0] == "dir" and not srcs.staged[0]


def _roi_folder(srcs: Sources, roi: str | os.PathLike | None) -> Path | str | None:
    """The --roi folder: a path on disk, a subfolder of the single source folder, or (a str) the name of a
    folder looked up beside each split's images, like --masks (``training/mask``, ``test/mask``)."""
    if roi is None:
        return None
    p = Path(roi)
    if p.is_dir():
        return p
    if _one_folder_source(srcs) and (srcs.roots[0] / p).is_dir():
        return srcs.roots[0] / p
    if _one_folder_source(srcs) and not p.is_absolute() and _roi_dirs(srcs, p.as_posix()):
        return p.as_posix()
    raise DataError(
        f"{p}: --roi folder not found (a folder of region masks named like the images, or the name of one "
        "inside each split's folder)"
    )


def _roi_dirs(srcs: Sources, name: str) -> tuple[str, ...]:
    """The folders of the single source named ``name`` (its last components) that hold files."""
    heads = {mem.name.rpartition("/")[0] for mem in srcs.members if mem.src == 0}
    found = set()
    for head in heads:
        while head:
            if _named(head, name):
                found.add(head)
            head = _parent(head)
    return tuple(sorted(found))


def _inside(srcs: Sources, folder: Path | str | None) -> tuple[str, ...]:
    """The --roi folder(s) as posix paths inside the single source folder (so they are not taken for labels)."""
    if folder is None or not _one_folder_source(srcs):
        return ()
    if isinstance(folder, str):
        return _roi_dirs(srcs, folder)
    try:
        return (folder.resolve().relative_to(srcs.roots[0].resolve()).as_posix(),)
    except ValueError:
        return ()


def _pair_split_rois(
    srcs: Sources, name: str, ids: list[tuple[str | None, str]], suffix: str, parts: list[Part]
) -> dict[tuple[str | None, str], str]:
    """Region masks from the folder ``name`` beside each split's images (``training/images`` →
    ``training/<name>``), paired by stem within the split."""
    out: dict[tuple[str | None, str], str] = {}
    for part in parts:
        folder = _join(_parent(part.images[1]), name)
        if not (srcs.roots[0] / folder).is_dir():
            raise DataError(
                f"{srcs.roots[0] / folder}: no --roi folder {name!r} beside the images folder {part.images[1]}"
            )
        mine = [k for k in ids if k[0] == part.split]
        out.update(_pair_rois(srcs.roots[0] / folder, mine, suffix, [part]))
    return out


def _pair_rois(
    folder: Path, ids: list[tuple[str | None, str]], suffix: str, parts: list[Part]
) -> dict[tuple[str | None, str], str]:
    """The region mask of every sample, found by stem anywhere under ``folder`` (after removing
    ``suffix``); a stem found twice is told apart by a folder named like the sample's split."""
    found: dict[str, list[Path]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS + MASK_EXTS:
            found.setdefault(_strip(p.stem, suffix), []).append(p)
    folders = {p.split: _base(p.images[1]) if p.split is not None else "" for p in parts}
    out = {}
    for split, stem in ids:
        hits = found.get(stem, [])
        if len(hits) > 1:
            names = {str(split), folders.get(split, ""), _base(_parent(folders.get(split, "")))}
            hits = [h for h in hits if names & set(h.relative_to(folder).parts[:-1])] or hits
        if not hits:
            raise DataError(
                f"{folder}: no region mask for {stem!r} (region masks pair with images by stem; see --roi-suffix)"
            )
        if len(hits) > 1:
            raise DataError(f"{folder}: several region masks for {stem!r}: {', '.join(map(str, hits[:3]))}")
        out[(split, stem)] = str(hits[0])
    return out


def _default_mask_suffix(srcs: Sources, parts: list[Part], image_suffix: str) -> str:
    """Without --mask-suffix: the one of "" and :data:`MASK_SUFFIXES` that pairs the most masks with images
    (``im0.jpg`` + ``im0_mask.png``), none on a tie."""
    image_keys: set[tuple[str | None, str]] = set()
    mask_keys: list[tuple[str | None, str]] = []
    for part in parts:
        image_keys |= {(part.split, _strip(k, image_suffix)) for k in _files_in(srcs, *part.images, IMAGE_EXTS)}
        mask_keys += [(part.split, k) for k in _files_in(srcs, *part.masks, MASK_EXTS)]
    paired = {x: sum((split, _strip(k, x)) in image_keys for split, k in mask_keys) for x in ("", *MASK_SUFFIXES)}
    return max(paired, key=lambda x: (paired[x], x == ""))


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
        Option("images_dir", str, None, "Images folder name inside a single SRC (default: auto).", flag="--images"),
        Option(
            "masks_dir",
            str,
            None,
            "Labels folder name inside a single SRC, any name (default: the one folder named or filled like labels).",
            flag="--masks",
        ),
        Option("image_suffix", str, "", "Suffix removed from image stems before pairing (e.g. _img)."),
        Option(
            "mask_suffix",
            str,
            "",
            "Suffix removed from mask stems before pairing (e.g. _gt); without it _mask, -mask and _label are tried.",
        ),
        Option("classes", str, None, "Class names in id order: a,b,c."),
        Option("classes_file", Path, None, "File with one class name per line."),
        Option("colors", Path, None, "RGB masks: table file of 'r,g,b,name' lines in id order (name 'ignore' = void)."),
        Option("binary", bool, False, "0/255 masks → 0/1 (background, foreground)."),
        Option("ignore_index", int, 255, "Mask value of void pixels."),
        Option(
            "roi",
            Path,
            None,
            "Folder of region masks paired with the images by stem (or its name inside each split, like --masks): "
            "pixels where it is 0 become ignore_index.",
        ),
        Option("roi_suffix", str, "", "Suffix removed from region-mask stems before pairing (e.g. _mask)."),
        *split_options(0.2, "Splits from list files: train=train.txt,val=val.txt (one id per line)."),
    )

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        binary, colors, ignore_index = opts["binary"], opts["colors"], opts["ignore_index"]
        image_suffix = opts["image_suffix"]
        classes = read_class_names(opts["classes"], opts["classes_file"])
        if binary and colors:
            raise DataError("--binary and --colors exclude each other: pick one way to read the masks")
        roi_dir = _roi_folder(srcs, opts["roi"])
        parts = find_parts(srcs, opts, exclude=_inside(srcs, roi_dir))
        mask_suffix = opts["mask_suffix"] or _default_mask_suffix(srcs, parts, image_suffix)
        folder_splits = parts[0].split is not None
        if folder_splits and opts["split_lists"]:
            raise DataError(
                f"{srcs.origin_list()}: the folders already split the data "
                f"({', '.join(sorted({str(p.split) for p in parts}))}); drop --split-lists"
            )
        images: dict[tuple[str | None, str], Member] = {}
        masks: dict[tuple[str | None, str], Member] = {}
        for part in parts:
            imgs = {_strip(k, image_suffix): m for k, m in _files_in(srcs, *part.images, IMAGE_EXTS).items()}
            msks = {_strip(k, mask_suffix): m for k, m in _files_in(srcs, *part.masks, MASK_EXTS).items()}
            if not imgs:
                raise DataError(f"{srcs.origin_list()}: no images found in {part.images[1] or 'the images folder'}")
            if not msks:
                raise DataError(f"{srcs.origin_list()}: no masks found in {part.masks[1] or 'the masks folder'}")
            images.update(((part.split, k), m) for k, m in imgs.items())
            masks.update(((part.split, k), m) for k, m in msks.items())
        ids = sorted(set(images) & set(masks), key=lambda k: (str(k[0]), k[1]))
        if not ids:
            raise DataError(
                f"{srcs.origin_list()}: no image stem matches a mask stem (e.g. image "
                f"{min(images, key=str)[1]!r}, mask {min(masks, key=str)[1]!r}); set --image-suffix/--mask-suffix"
            )
        unpaired = sorted(set(images) ^ set(masks), key=lambda k: (str(k[0]), k[1]))
        if unpaired:
            k = unpaired[0]
            side = srcs.describe(images[k]) if k in images else srcs.describe(masks[k])
            raise DataError(f"{side}: has no matching {'mask' if k in images else 'image'} ({len(unpaired)} unpaired)")
        if isinstance(roi_dir, str):
            rois = _pair_split_rois(srcs, roi_dir, ids, opts["roi_suffix"], parts)
        else:
            rois = _pair_rois(roi_dir, ids, opts["roi_suffix"], parts) if roi_dir is not None else {}

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

        stems = {k for _, k in ids}

        def key_of(line: str) -> str:
            key = _strip(Path(line).stem, image_suffix)
            return key if key in stems else _strip(key, mask_suffix)

        if folder_splits:
            split_of = {k: str(k[0]) for k in ids}
            settings["splits"] = "folders"
        else:
            by_stem, split_settings = assign_splits(
                sorted(stems), opts["split_lists"], opts["val_ratio"], opts["seed"], key_of
            )
            split_of = {k: by_stem[k[1]] for k in ids if k[1] in by_stem}
            settings.update(split_settings)
        if roi_dir is not None:
            params["roi"] = True
            where = roi_dir if isinstance(roi_dir, str) else str(roi_dir.resolve())
            settings.update(roi=where, roi_suffix=opts["roi_suffix"])
            label_map += "; pixels outside the --roi region -> ignore_index"
        samples = [Sample(split_of[k], k[1], images[k], masks[k], rois.get(k)) for k in ids if k in split_of]
        source = f"seg prepare folder ({srcs.origin_list()})"
        info = make_info(opts["name"], classes, None, ignore_index, source=source, label_map=label_map)
        return Plan(info, samples, params, settings)

    def decode_label(self, srcs: Sources, s: Sample, params: dict[str, Any]) -> np.ndarray:
        """Decode one mask by the chosen mode; with a region mask, pixels outside it become ignore."""
        ids = self._decode(srcs, s, params)
        if not params.get("roi"):
            return ids
        where = str(s.extra)
        region = decode_image(read_file(where, "region mask", "check the --roi folder"), where).max(axis=2) > 0
        if region.shape != ids.shape:
            raise DataError(
                f"{where}: region mask is {region.shape[1]}x{region.shape[0]} but its label "
                f"{srcs.describe(s.label)} is {ids.shape[1]}x{ids.shape[0]}; they must have the same size"
            )
        return np.where(region, ids, np.asarray(params["ignore_index"], ids.dtype))

    def _decode(self, srcs: Sources, s: Sample, params: dict[str, Any]) -> np.ndarray:
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
