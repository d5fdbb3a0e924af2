"""Confusion-matrix update: segcli's ConfusionMatrix against torchmetrics' MulticlassJaccardIndex.

    PYTHONPATH=$PWD python bench/metrics.py [--reps 7]

One update of predicted and ground-truth ids of shape 8x512x1024 with 19 classes and 5% ignored pixels
(Cityscapes-sized), timed alternately with torchmetrics' default update (``validate_args=True``) and with
``validate_args=False``; the matrices are asserted identical. Prints ``name: value`` lines and ratios
(< 1: segcli is faster). Targets: <= 0.1 against the default update, <= 0.5 without argument validation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from segcli.metrics import ConfusionMatrix

NUM_CLASSES, IGNORE = 19, 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--shape", type=int, nargs=3, default=(8, 512, 1024))
    args = ap.parse_args()
    from torchmetrics.classification import MulticlassJaccardIndex

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, NUM_CLASSES, tuple(args.shape), generator=g)
    target[torch.rand(tuple(args.shape), generator=g) < 0.05] = IGNORE
    pred = torch.randint(0, NUM_CLASSES, tuple(args.shape), generator=g)

    ours = ConfusionMatrix(NUM_CLASSES, IGNORE)
    theirs = {
        "validate_args=True": MulticlassJaccardIndex(NUM_CLASSES, ignore_index=IGNORE, average=None),
        "validate_args=False": MulticlassJaccardIndex(
            NUM_CLASSES, ignore_index=IGNORE, average=None, validate_args=False
        ),
    }
    times: dict[str, list[float]] = {"segcli": [], **{k: [] for k in theirs}}

    def timed(name: str, fn) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t0)

    for _ in range(args.reps):  # alternately, so load from other processes hits every side alike
        timed("segcli", lambda: ours.update(pred, target))
        for name, metric in theirs.items():
            timed(name, lambda m=metric: m.update(pred, target))
    for name, metric in theirs.items():
        assert torch.equal(ours.mat, metric.confmat.long()), f"confusion matrices differ ({name})"
    print(f"threads: {torch.get_num_threads()}")
    print(f"shape: {'x'.join(map(str, args.shape))}, classes: {NUM_CLASSES}, reps: {args.reps}")
    print("matrices identical: yes")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in med.items():
        print(f"update ms ({name if name != 'segcli' else 'segcli'}): {t * 1e3:.1f}")
    for name in theirs:
        print(f"ratio segcli / torchmetrics {name}: {med['segcli'] / med[name]:.3f}")


if __name__ == "__main__":
    main()
