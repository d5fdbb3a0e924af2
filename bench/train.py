"""Training-step throughput against segmentation-models-pytorch, and bf16 against fp32, on this CPU.

    PYTHONPATH=$PWD python bench/train.py [--size 512] [--reps 3] [--models fpn_r18,...] [--amp]

For fpn_r18, unet_r18, deeplabv3plus_r50 and bisenetv1_r18: images/s of one training step (forward, cross
entropy (+ auxiliary heads), backward, AdamW; batch 2) for segcli and SMP's same architecture on the same timm
encoder (``smp.X("tu-resnetNN")``), timed alternately. Settings: both fp32 (NCHW), both bf16 autocast +
channels_last (SMP users can turn those on too), and segcli's defaults (bf16 + channels_last where the CPU has
native bf16) against SMP's fp32 defaults. Ratios are segcli time / SMP time (< 1: segcli faster); targets
<= 1.0 at equal settings, <= 0.6 for defaults against SMP fp32. SMP has no BiSeNet: bisenetv1_r18 is reported
alone. ``--amp``: segcli bf16 + channels_last against segcli fp32 (target >= 1.5x for the ResNet models).
Prints ``name: value`` lines.
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

from segcli.models import MODELS

NUM_CLASSES = 19

# model key → (segcli name, options, SMP class name or None, timm encoder)
SPECS = {
    "fpn_r18": ("fpn", dict(backbone="resnet18", decoder_channels=256), "FPN", "resnet18"),
    "unet_r18": ("unet", dict(backbone="resnet18", decoder_channels=128), "Unet", "resnet18"),
    "deeplabv3plus_r50": (
        "deeplabv3plus",
        dict(backbone="resnet50", decoder_channels=256, separable=True, output_stride=16),
        "DeepLabV3Plus",
        "resnet50",
    ),
    "bisenetv1_r18": ("bisenetv1", dict(backbone="resnet18"), None, "resnet18"),
}


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


def ours(key: str) -> nn.Module:
    name, options, _, _ = SPECS[key]
    return MODELS.get(name)(NUM_CLASSES, **options)


def smp(key: str) -> nn.Module:
    import segmentation_models_pytorch as smp_lib

    _, _, cls, encoder = SPECS[key]
    return getattr(smp_lib, cls)(f"tu-{encoder}", encoder_weights=None, classes=NUM_CLASSES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default=",".join(SPECS))
    ap.add_argument("--amp", action="store_true", help="segcli bf16 + channels_last against segcli fp32 only")
    args = ap.parse_args()
    torch.manual_seed(0)
    s, batch = args.size, 2
    print(f"threads: {torch.get_num_threads()}")
    print(f"input: {s}x{s}, batch: {batch}, reps: {args.reps}")
    for key in args.models.split(","):
        if args.amp:
            fast, slow = paired_times(
                make_train_step(ours(key), s, True, True), make_train_step(ours(key), s, False, False), args.reps
            )
            print(f"{key} images/s segcli bf16+channels_last: {batch / fast:.2f}")
            print(f"{key} images/s segcli fp32: {batch / slow:.2f}")
            print(f"{key} speed-up bf16 vs fp32: {slow / fast:.2f}")
            continue
        if SPECS[key][2] is None:
            a, b = paired_times(
                make_train_step(ours(key), s, False, False), make_train_step(ours(key), s, True, True), args.reps
            )
            print(f"{key} images/s segcli fp32: {batch / a:.2f} (no SMP counterpart)")
            print(f"{key} images/s segcli bf16+channels_last: {batch / b:.2f}")
            continue
        smp_fp32 = None
        for label, (cl, bf16) in {"fp32": (False, False), "bf16+channels_last": (True, True)}.items():
            a, b = paired_times(
                make_train_step(ours(key), s, cl, bf16), make_train_step(smp(key), s, cl, bf16), args.reps
            )
            smp_fp32 = smp_fp32 or b
            print(f"{key} images/s {label}: segcli {batch / a:.2f}, smp {batch / b:.2f}")
            print(f"{key} ratio segcli/smp {label}: {a / b:.2f}")
            if label != "fp32":
                print(f"{key} ratio segcli {label} / smp fp32 defaults: {a / smp_fp32:.2f}")


if __name__ == "__main__":
    main()
