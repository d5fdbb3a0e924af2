"""The training data path on this CPU: augmentation against albumentations, and the loader against the model.

    PYTHONPATH=$PWD python bench/data.py [--albumentations-path DIR] [--reps 20]

Part 1: segcli's training augmentation (random scale 0.5-2, 512x512 crop padded with the ignore label,
horizontal flip, colour jitter) against albumentations doing the same operations (RandomScale,
PadIfNeeded, RandomCrop, HorizontalFlip, ColorJitter) on a Cityscapes-sized 1024x2048 image and mask,
one thread, timed alternately; ratio = albumentations time / segcli time (target >= 2: segcli crops the
source window before resizing). ``--albumentations-path`` is appended to sys.path (a ``pip install
--target`` folder: the environment's numpy and OpenCV stay first).

Part 2: the quickstart recipe on a generated shapes dataset: the loader's images/s with
``data.num_workers = auto`` against the training step's consumption (FPN-R18, batch 16 at 128 px, segcli
defaults), and the data-wait share of a few real training iterations (target < 5%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from segcli.config.load import load_preset
from segcli.data.transforms import build_train_transform


def augmentation(reps: int) -> None:
    import albumentations as A

    cv2.setNumThreads(0)
    p = load_preset("quickstart", ["augment.crop_size=[512,512]", "augment.scale=[0.5,2.0]"]).preset
    ours = build_train_transform(p.augment, 255)
    theirs = A.Compose(
        [
            A.RandomScale(scale_limit=(-0.5, 1.0), p=1.0),
            A.PadIfNeeded(512, 512, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=255),
            A.RandomCrop(512, 512),
            A.HorizontalFlip(p=0.5),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=1.0),
        ]
    )
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1024, 2048, 3), dtype=np.uint8)
    mask = rng.integers(0, 19, (1024, 2048), dtype=np.uint8)
    t_ours, t_theirs = [], []
    for i in range(reps):
        t0 = time.perf_counter()
        ours(image, mask, np.random.default_rng(i))
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs(image=image, mask=mask)
        t_theirs.append(time.perf_counter() - t0)
    a, b = statistics.median(t_ours), statistics.median(t_theirs)
    print(f"augment images/s (segcli): {1 / a:.1f}")
    print(f"augment images/s (albumentations {A.__version__}): {1 / b:.1f}")
    print(f"ratio albumentations time / segcli time: {b / a:.2f}")


def loader_vs_model() -> None:
    from segcli.data.prepare.shapes import prepare_shapes
    from segcli.train.trainer import build_data, build_state, setup_runtime, train

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "shapes"
        prepare_shapes(root, train=256, val=16, size=128, seed=1)
        over = [f"data.root={root}", f"train.out_dir={tmp}/runs", "train.iters=24", "data.check_samples=0"]
        p = load_preset("quickstart", over).preset
        rt = setup_runtime(p)
        data = build_data(p, rt)
        workers = data.train_loader.num_workers
        batches = iter(data.train_loader)
        next(batches)  # workers started
        t0, n = time.perf_counter(), 0
        for images, _ in batches:
            n += images.shape[0]
            if n >= 160:
                break
        loader_ips = n / (time.perf_counter() - t0)
        state, criterion, _ = build_state(p, data.info, rt)
        model, x = state.model.train(), images.to(memory_format=torch.channels_last)
        masks = torch.zeros(x.shape[0], *x.shape[2:], dtype=torch.long)
        from segcli.core.runtime import autocast

        times = []
        for _ in range(4):
            t0 = time.perf_counter()
            with autocast(rt.device, rt.amp):
                out = model(x)
                loss = criterion(out["out"] if isinstance(out, dict) else out, masks)
            loss.backward()
            state.optimizer.step()
            state.optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
        model_ips = x.shape[0] / statistics.median(times[1:])
        print(f"quickstart loader workers (auto): {workers}")
        print(f"quickstart loader images/s: {loader_ips:.1f}")
        print(f"quickstart train step images/s (amp={rt.amp}): {model_ips:.1f}")
        print(f"ratio loader / model consumption: {loader_ips / model_ips:.2f}")
        result = train("quickstart", over)
        waits = [line for line in (result.run_dir / "log.txt").read_text().splitlines() if "data wait" in line]
        print(f"quickstart training log: {waits[-1].split('] ')[-1] if waits else 'no data-wait line'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--albumentations-path", default="")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    if args.albumentations_path:
        sys.path.append(args.albumentations_path)
    print(f"threads: {torch.get_num_threads()}")
    try:
        augmentation(args.reps)
    except ImportError as e:
        print(f"augment: skipped ({e}); pip install --target DIR albumentations and pass --albumentations-path DIR")
    loader_vs_model()


if __name__ == "__main__":
    main()
