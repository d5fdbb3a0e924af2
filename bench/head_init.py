"""The first steps from scratch: segcli's U-Net against smp's, and the classifier's start.

The plain loop of bench/budget.py (smallfg, 256x256 crops, batch 8, AdamW 1e-3, plain cross-entropy, fp32,
constant lr) trains three networks for ``--steps`` steps each, one after the other in this process, from the same
seed: smp's U-Net (resnet18, from scratch), segcli's U-Net with ``model.full_res`` (the same layout: logits at
stride 1 from 16 channels) and segcli's U-Net with its classifier reset to PyTorch's default start (uniform within
1/sqrt(fan_in), the classifier's start before 2026-12-07). It prints the mean training CE of each tenth of the
run and the foreground F1 on 20 held-out images (bench/budget.py's scoring), and the ratio of segcli's CE to smp's.

    PYTHONPATH=$PWD python bench/head_init.py --steps 60 --work DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import segmentation_models_pytorch as smp
import torch
from budget import MEAN, STD, SYNTHETIC, scores, test_pairs
from budget_data import write_synthetic

from segcli.data.format import DatasetIndex
from segcli.data.io import read_image, read_mask
from segcli.models import build_model


def networks(name: str):  # noqa: ANN201 - (module, forward on 0..255 images)
    """The network ``name`` and its forward on raw images."""
    if name == "smp":
        net = smp.Unet("resnet18", encoder_weights=None, classes=2)
        return net, lambda x: net((x - MEAN) / STD)
    net = build_model("unet", 2, backbone="resnet18", pretrained=False, decoder_channels=128, full_res=True)
    if name == "segcli-default-head":
        net.net.head[-1].reset_parameters()  # PyTorch's own start for a conv
    return net, lambda x: net(x)


def run(name: str, root: Path, steps: int, seed: int) -> tuple[list[float], float]:
    """Train ``name`` for ``steps`` steps; the CE per step and the held-out foreground F1."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pairs = DatasetIndex.scan(root, ["train"]).pairs("train")
    images, masks = [read_image(i) for i, _ in pairs], [read_mask(m) for _, m in pairs]
    net, forward = networks(name)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)
    losses = []
    net.train()
    for _ in range(steps):
        xs, ys = [], []
        for k in rng.integers(0, len(images), 8):  # smallfg's images are 256x256: the crop is the image
            img, msk = images[k], masks[k]
            if rng.random() < 0.5:
                img, msk = img[:, ::-1], msk[:, ::-1]
            xs.append(torch.from_numpy(img.copy()).permute(2, 0, 1))
            ys.append(torch.from_numpy(msk.astype(np.int64)))
        out = forward(torch.stack(xs).float())
        loss = criterion(out["out"] if isinstance(out, dict) else out, torch.stack(ys))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    net.eval()
    held_out = test_pairs(str(root / "images" / "test"))[:20]
    return losses, scores(forward, held_out, 2, 1)["fg_F1"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/segcli_bench_head_init"))
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    root = write_synthetic("smallfg", args.work / "smallfg", SYNTHETIC["smallfg"], seed=0)
    results = {}
    for name in ("smp", "segcli", "segcli-default-head"):
        t0 = time.perf_counter()
        losses, f1 = run(name, root, args.steps, args.seed)
        tenth = max(1, args.steps // 10)
        curve = " ".join(f"{np.mean(losses[i : i + tenth]):.3f}" for i in range(0, args.steps, tenth))
        results[name] = (np.mean(losses[-tenth:]), f1)
        print(f"{name:20s} CE per tenth: {curve}; held-out foreground F1 {f1:.4f} ({time.perf_counter() - t0:.0f}s)")
    ce_smp, f1_smp = results["smp"]
    for name in ("segcli", "segcli-default-head"):
        ce, f1 = results[name]
        diff = f1 - f1_smp
        print(f"{name}: last tenth's CE {ce / ce_smp:.2f}x smp's; F1 {f1:.4f} against smp's {f1_smp:.4f} ({diff:+.4f})")


if __name__ == "__main__":
    main()
