"""Eager fp32, onnxruntime fp32 and onnxruntime int8 of one checkpoint, timed in one process, with each one's mIoU.

    PYTHONPATH=$PWD python bench/int8.py RUN_OR_WEIGHTS [--data DATASET] [--size 512,1024] [--iters 20]
        [--calib-images 64] [--calib-method auto] [--out DIR [--reuse]] [--no-eval]

Exports the fp32 graph and the int8 graph (``seg export --onnx`` and ``seg export --onnx --int8``: the int8 one
passes its val-mIoU gate or the bench stops) into ``--out`` (default a temporary folder), then times one
forward pass of each at ``--size`` (batch 1, median of ``--iters`` after 3 warm-up runs, every core), and
evaluates each on the dataset's val split by the preset's protocol. Prints milliseconds, the ratio to eager
fp32 (below 1: faster) and the mIoU. Run it on an idle machine (the load is printed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from segcli.core.checkpoint import build_from_weights
from segcli.core.rundir import resolve_weights
from segcli.infer import EvalOptions, ExportOptions, Int8Options, evaluate, export_model
from segcli.infer.backends import OnnxRunner


def median_ms(fn, x: torch.Tensor, iters: int) -> float:  # noqa: ANN001 - any callable on a tensor
    for _ in range(3):
        fn(x)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="run directory or .safetensors weights")
    ap.add_argument("--data", default=None, help="dataset (default: the preset's data.root)")
    ap.add_argument("--size", default="512,1024", help="H,W timed")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--calib-images", type=int, default=64)
    ap.add_argument("--calib-method", default="auto")
    ap.add_argument("--out", default=None, help="folder for the exported models (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="time the models already in --out (exported before)")
    ap.add_argument("--no-eval", action="store_true", help="time only: leave out the mIoU of each")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split(","))
    out = Path(args.out or tempfile.mkdtemp(prefix="segcli-int8-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    weights = resolve_weights(args.target)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")

    fp32_path, int8_path = out / "model.onnx", out / "model.int8.onnx"
    if args.reuse and fp32_path.is_file() and int8_path.is_file():
        gate = json.loads((out / "model.int8.onnx.parity.json").read_text())["parity"]["int8"]
        print(f"reusing {fp32_path} and {int8_path} ({gate['method']}, {gate['calib_images']} images)")
    else:
        t0 = time.perf_counter()
        export_model(weights, "onnx", fp32_path, "cpu", ExportOptions(data_root=args.data, overwrite=True))
        t1 = time.perf_counter()
        q = Int8Options(calib_images=args.calib_images, calib_method=args.calib_method)
        int8 = export_model(
            weights, "onnx", int8_path, "cpu", ExportOptions(data_root=args.data, overwrite=True, int8=q)
        )
        gate = int8.parity["int8"]
        took = f"fp32 export {t1 - t0:.1f} s; int8 export {time.perf_counter() - t1:.1f} s"
        print(f"{took} ({gate['method']}, {gate['calib_images']} images)")
    print(f"int8 gate: drop {gate['drop']:.2f} mIoU points; kept in fp32: {gate['kept_fp32'] or 'none'}")

    gc.collect()  # the exports' onnxruntime sessions (their spinning threads) are gone before anything is timed
    model, _ = build_from_weights(weights, "cpu")
    x = torch.randint(0, 256, (1, 3, h, w)).float()
    with torch.no_grad():
        eager_ms = median_ms(model, x, args.iters)
    ort32_ms = median_ms(OnnxRunner(fp32_path, torch.device("cpu")), x, args.iters)
    gc.collect()
    ort8_ms = median_ms(OnnxRunner(int8_path, torch.device("cpu")), x, args.iters)

    rows = []
    for name, target, ms in (
        ("eager fp32", weights, eager_ms),
        ("onnxruntime fp32", fp32_path, ort32_ms),
        ("onnxruntime int8", int8_path, ort8_ms),
    ):
        miou = float("nan")
        if not args.no_eval:
            report = out / f"{name.replace(' ', '_')}.json"
            miou = evaluate(target, args.data, device="cpu", options=EvalOptions(out=report)).metrics["mIoU"]
        rows.append({"backend": name, "ms": round(ms, 2), "ratio": round(ms / eager_ms, 3), "mIoU": miou})
    print(f"{'backend':<18} {'ms @' + args.size:>14} {'x eager':>8} {'val mIoU':>9}")
    for r in rows:
        print(f"{r['backend']:<18} {r['ms']:>14.1f} {r['ratio']:>8.3f} {r['mIoU']:>9.4f}")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    print(json.dumps({"size": [h, w], "rows": rows, "int8_gate_drop": gate["drop"]}))


if __name__ == "__main__":
    main()
