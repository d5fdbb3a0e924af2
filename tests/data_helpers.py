"""Small datasets in the segcli format, made on the fly, shared by the tests of segcli.data and of the commands
that read datasets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segcli.data.format import make_info, write_dataset_info
from segcli.data.io import write_image, write_mask


def make_toy_dataset(root: Path, n: int = 3, size: int = 16, classes: int = 3) -> Path:
    write_dataset_info(root, make_info("toy", [f"c{i}" for i in range(classes)]))
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(n):
            write_image(root / "images" / split / f"{i}.png", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            write_mask(root / "masks" / split / f"{i}.png", rng.integers(0, classes, (size, size), dtype=np.uint8))
    return root


# For `seg check`: a dataset whose masks are given arrays.
CLASSES3 = ["bg", "a", "b"]


def make_masks_dataset(
    root: Path, masks: dict[str, np.ndarray], classes=CLASSES3, split="train", image_hw=None
) -> Path:
    """A segcli dataset whose masks are the given arrays (written as single-channel PNG) and grey images."""
    write_dataset_info(root, make_info("t", classes))
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "masks" / split).mkdir(parents=True, exist_ok=True)
    for stem, m in masks.items():
        hw = image_hw or m.shape[:2]
        cv2.imwrite(str(root / "images" / split / f"{stem}.png"), np.full((*hw, 3), 128, np.uint8))
        cv2.imwrite(str(root / "masks" / split / f"{stem}.png"), m)
    return root


# For `seg crop-by-mask`: images whose pixels tell where they came from, rectangle masks.
H, W = 40, 60


def coded_image() -> np.ndarray:
    """Every pixel tells where it came from: (row, column, 7)."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([yy, xx, np.full_like(yy, 7)], axis=-1).astype(np.uint8)


def rect_mask(y0: int, y1: int, x0: int, x1: int, cls: int = 1) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = cls
    return m


def make_ds(root: Path, masks: dict[str, np.ndarray], split: str = "train") -> Path:
    write_dataset_info(root, make_info("boxes", ["bg", "thing", "other"], source="unit test"))
    for stem, m in masks.items():
        write_image(root / "images" / split / f"{stem}.png", coded_image())
        write_mask(root / "masks" / split / f"{stem}.png", m)
    return root


# For `seg class-weights`.
def make_random_dataset(root: Path, n: int = 9, classes: int = 4, seed: int = 0) -> Path:
    """Random blobs of classes 0-2 (class 3 never occurs), some ignore pixels, one palette-PNG mask."""
    rng = np.random.default_rng(seed)
    write_dataset_info(root, make_info("rand", [f"c{i}" for i in range(classes)]))
    for sub in ("images", "masks"):
        (root / sub / "train").mkdir(parents=True)
    for i in range(n):
        h, w = int(rng.integers(12, 24)), int(rng.integers(12, 24))
        m = rng.choice([0, 0, 0, 1, 2, 255], size=(h, w), p=[0.3, 0.2, 0.1, 0.2, 0.1, 0.1]).astype(np.uint8)
        if i % 3 == 0:
            m[m == 2] = 0  # some images lack class 2 (matters for median-freq)
        cv2.imwrite(str(root / "images" / "train" / f"{i:03d}.png"), np.zeros((h, w, 3), np.uint8))
        path = root / "masks" / "train" / f"{i:03d}.png"
        if i == 4:
            im = Image.fromarray(m, mode="P")
            im.putpalette([7, 99, 200] * 256)
            im.save(path)
        else:
            cv2.imwrite(str(path), m)
    return root


def make_tiff_dataset(
    root: Path, train: int = 12, val: int = 4, size: int = 64, channels: int = 4, seed: int = 0
) -> Path:
    """A two-class dataset of 16-bit ``channels``-channel TIFFs (RGB noise plus a near-infrared channel in which
    the object, a rectangle, is bright; the object is faint in RGB), with masks; dataset.toml states the count."""
    import tifffile

    write_dataset_info(root, make_info("tiff", ["ground", "plant"], channels=channels))
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for i in range(n):
            image = rng.integers(20000, 30000, (size, size, channels)).astype(np.uint16)
            mask = np.zeros((size, size), np.uint8)
            y, x = rng.integers(4, size // 2, 2)
            h, w = rng.integers(size // 4, size // 2, 2)
            mask[y : y + h, x : x + w] = 1
            image[..., -1] = np.where(mask == 1, 60000, 8000).astype(np.uint16)
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(
                root / "images" / split / f"{i:02d}.tif", image, photometric="minisblack", planarconfig="contig"
            )
            write_mask(root / "masks" / split / f"{i:02d}.png", mask)
    return root
