"""Tiled inference benchmark: `seg infer --tiled` on a synthetic gigapixel TIFF, peak memory and throughput.

    PYTHONPATH=$PWD python bench/tiled.py [--size 20000] [--height H] [--tile 512] [--stride 512]
        [--preset quickstart] [--set model.backbone=resnet18 ...] [--classes 5] [--device cpu] [--threads 2]
        [--plain-windows 48] [--rounds 1] [--compression zlib|none] [--pipeline-only]

1. Writes a SIZE x SIZE (``--height``: SIZE wide, H high) RGB tiled TIFF (512x512 tiles, zlib unless
   ``--compression none``) tile by tile, never whole in memory (a smooth pattern with discs; kept in ``--work`` and
   reused when it is already there).
2. Runs ``segcli.infer.tiled.predict_tiled`` (what ``seg infer BIG.tif --tiled`` runs for it) in a child process
   on a model of ``--preset`` with random weights (speed and memory do not depend on them) and prints the child's
   peak RSS (``ru_maxrss``), its seconds (model loading left out) and seconds per megapixel of the image.
3. Runs ``--plain-windows`` windows of the same size in another child as a plain batch (random uint8 input
   already in memory, ``window_batch`` at a time through the same forward pass, nothing read, blended or
   written) and prints its seconds per window; the throughput ratio is plain / tiled seconds per window
   (1.0 = reading, blending and writing cost nothing; the target is >= 0.8). ``--plain-windows 0`` skips it;
   ``--rounds R`` runs the pair R times, one after the other, and gives the median ratio (a shared machine's load
   changes by the minute).

``--pipeline-only`` puts a 1x1 convolution in the model's place: the seconds and memory of reading, blending and
writing alone, fast enough for the full 20000 x 20000 on a CPU.

Memory is O(width x tile height): it does not grow with the height, so a 20000-wide strip (``--height 1024``)
peaks where the full 20000 x 20000 image does, and two heights show it flat.

The machine may be shared: say what else ran. A full 20k x 20k run of FPN-R18 on 2 CPU cores takes about half an
hour at stride 512 (1600 windows); ``--size 4096`` gives the same per-window figures in a minute or two.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TIFF_TILE = 512


def synthetic_tiles(height: int, width: int) -> object:
    """The tiles of a height x width RGB picture in row-major order: smooth colour waves and a grid of discs."""
    t = TIFF_TILE
    yy, xx = np.mgrid[0:t, 0:t].astype(np.float32)
    for y0 in range(0, height, t):
        for x0 in range(0, width, t):
            y, x = yy + y0, xx + x0
            r = 128 + 100 * np.sin(x / 370.0) * np.cos(y / 530.0)
            g = 128 + 100 * np.sin((x + y) / 810.0)
            b = 128 + 100 * np.cos(x / 150.0 + y / 220.0)
            disc = ((x % 700 - 350) ** 2 + (y % 600 - 300) ** 2) < 120**2
            tile = np.stack([r, g, b], -1)
            tile[disc] = (230, 40, 40)
            yield tile.astype(np.uint8)


def write_input(path: Path, height: int, width: int, compression: str) -> float:
    """The synthetic TIFF at ``path`` (reused when it exists with this size); seconds spent writing it."""
    import tifffile

    if path.is_file():
        with tifffile.TiffFile(path) as tf:
            if tf.pages[0].shape[:2] == (height, width):
                return 0.0
    t0 = time.perf_counter()
    tifffile.imwrite(
        path,
        data=synthetic_tiles(height, width),
        shape=(height, width, 3),
        dtype=np.uint8,
        tile=(TIFF_TILE, TIFF_TILE),
        photometric="rgb",
        compression=None if compression == "none" else compression,
        bigtiff=height * width * 3 > 2**32 - 2**26,
        metadata=None,
    )
    return time.perf_counter() - t0


def stand_in(classes: int) -> object:
    """A 1x1 convolution on [0, 1] pixels: a model that costs next to nothing (``--pipeline-only``)."""
    import torch

    class OneByOne(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x.float() / 255)

    return OneByOne().eval()


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(mode: str, args: argparse.Namespace) -> dict:
    """In a fresh process: ``tiled`` (seg infer --tiled on the image) or ``plain`` (the same windows as a batch)."""
    import torch

    torch.set_num_threads(args.threads)
    from segcli.infer.predict_core import forward_padded, input_multiple
    from segcli.infer.predictor import open_model
    from segcli.infer.protocol import ProtocolChoices

    choices = ProtocolChoices(tile=(args.tile, args.tile), stride=(args.stride, args.stride), amp="none")
    if mode == "tiled":
        from segcli.infer import tiled

        opened = open_model(args.weights, args.device, choices)
        model = opened.model
        if args.pipeline_only:  # a 1x1 convolution: what remains is reading, blending and writing
            model = stand_in(args.classes).to(opened.device)
        samples: list[tuple[int, float]] = []
        blended = tiled.blended_rows

        def watched(*a: object) -> object:  # the resident memory every 8th band, as the image goes by
            for k, (y, band) in enumerate(blended(*a)):
                if k % 8 == 0:
                    samples.append((y, rss_mb()))
                yield y, band

        tiled.blended_rows = watched
        files = {"mask": Path(args.work) / "out" / "masks" / "bench.tif"}
        warm = torch.randint(0, 256, (1, 3, args.tile, args.tile), dtype=torch.uint8)
        forward_padded(model, warm.to(opened.device), opened.protocol, input_multiple(model))  # as the plain run
        t0 = time.perf_counter()
        entry = tiled.predict_tiled(model, args.input, files, opened.protocol, opened.meta)
        seconds = time.perf_counter() - t0
        return {
            "seconds": seconds,
            "windows": entry["tiled"]["windows"],
            "read": entry["tiled"]["read"],
            "rss": samples,
        }
    opened = open_model(args.weights, args.device, choices)
    proto, model = opened.protocol, opened.model
    multiple = input_multiple(model)
    batch = torch.randint(0, 256, (proto.window_batch, 3, args.tile, args.tile), dtype=torch.uint8)
    forward_padded(model, batch[:1].to(opened.device), proto, multiple)  # warm-up
    done, t0 = 0, time.perf_counter()
    while done < args.plain_windows:
        n = min(proto.window_batch, args.plain_windows - done)
        forward_padded(model, batch[:n].to(opened.device), proto, multiple).max(1)
        done += n
    if opened.device.type == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - t0, "windows": done}


def weights_file(args: argparse.Namespace) -> Path:
    from segcli.config.load import load_preset
    from segcli.core.checkpoint import save_weights
    from segcli.core.factory import model_from_preset
    from segcli.data.format import DatasetInfo, default_palette

    preset = load_preset(args.preset, ["model.pretrained=false", *args.set]).preset
    names = tuple(f"c{i}" for i in range(args.classes))
    info = DatasetInfo("bench", names, tuple(tuple(c) for c in default_palette(args.classes)))
    return save_weights(Path(args.work) / "w.safetensors", model_from_preset(preset.model, args.classes), preset, info)


def run_child(mode: str, args: argparse.Namespace) -> dict:
    argv = [sys.executable, __file__, "--child", mode, "--json-args", json.dumps(vars(args))]
    done = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    )
    if done.returncode:
        raise SystemExit(f"{mode} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20000, help="width (and height unless --height)")
    ap.add_argument("--height", type=int, default=0)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--stride", type=int, default=512)
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--set", action="append", default=[], help="preset override (key=value), repeatable")
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plain-windows", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=1, help="tiled then plain, this many times (median ratio)")
    ap.add_argument("--compression", default="zlib", choices=["zlib", "none"])
    ap.add_argument(
        "--pipeline-only", action="store_true", help="a 1x1 convolution for the model: reading, blending, writing"
    )
    ap.add_argument("--work", default="/tmp/segcli-bench-tiled")
    ap.add_argument("--child", choices=["tiled", "plain"])
    ap.add_argument("--json-args")
    args = ap.parse_args()
    if args.child:
        ns = argparse.Namespace(**json.loads(args.json_args))
        result = child(args.child, ns)
        print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    height = args.height or args.size
    args.input = str(work / f"synthetic_{height}x{args.size}_{args.compression}.tif")
    wrote = write_input(Path(args.input), height, args.size, args.compression)
    megabytes = os.path.getsize(args.input) / 1e6
    how = f"written in {wrote:.1f} s, writer's peak RSS {peak_rss_mb():.0f} MB" if wrote else "reused"
    print(f"input: {height} x {args.size} RGB tiled TIFF ({args.compression}), {megabytes:.0f} MB, {how}")
    args.weights = str(weights_file(args))
    mpx = height * args.size / 1e6
    model = f"{args.preset} {' '.join(args.set)}, random weights"
    model = "a 1x1 convolution (--pipeline-only)" if args.pipeline_only else model
    print(
        f"model: {model}, {args.classes} classes, {args.device}, {args.threads} threads; "
        f"windows {args.tile}x{args.tile} every {args.stride}"
    )
    ratios = []
    for r in range(args.rounds):  # tiled then plain, again: a change of load reaches both
        tiled = run_child("tiled", args)
        per_window = tiled["seconds"] / tiled["windows"]
        trace = ", ".join(f"row {y}: {mb:.0f}" for y, mb in tiled["rss"])
        print(f"round {r + 1}: resident MB as the rows go by: {trace}")
        print(
            f"round {r + 1}: tiled: {tiled['windows']} windows in {tiled['seconds']:.1f} s = "
            f"{tiled['seconds'] / mpx:.3f} s/Mpx, {per_window:.3f} s/window; peak RSS {tiled['peak_rss_mb']:.0f} MB "
            f"(read: {tiled['read']})"
        )
        args.plain_windows = min(args.plain_windows, tiled["windows"])
        if not args.plain_windows:
            continue
        plain = run_child("plain", args)
        plain_window = plain["seconds"] / plain["windows"]
        print(
            f"round {r + 1}: plain batch: {plain['windows']} windows in {plain['seconds']:.1f} s = {plain_window:.3f} "
            f"s/window (as s/Mpx of this image: {plain_window * tiled['windows'] / mpx:.3f}); "
            f"peak RSS {plain['peak_rss_mb']:.0f} MB"
        )
        ratios.append(plain_window / per_window)
        print(f"round {r + 1}: throughput ratio tiled / plain: {ratios[-1]:.3f}")
    if ratios:
        print(f"throughput ratio, median of {len(ratios)} rounds: {statistics.median(ratios):.3f} (target >= 0.8)")


if __name__ == "__main__":
    main()
