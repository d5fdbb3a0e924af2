"""Forward + backward time of every segcli loss, side by side with segmentation_models_pytorch where it has one.

    PYTHONPATH=$PWD python bench/bench_losses.py [--batch 4 --classes 19 --size 128 --reps 5 --device cpu]

Prints milliseconds per call and the ratio segcli / SMP (below 1 = segcli faster).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from segcli.losses import build_loss

IGNORE = 255


def timed(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits, target, reps: int) -> float:
    """Median milliseconds of ``fn(logits, target).backward()``."""
    times = []
    for _ in range(reps + 1):  # first call warms up
        x = logits.detach().requires_grad_()
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x, target).backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2] * 1000


def smp_counterparts() -> dict[str, Callable]:
    try:
        from segmentation_models_pytorch import losses as smp
    except ImportError:
        return {}
    return {
        "ce": smp.SoftCrossEntropyLoss(smooth_factor=0.0, ignore_index=IGNORE),
        "dice": smp.DiceLoss("multiclass", ignore_index=IGNORE),
        "jaccard": smp.JaccardLoss("multiclass", ignore_index=IGNORE),
        "tversky": smp.TverskyLoss("multiclass", alpha=0.3, beta=0.7, ignore_index=IGNORE),
        "focal": smp.FocalLoss("multiclass", ignore_index=IGNORE),
        "lovasz": smp.LovaszLoss("multiclass", ignore_index=IGNORE),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, args.size, args.size)
    logits = torch.randn(args.batch, args.classes, args.size, args.size, generator=g).to(args.device)
    target = torch.randint(0, args.classes, shape, generator=g)
    target[torch.rand(shape, generator=g) < 0.1] = IGNORE
    target = target.to(args.device)
    theirs = smp_counterparts()
    print(f"logits {tuple(logits.shape)} on {args.device}, 10% ignored, median of {args.reps}")
    print(f"{'loss':8} {'segcli ms':>10} {'smp ms':>8} {'ratio':>6}")
    for term in ("ce", "ohem", "topk", "dice", "jaccard", "tversky", "focal", "lovasz"):
        options = {"ohem": {"min_kept": args.batch * args.size * args.size // 16}}
        ours = timed(
            build_loss((term,), args.classes, IGNORE, options=options).to(args.device), logits, target, args.reps
        )
        if term in theirs:
            ref = timed(theirs[term], logits, target, args.reps)
            print(f"{term:8} {ours:10.1f} {ref:8.1f} {ours / ref:6.2f}")
        else:
            print(f"{term:8} {ours:10.1f} {'-':>8} {'-':>6}")


if __name__ == "__main__":
    main()
