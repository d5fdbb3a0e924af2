"""Model-zoo benchmark on this CPU: size, GFLOPs and latency of every model (training steps: bench/train.py).

    PYTHONPATH=$PWD python bench/models.py [--quick] [--size 512] [--reps 3]
    PYTHONPATH=$PWD python bench/models.py --compare [--quick] [--models segnet,gcn] [--size 512] [--reps 3]

For each registered model at SIZE x SIZE (resnet18 backbone where one is used): parameters,
GFLOPs (FlopCounterMode, batch 1) and eval-mode forward latency (median of a few repetitions).

--compare: each newer model in PAIRS (those registered when it runs) against the existing model it is paired
with, and both against segmentation_models.pytorch where SMP has the family (SMP_FAMILIES). Timed with bf16
autocast and channels_last on the CPU, medians of --reps repetitions after warm-up:

- train step: forward, loss (cross-entropy on every output the model returns in training, aux outputs at 0.4,
  as the trainer adds them: segcli.losses.outputs), backward, AdamW step; batch 2;
- eval forward: eval mode, no grad; batch 1.

Same backbone on every side: timm's resnet18 where the model takes one (SMP as ``tu-resnet18``), and the output
stride of the newer model where the other can be dilated to it. Decoder widths are each implementation's
defaults (the parameter counts are printed). Ratios are ours / other: above 1 is slower than the other.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn as nn

from segcli.models import MODELS, supported_options
from segcli.models.summary import model_summary

NUM_CLASSES = 19
BACKBONE = "resnet18"

# newer model → the existing segcli model of the closest family, measured beside it
PAIRS = {
    "segnet": "unet",
    "gcn": "fpn",
    "duc_hdc": "deeplabv3",
    "sfnet": "fpn",
    "sfnet_lite": "fpn",
    "pointrend": "fpn",
    "panet": "fpn",
    "bifpn": "fpn",
}
# segcli model → (SMP class, its keyword options, what it is): an independent implementation of the family
SMP_FAMILIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "unet": ("Unet", {}, "smp.Unet"),
    "fpn": ("FPN", {}, "smp.FPN"),
    "deeplabv3": ("DeepLabV3", {}, "smp.DeepLabV3"),
    "panet": ("PAN", {}, "smp.PAN (Pyramid Attention, not PANet)"),  # the nearest SMP has: another design
}
SMP_STRIDE_OPTION = {"DeepLabV3": (8, 16), "PAN": (16, 32)}  # the SMP classes that take encoder_output_stride


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


# ------------------------------------------------------------------------------------------------ --compare
@dataclass
class Subject:
    """One network to time: a segcli model with options, or an SMP class."""

    label: str
    build: Callable[[], nn.Module]
    stride: int = 0  # its output stride (0: not set, its own backbone)
    aux_weights: list[float] = field(default_factory=list)  # segcli: weights of its training aux outputs
    times: tuple[float, float] | None = None  # (train step s, eval forward s), once measured
    error: str = ""  # why it could not be timed
    params_m: float = 0.0


def _default_stride(name: str) -> int:
    """The output stride a segcli model uses by default (0: its own backbone, not set by options)."""
    if not MODELS.info(name).timm_encoder:
        return 0
    return int(getattr(MODELS.get(name), "default_stride", 32))


def segcli_subject(name: str, stride: int = 0) -> Subject:
    """``name`` on resnet18 (where it takes a backbone), dilated to ``stride`` when given and supported."""
    wanted: dict[str, Any] = {"backbone": BACKBONE}
    info = MODELS.info(name)
    if stride and stride != _default_stride(name) and stride in info.strides:
        wanted["output_stride"] = stride
    options = supported_options(name, wanted)
    used = options.get("output_stride") or _default_stride(name)
    label = name + ("" if info.timm_encoder else " (own backbone)") + (f" OS{used}" if used else "")
    build = partial(MODELS.get(name), NUM_CLASSES, **options)
    return Subject(label, build, stride=used, aux_weights=[0.4] * info.aux_outputs(True, ()))


def smp_subject(family: str, stride: int) -> Subject:
    """SMP's implementation of ``family`` on timm's resnet18, at ``stride`` where the class takes one."""
    import segmentation_models_pytorch as smp

    cls, options, label = SMP_FAMILIES[family]
    options = {"encoder_name": f"tu-{BACKBONE}", "encoder_weights": None, "classes": NUM_CLASSES, **options}
    allowed = SMP_STRIDE_OPTION.get(cls, ())
    used = (stride if stride in allowed else allowed[0]) if allowed else 32
    if allowed:
        options["encoder_output_stride"] = used
    return Subject(f"{label} OS{used}", partial(getattr(smp, cls), **options), stride=used)


def _time_subject(s: Subject, size: int, reps: int, warmup: int) -> None:
    """Fill ``s.times``: (train step, eval forward) medians with bf16 autocast and channels_last."""
    from segcli.losses.outputs import output_loss

    torch.manual_seed(0)
    net = s.build().to(memory_format=torch.channels_last)
    s.params_m = sum(p.numel() for p in net.parameters()) / 1e6
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x2 = torch.rand(2, 3, size, size).contiguous(memory_format=torch.channels_last)
    y2 = torch.randint(0, NUM_CLASSES, (2, size, size))
    x1 = x2[:1].contiguous(memory_format=torch.channels_last)

    def train_step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x2)
        loss, _ = output_loss(criterion, out, y2, s.aux_weights)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def eval_forward() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            net(x1)

    net.train()
    train = _median_time(train_step, reps, warmup)
    net.eval()
    s.times = (train, _median_time(eval_forward, reps, warmup))


def _ratio(a: Subject, b: Subject) -> str:
    if not (a.times and b.times):
        return f"not timed ({a.error or b.error})"
    return f"train {a.times[0] / b.times[0]:.2f}, eval {a.times[1] / b.times[1]:.2f}"


def compare(names: list[str] | None, size: int, reps: int, warmup: int) -> None:
    """Time each registered newer model beside its pair and SMP's implementations, and print the ratios."""
    wanted = names or list(PAIRS)
    unknown = [n for n in wanted if n not in PAIRS]
    if unknown:
        raise SystemExit(f"--models: {', '.join(unknown)} not in PAIRS ({', '.join(PAIRS)})")
    present = [n for n in wanted if n in MODELS]
    missing = [n for n in wanted if n not in MODELS]
    if missing:
        print(f"not registered (skipped): {', '.join(missing)}")
    if not present:
        return
    print(f"train step batch 2, eval forward batch 1; {size}x{size}, bf16 autocast, channels_last; median of {reps}")
    print(f"after {warmup} warm-up; backbone {BACKBONE} where the model takes one; OS = output stride\n")
    cache: dict[str, Subject] = {}

    def timed(key: str, make: Callable[..., Subject], *args: Any) -> Subject:
        if key not in cache:
            s = make(*args)
            try:
                _time_subject(s, size, reps, warmup)
            except Exception as e:  # noqa: BLE001 - report it and go on with the other models
                s.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            if s.times:
                print(f"  {s.label:<44}{s.params_m:>9.2f}{s.times[0] * 1e3:>12.0f}{s.times[1] * 1e3:>11.0f}")
            else:
                print(f"  {s.label:<44} failed: {s.error}")
            cache[key] = s
        return cache[key]

    print(f"  {'model':<44}{'params M':>9}{'train ms':>12}{'eval ms':>11}")
    lines = []
    for new in present:
        pair = PAIRS[new]
        stride = _default_stride(new)
        ours = timed(f"segcli:{new}", segcli_subject, new)
        base = timed(f"segcli:{pair}:{stride}", segcli_subject, pair, stride)
        lines.append(f"{new} / {pair}: {_ratio(ours, base)}")
        if new in SMP_FAMILIES:
            smp_stride = ours.stride or base.stride
            other = timed(f"smp:{new}:{smp_stride}", smp_subject, new, smp_stride)
            lines.append(f"{new} / {other.label}: {_ratio(ours, other)}")
        else:
            lines.append(f"{new} / SMP: none (segmentation_models.pytorch has no {new})")
        if pair in SMP_FAMILIES:
            other = timed(f"smp:{pair}:{base.stride}", smp_subject, pair, base.stride)
            lines.append(f"{pair} / {other.label}: {_ratio(base, other)}")
    print("\nratios (ours / other; above 1 = ours slower):")
    for line in dict.fromkeys(lines):
        print(f"  {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer models, variants and repetitions (--compare: 256 px)")
    ap.add_argument("--size", type=int, default=512, help="square input size (default 512)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per figure (default 3)")
    ap.add_argument("--compare", action="store_true", help="newer models against their pair and SMP (see above)")
    ap.add_argument("--models", default="", help="--compare: comma-separated newer models (default: all in PAIRS)")
    args = ap.parse_args()
    torch.manual_seed(0)
    reps = 1 if args.quick else args.reps
    size = 256 if args.quick and args.compare else args.size  # smp.PAN needs 256 at least
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {size}x{size}")
    if args.compare:
        names = [n.strip() for n in args.models.split(",") if n.strip()] or None
        compare(names, size, reps, warmup=1 if args.quick else 2)
        return

    names = ["fcn", "fpn", "unet", "deeplabv3plus", "bisenetv2", "enet"] if args.quick else MODELS.names()
    print(f"\n{'model':<15}{'backbone':>10}{'params M':>10}{'GFLOPs':>9}{'fwd ms':>9}")
    for name in names:
        row = model_summary(name, (args.size, args.size), "resnet18", NUM_CLASSES)
        net = MODELS.get(name)(NUM_CLASSES, **supported_options(name, {"backbone": "resnet18"}))
        ms = forward_latency(net, args.size, reps) * 1e3
        print(f"{name:<15}{row['backbone']:>10}{row['params_m']:>10.2f}{row['gflops']:>9.1f}{ms:>9.0f}")


if __name__ == "__main__":
    main()
