"""Images/s of `seg class-weights` counting vs a straightforward per-image loop.

Generates N masks (default 1,000 of 512x512, blobs of 6 classes plus ignore) in a temp folder,
then times, over the same files:

* baseline: one process, ``cv2.imread`` + ``np.unique(return_counts=True)`` per image;
* segcli:   ``segcli.data.class_weights.class_stats`` with 0 and with ``--workers`` processes.

Run: ``PYTHONPATH=$PWD python bench/class_weights.py [--n 1000] [--size 512] [--workers 2] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segcli.data.class_weights import class_stats
from segcli.data.format import make_info, write_dataset_info

CLASSES = 6


def generate(root: Path, n: int, size: int) -> None:
    """N blob masks with a void border; the images are empty placeholders (only masks are read)."""
    write_dataset_info(root, make_info("bench", [f"c{i}" for i in range(CLASSES)]))
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    tiny = root / "images" / "train"
    for i in range(n):
        m = np.zeros((size, size), np.uint8)
        for _ in range(12):
            c = int(rng.integers(0, CLASSES))
            centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            cv2.circle(m, centre, int(rng.integers(size // 25, size // 4)), c, -1)
        cv2.rectangle(m, (0, 0), (size - 1, size - 1), 255, 2)  # a void border
        cv2.imwrite(str(root / "masks" / "train" / f"{i:05d}.png"), m)
        (tiny / f"{i:05d}.png").touch()  # pairing only; the images are never read


def baseline(root: Path) -> np.ndarray:
    """The plain loop: decode, np.unique, accumulate (both histograms, like segcli)."""
    pixels = np.zeros(CLASSES, np.int64)
    image_pixels = np.zeros(CLASSES, np.int64)
    for p in sorted((root / "masks" / "train").glob("*.png")):
        m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        values, counts = np.unique(m, return_counts=True)
        keep = values < CLASSES
        pixels[values[keep]] += counts[keep]
        image_pixels[values[keep]] += m.size
    return pixels


def timed(fn, n: int, repeat: int) -> tuple[float, object]:  # noqa: ANN001
    """Best images/s over ``repeat`` runs (the CPU may be shared: the best run has the least noise)."""
    best, result = 0.0, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="Runs per variant; the best is reported.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        t0 = time.perf_counter()
        generate(root, args.n, args.size)
        print(
            f"generated {args.n} masks of {args.size}x{args.size} in {time.perf_counter() - t0:.1f}s "
            f"({os.cpu_count()} CPUs visible)"
        )
        base_ips, base_pixels = timed(lambda: baseline(root), args.n, args.repeat)
        one_ips, one = timed(lambda: class_stats(root, "train", workers=0), args.n, args.repeat)
        par_ips, par = timed(lambda: class_stats(root, "train", workers=args.workers), args.n, args.repeat)
        assert (one.pixels == base_pixels).all() and (par.pixels == base_pixels).all(), "histograms differ"
        print(f"baseline (imread + np.unique, 1 process): {base_ips:8.1f} images/s")
        print(f"segcli, in-process                      : {one_ips:8.1f} images/s  ({one_ips / base_ips:.2f}x)")
        print(
            f"segcli, {args.workers} workers                      : {par_ips:8.1f} images/s  "
            f"({par_ips / base_ips:.2f}x)"
        )


if __name__ == "__main__":
    main()
