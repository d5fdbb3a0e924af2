"""Inference benchmark: `seg infer` end to end against the model's forward pass alone (CPU, or ``--device cuda``).

    PYTHONPATH=$PWD python bench/infer.py [--n 32] [--size 384] [--batch 8] [--preset quickstart] [--big]
        [--device cpu|cuda]

Part 1: N random JPEGs of SIZE x SIZE. ``predict`` (decode JPEG, batch, forward, argmax, palette PNG +
JPEG overlay written) against the bare forward pass of the same model on the same, already decoded
batches (batch B, same precision). The ratio end-to-end / forward-only is the share of the model's rate
the pipeline keeps (1.0 = the model never waits on disk; the target is >= 0.9 at batch 8). The one-off
model loading is part of `seg infer`'s time; the line below it gives the ratio without it (the steady state,
what a long run tends to).

Part 2: ``seg eval``'s loop (prediction core, padded, confusion matrix) against the old per-batch
path (forward at the raw size, bilinear resize, argmax) on the same loader: images/s of each.

``--pool 1,4,8``: the host side alone at each thread count, without the model (decode, palette PNG, overlay
JPEG, class shares, the two atomic writes per image, as ``seg infer``'s pool runs them): the rate no model can
push ``seg infer`` past on this machine.

``--big``: one 4000x3000 image predicted with sliding windows (512 tiles) on the CPU, peak RSS reported
(ru_maxrss of this process, which includes parts 1-2: run it alone for a clean figure).
Random weights: speed does not depend on them. The CPU may be shared: figures are medians of a few runs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segcli.config.load import load_preset
from segcli.core.checkpoint import build_from_weights, save_weights
from segcli.core.factory import model_from_preset
from segcli.core.runtime import autocast
from segcli.data.format import DatasetInfo
from segcli.data.io import read_image, write_image
from segcli.infer.predict_core import predict_images, prepare_model
from segcli.infer.predictor import OutputOptions, _decode, _Writer, predict
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices, resolve_protocol
from segcli.metrics import ConfusionMatrix

CLASSES = 19


def _weights(folder: Path, preset: str) -> Path:
    p = load_preset(preset, ["model.pretrained=false"]).preset
    model = model_from_preset(p.model, CLASSES)
    info = DatasetInfo(
        "bench", tuple(f"c{i}" for i in range(CLASSES)), tuple((i * 9, i * 5, i * 3) for i in range(CLASSES))
    )
    return save_weights(folder / "w.safetensors", model, p, info)


def _images(folder: Path, n: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    out = []
    for i in range(n):  # smooth-ish images: JPEG sizes like photos, not like noise
        img = np.kron(np.roll(base, i, axis=0), np.ones((8, 8, 1), dtype=np.uint8))
        out.append(write_image(folder / "in" / f"im{i:04d}.jpg", img))
    return out


def _timed_pair(a, b, reps: int) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, timed alternately so that load from other processes hits both alike."""
    ta, tb = [], []
    for _ in range(reps):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--pool", default="", help="thread counts for the host-side-only rate, e.g. 1,4,8")
    ap.add_argument("--amp", default=None, help="as seg infer --amp (default: the preset's train.amp)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the forward pass timed to the last kernel)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        w = _weights(folder, args.preset)
        paths = _images(folder, args.n, args.size)
        model, meta = build_from_weights(w, dev)
        chosen = resolve_protocol(ProtocolChoices(amp=args.amp), meta.preset, dev)  # what `seg infer` picks
        amp, cl = chosen.amp, chosen.channels_last
        prepare_model(model, dev, cl, fixed_size=True)
        decoded = torch.stack([torch.from_numpy(read_image(p).transpose(2, 0, 1).copy()) for p in paths])
        proto = PredictionProtocol(amp=amp, channels_last=cl)

        def forward_only() -> None:
            with torch.no_grad():
                for i in range(0, len(decoded), args.batch):
                    xs = decoded[i : i + args.batch]
                    predict_images(model, xs, [(args.size, args.size)] * len(xs), proto, dev)
            sync()

        runs = iter(range(10**6))
        loads: list[float] = []

        def end_to_end() -> None:
            out = folder / f"out{next(runs)}"
            res = predict(
                w, [str(folder / "in")], out, args.device, ProtocolChoices(amp=args.amp, batch_size=args.batch)
            )
            loads.append(res.load_seconds)

        forward_only()  # warm-up
        t_fwd, t_e2e = _timed_pair(forward_only, end_to_end, args.reps)
        print(
            f"images {args.n} x {args.size}px JPEG, batch {args.batch}, preset {args.preset}, "
            f"device {dev}, threads {torch.get_num_threads()}, amp {amp}, channels_last {cl}"
        )
        print(f"forward only      : {args.n / t_fwd:8.2f} images/s")
        print(f"seg infer (e2e)   : {args.n / t_e2e:8.2f} images/s   ratio e2e/forward = {t_fwd / t_e2e:.3f}")
        load = statistics.median(loads)
        steady = t_e2e - load
        print(
            f"  of which loading: {load:8.3f} s (weights read, model built); without it "
            f"{args.n / steady:.2f} images/s, ratio {t_fwd / steady:.3f}"
        )

        # Part 2: eval loop, core vs the old per-batch path (no padding)
        masks = [torch.randint(0, CLASSES, (args.size, args.size), device=dev) for _ in paths]

        def eval_core() -> None:
            cm = ConfusionMatrix(CLASSES)
            for i in range(0, len(decoded), args.batch):
                xs = decoded[i : i + args.batch]
                for lg, m in zip(predict_images(model, xs, [(args.size, args.size)] * len(xs), proto, dev), masks[i:]):
                    cm.update(lg.argmax(0), m)
            sync()

        def eval_old() -> None:
            cm = ConfusionMatrix(CLASSES)
            with torch.no_grad():
                for i in range(0, len(decoded), args.batch):
                    with autocast(dev, amp):
                        lg = model(decoded[i : i + args.batch].to(dev)).float()
                    lg = F.interpolate(lg, size=(args.size, args.size), mode="bilinear", align_corners=False)
                    for one, m in zip(lg, masks[i:]):
                        cm.update(one.argmax(0), m)
            sync()

        t_core, t_old = _timed_pair(eval_core, eval_old, args.reps)
        print(f"eval core         : {args.n / t_core:8.2f} images/s")
        print(f"eval old path     : {args.n / t_old:8.2f} images/s   ratio core/old = {t_old / t_core:.3f}")

        if args.pool:
            writer = _Writer(meta, OutputOptions(save=("mask", "overlay")))
            rng = np.random.default_rng(2)
            blobs = rng.integers(0, CLASSES, (16, 16), dtype=np.uint8)  # region-shaped masks, like predictions
            mask = np.kron(blobs, np.ones((args.size // 16, args.size // 16), dtype=np.uint8))

            def host(i: int, out: Path) -> None:
                image, _ = _decode(paths[i % len(paths)], (), ())
                writer.write(image, mask, None, writer.paths(out, f"im{i}"), False)
                writer.shares(mask)

            for n in (int(v) for v in args.pool.split(",")):
                with ThreadPoolExecutor(n) as pool:
                    out = folder / f"pool{n}"
                    list(pool.map(lambda i, o=out: host(i, o), range(n)))  # warm: folders made, threads up
                    t0 = time.perf_counter()
                    list(pool.map(lambda i, o=out: host(i, o), range(args.n)))
                    rate = args.n / (time.perf_counter() - t0)
                print(f"host side only    : {rate:8.2f} images/s with {n} pool thread(s)")

        if args.big:
            rng = np.random.default_rng(1)
            big = torch.from_numpy(rng.integers(0, 256, (1, 3, 3000, 4000), dtype=np.uint8))
            slide = PredictionProtocol(slide=True, tile=(512, 512), stride=(341, 341), window_batch=args.batch)
            t0 = time.perf_counter()
            out = predict_images(model, big, [(3000, 4000)], slide, dev)[0].argmax(0)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"4000x3000 slide   : {time.perf_counter() - t0:8.1f} s, mask {tuple(out.shape)}, "
                f"peak RSS {rss:.0f} MiB"
            )


if __name__ == "__main__":
    main()
