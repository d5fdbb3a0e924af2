"""Model-zoo benchmark on this CPU: size, GFLOPs and latency of every model; train-step time vs SMP.

    PYTHONPATH=$PWD python bench/models.py [--quick] [--size 512] [--reps 3]

Part 1: for each registered model at SIZE x SIZE (resnet18 backbone where one is used): parameters,
GFLOPs (FlopCounterMode, batch 1) and eval-mode forward latency (median of a few repetitions).

Part 2: FPN, UNet and DeepLabV3+ on a resnet18 timm encoder, one training step (forward, cross
entropy, backward, AdamW step, batch 2) against segmentation-models-pytorch's same architecture with
the same timm encoder (``smp.X("tu-resnet18", encoder_weights=None)``). Variants: fp32 NCHW,
channels_last, bf16 autocast, and both (segcli's defaults on a CPU with native bf16). Ratios < 1
mean segcli is faster; the SMP side is timed fp32/NCHW (its defaults) and, for a like-for-like
figure, in the same variant; the two sides are timed alternately so that load from other processes
hits both alike.
The CPU may be shared: run it once, briefly; figures are medians over few steps.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.models import MODELS, supported_options
from segcli.models.summary import model_summary

NUM_CLASSES = 19

# Our configuration closest to each SMP default architecture (widths, separable ASPP for DeepLabV3+).
OURS = {
    "fpn": dict(decoder_channels=256),
    "unet": dict(decoder_channels=128),
    "deeplabv3plus": dict(decoder_channels=256, separable=True, output_stride=16),
}
# The first variant is SMP's default precision and layout: the "vs smp fp32" column divides by it.
# "segcli defaults" = what `seg train` does on this CPU (train.amp=auto → bf16, train.channels_last=true).
VARIANTS = {
    "fp32": (False, False),
    "channels_last": (True, False),
    "bf16": (False, True),
    "segcli defaults": (True, True),
}


def _smp(name: str) -> nn.Module:
    import segmentation_models_pytorch as smp

    cls = {"fpn": smp.FPN, "unet": smp.Unet, "deeplabv3plus": smp.DeepLabV3Plus}[name]
    return cls("tu-resnet18", encoder_weights=None, classes=NUM_CLASSES)


def _ours(name: str) -> nn.Module:
    return MODELS.get(name)(NUM_CLASSES, backbone="resnet18", **OURS.get(name, {}))


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


def make_train_step(net: nn.Module, size: int, channels_last: bool, bf16: bool, batch: int = 2) -> Callable[[], None]:
    """One optimisation step (forward, CE (+ aux), backward, AdamW) as a closure."""
    net.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, NUM_CLASSES, (batch, size, size))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out = net(x)
            if isinstance(out, dict):
                loss = F.cross_entropy(out["out"].float(), y)
                loss = loss + sum(0.4 * F.cross_entropy(a.float(), y) for a in out["aux"])
            else:
                loss = F.cross_entropy(out.float(), y)
        loss.backward()
        opt.step()

    return step


def paired_times(a: Callable[[], None], b: Callable[[], None], reps: int) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b`` timed alternately, so load changes on a shared CPU hit both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(reps):
        for fn, times in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer models, variants and repetitions")
    ap.add_argument("--size", type=int, default=512, help="square input size (default 512)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per figure (default 3)")
    ap.add_argument("--skip-zoo", action="store_true", help="only the SMP comparison")
    args = ap.parse_args()
    torch.manual_seed(0)
    reps = 1 if args.quick else args.reps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}x{args.size}")

    if not args.skip_zoo:
        names = ["fcn", "fpn", "unet", "deeplabv3plus", "bisenetv2", "enet"] if args.quick else MODELS.names()
        print(f"\n{'model':<15}{'backbone':>10}{'params M':>10}{'GFLOPs':>9}{'fwd ms':>9}")
        for name in names:
            row = model_summary(name, (args.size, args.size), "resnet18", NUM_CLASSES)
            net = MODELS.get(name)(NUM_CLASSES, **supported_options(name, {"backbone": "resnet18"}))
            ms = forward_latency(net, args.size, reps) * 1e3
            print(f"{name:<15}{row['backbone']:>10}{row['params_m']:>10.2f}{row['gflops']:>9.1f}{ms:>9.0f}")

    variants = {k: VARIANTS[k] for k in (["fp32", "segcli defaults"] if args.quick else VARIANTS)}
    print(f"\ntrain step (batch 2, {args.size}x{args.size}), seconds; ratio = segcli / smp (< 1: segcli faster)")
    print(f"{'arch':<15}{'variant':<17}{'segcli s':>9}{'smp s':>9}{'vs smp fp32':>12}{'vs smp same':>12}")
    for arch in ["fpn", "unet", "deeplabv3plus"]:
        smp_base = None
        for variant, (cl, bf16) in variants.items():
            ours, theirs = paired_times(
                make_train_step(_ours(arch), args.size, cl, bf16),
                make_train_step(_smp(arch), args.size, cl, bf16),
                reps,
            )
            smp_base = smp_base or theirs
            print(f"{arch:<15}{variant:<17}{ours:>9.2f}{theirs:>9.2f}{ours / smp_base:>12.2f}{ours / theirs:>12.2f}")


if __name__ == "__main__":
    main()
