"""Small datasets in the segcli format, made on the fly, shared by the tests of segcli.data and the commands
that read datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
