"""`seg browse`: grid pictures of a dataset's images with their masks overlaid and a class legend.

With a preset, each sample first goes through the preset's training augmentation (scale, crop, flip,
colour jitter), so what is drawn is what the model is trained on (as mmseg's ``browse_dataset``).
Works on any dataset in the segcli format; pages of ``cols`` x ``rows`` tiles go to ``out``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.format import extra_channel_files, list_samples, list_splits, read_dataset_info
from segcli.data.io import read_image, read_mask
from segcli.errors import DataError, UserError
from segcli.viz import draw_cv


@dataclass(frozen=True)
class BrowseResult:
    out: Path
    files: list[Path]
    split: str
    images: int
    augmented: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "files": [str(f) for f in self.files],
            "split": self.split,
            "images": self.images,
            "augmented": self.augmented,
        }


def pick(count: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``count`` samples (all of them when ``n >= count``)."""
    if n >= count:
        return list(range(count))
    return [i * count // n for i in range(n)]


@dataclass(frozen=True)
class PageLayout:
    """How a page is drawn: ``cols`` x ``rows`` tiles of ``tile`` pixels, masks at opacity ``alpha``."""

    cols: int = 4
    rows: int = 4
    tile: int = 256
    alpha: float = 0.5


def browse(
    data: str | os.PathLike,
    preset: str | os.PathLike | None = None,
    split: str | None = None,
    n: int = 16,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    layout: PageLayout = PageLayout(),
    seed: int = 0,
) -> BrowseResult:
    """Write ``<out>/<split>[_augmented]_NNN.png`` pages showing ``n`` samples of ``split``.

    ``preset`` (a name or file): apply its training augmentation (sample ``i`` drawn with seed ``seed + i``);
    ``out`` defaults to ``browse/<dataset name>``; existing pages are kept unless ``overwrite``.
    """
    cols, rows, tile, alpha = layout.cols, layout.rows, layout.tile, layout.alpha
    if n < 1 or cols < 1 or rows < 1 or tile < 16:
        raise UserError("--n, --cols and --rows must be >= 1 and --tile >= 16")
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"--alpha {alpha}: give a value between 0 and 1")
    root = Path(data)
    info = read_dataset_info(root)
    transform = None
    if preset is not None:
        from segcli.config.load import load_preset
        from segcli.data.transforms import build_train_transform

        p = load_preset(preset).preset
        transform = build_train_transform(p.augment, info.ignore_index)
        split = split or p.data.train_split
    splits = list_splits(root)
    split = split or ("train" if "train" in splits else (splits[0] if splits else "train"))
    samples = list_samples(root, split)
    if not samples:
        raise DataError(f"{root / 'images' / split}: no images in split {split!r}")
    chosen = pick(len(samples), n)
    folder = Path(out) if out is not None else Path("browse") / info.name
    per_page = cols * rows
    pages = [chosen[i : i + per_page] for i in range(0, len(chosen), per_page)]
    stem = f"{split}_augmented" if transform is not None else split
    files = [folder / f"{stem}_{k + 1:03d}.png" for k in range(len(pages))]
    taken = [f for f in files if f.exists()]
    if taken and not overwrite:
        raise UserError(f"{taken[0]} exists ({len(taken)} of {len(files)} pages); pass --overwrite or another --out")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder}: exists and is not a folder")

    from segcli.viz import write_png

    for page, dest in zip(pages, files):
        tiles, captions, masks = [], [], []
        for i in page:
            image_path, mask_path = samples[i]
            channels = info.channels if info.states_channels else None  # N-channel data: the first three shown
            image = read_image(image_path, channels, extra_channel_files(image_path, info))
            mask = read_mask(mask_path)
            if image.shape[:2] != mask.shape:
                raise DataError(
                    f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                    f"{image.shape[1]}x{image.shape[0]}; run `seg check {root}`"
                )
            if transform is not None:
                image, mask = transform(image, mask, np.random.default_rng(seed + i))
            tiles.append(draw_cv.colour_overlay(image, mask, info.palette, info.ignore_index, alpha))
            captions.append(f"{image_path.stem} {image.shape[1]}x{image.shape[0]}")
            masks.append(mask)
        what = f"after the training augmentation of {preset}" if transform is not None else "as stored"
        title = f"{info.name} / {split}: {len(page)} of {len(samples)} images, {what}"
        picture = draw_cv.grid(tiles, captions, cols, tile, title)
        names, colours = draw_cv.legend_entries(masks, info.classes, info.palette, info.ignore_index)
        picture = np.concatenate([picture, draw_cv.legend(names, colours, picture.shape[1])], 0)
        write_png(dest, picture)
    return BrowseResult(folder, files, split, len(chosen), transform is not None)
