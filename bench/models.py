"""Model-zoo benchmark on this CPU: size, GFLOPs and latency of every model (training steps: bench/train.py).

    PYTHONPATH=$PWD python bench/models.py [--quick] [--size 512] [--reps 3]

For each registered model at SIZE x SIZE (resnet18 backbone where one is used): parameters,
GFLOPs (FlopCounterMode, batch 1) and eval-mode forward latency (median of a few repetitions).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn as nn

from segcli.models import MODELS, supported_options
from segcli.models.summary import model_summary

NUM_CLASSES = 19


def _median_time(fn: Callable[[], None], reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def forward_latency(net: nn.Module, size: int, reps: int) -> float:
    net.eval()
    x = torch.rand(1, 3, size, size)

    def step() -> None:
        with torch.no_grad():
            net(x)

    return _median_time(step, reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer models, variants and repetitions")
    ap.add_argument("--size", type=int, default=512, help="square input size (default 512)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per figure (default 3)")
    args = ap.parse_args()
    torch.manual_seed(0)
    reps = 1 if args.quick else args.reps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}x{args.size}")

    names = ["fcn", "fpn", "unet", "deeplabv3plus", "bisenetv2", "enet"] if args.quick else MODELS.names()
    print(f"\n{'model':<15}{'backbone':>10}{'params M':>10}{'GFLOPs':>9}{'fwd ms':>9}")
    for name in names:
        row = model_summary(name, (args.size, args.size), "resnet18", NUM_CLASSES)
        net = MODELS.get(name)(NUM_CLASSES, **supported_options(name, {"backbone": "resnet18"}))
        ms = forward_latency(net, args.size, reps) * 1e3
        print(f"{name:<15}{row['backbone']:>10}{row['params_m']:>10.2f}{row['gflops']:>9.1f}{ms:>9.0f}")


if __name__ == "__main__":
    main()
