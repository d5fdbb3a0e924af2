"""Eager fp32 and bf16, onnxruntime fp32 and int8, OpenVINO fp32 and int8 of one checkpoint, timed in one process,
with each one's mIoU.

    PYTHONPATH=$PWD python bench/int8.py RUN_OR_WEIGHTS [--data DATASET] [--size 512,1024] [--iters 20]
        [--rounds 1] [--calib-images 64] [--calib-method auto] [--no-openvino] [--out DIR [--reuse]] [--no-eval]

Exports the fp32 and int8 graphs (``seg export --onnx`` and ``--onnx --int8``, and with OpenVINO installed
``--openvino`` and ``--openvino --int8``: each int8 graph passes its val-mIoU gate or the bench stops) into
``--out`` (default a temporary folder), then times one forward pass of each backend at ``--size`` (batch 1, median
of ``--iters`` after 3 warm-up runs, every core). ``--rounds N`` times every backend N times in turn (round 1 all
backends, then round 2...), so a change of load during the bench reaches every backend; each round's ratio to
eager fp32 is printed, then the median and spread over the rounds. Evaluates each graph on the dataset's val split
by the preset's protocol (eager: the preset's own precision). Prints the CPU's instruction sets and the load
average before and after: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from segcli.core.checkpoint import build_from_weights
from segcli.core.rundir import resolve_weights
from segcli.extras import package_available
from segcli.infer import EvalOptions, ExportOptions, Int8Options, evaluate, export_model
from segcli.infer.backends import OnnxRunner, OpenVinoRunner, read_openvino
from segcli.infer.benchmarking import cpu_flags


def median_ms(fn, x: torch.Tensor, iters: int) -> float:  # noqa: ANN001 - any callable on a tensor
    for _ in range(3):
        fn(x)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1000


def export_all(weights: Path, out: Path, args: argparse.Namespace, formats: list[str]) -> dict[str, Path]:
    """Each format's fp32 and int8 model in ``out`` (exported, or reused with ``--reuse``), by row name."""
    names = {"onnx": ("onnxruntime", ".onnx"), "openvino": ("openvino", ".xml")}
    paths = {}
    for fmt in formats:
        label, suffix = names[fmt]
        for int8 in (False, True):
            path = out / f"model{'.int8' if int8 else ''}{suffix}"
            row = f"{label} {'int8' if int8 else 'fp32'}"
            paths[row] = path
            if args.reuse and path.is_file():
                continue
            q = Int8Options(calib_images=args.calib_images, calib_method=args.calib_method) if int8 else None
            t0 = time.perf_counter()
            res = export_model(weights, fmt, path, "cpu", ExportOptions(data_root=args.data, overwrite=True, int8=q))
            gate = (
                f"; drop {res.parity['int8']['drop']:.2f} mIoU points ({res.parity['int8']['method']})" if int8 else ""
            )
            print(f"{row} export {time.perf_counter() - t0:.1f} s{gate}")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="run directory or .safetensors weights")
    ap.add_argument("--data", default=None, help="dataset (default: the preset's data.root)")
    ap.add_argument("--size", default="512,1024", help="H,W timed")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1, help="times every backend is timed, in turn")
    ap.add_argument("--calib-images", type=int, default=64)
    ap.add_argument("--calib-method", default="auto")
    ap.add_argument("--no-openvino", action="store_true", help="leave OpenVINO out even when it is installed")
    ap.add_argument("--out", default=None, help="folder for the exported models (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="time the models already in --out (exported before)")
    ap.add_argument("--no-eval", action="store_true", help="time only: leave out the mIoU of each")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split(","))
    out = Path(args.out or tempfile.mkdtemp(prefix="segcli-int8-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    weights = resolve_weights(args.target)
    formats = ["onnx"] + (["openvino"] if package_available("openvino") and not args.no_openvino else [])
    print(f"CPU instruction sets: {', '.join(cpu_flags()) or 'none of avx2/avx512/vnni/amx'}")
    paths = export_all(weights, out, args, formats)

    gc.collect()  # the exports' sessions (their spinning threads) are gone before anything is timed
    model, _ = build_from_weights(weights, "cpu")
    x = torch.randint(0, 256, (1, 3, h, w)).float()

    def eager(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    def eager_bf16(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)

    runners = {"eager fp32": eager, "eager bf16": eager_bf16}
    for row, path in paths.items():
        runners[row] = OnnxRunner(path, torch.device("cpu")) if path.suffix == ".onnx" else None
    load = [os.getloadavg()[0]]
    print(f"load average {load[0]:.2f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    times: dict[str, list[float]] = {r: [] for r in runners}
    for k in range(args.rounds):
        for row, fn in runners.items():
            if fn is None:  # OpenVINO: compiled for this round only, so one model's threads never idle beside another
                fn = OpenVinoRunner(read_openvino(paths[row])[0])
            times[row].append(median_ms(fn, x, args.iters))
            gc.collect()
        base = times["eager fp32"][k]
        line = ", ".join(f"{r} {times[r][k]:.1f} ms ({times[r][k] / base:.3f})" for r in runners)
        load.append(os.getloadavg()[0])
        print(f"round {k + 1} (load {load[-1]:.2f}): {line}")

    rows = []
    for row in runners:
        ratios = [t / e for t, e in zip(times[row], times["eager fp32"])]
        miou = float("nan")
        if not args.no_eval and row != "eager bf16":  # eager is evaluated in the preset's own precision
            target = weights if row.startswith("eager") else paths[row]
            report = out / f"{row.replace(' ', '_')}.json"
            miou = evaluate(target, args.data, device="cpu", options=EvalOptions(out=report)).metrics["mIoU"]
        rows.append(
            {
                "backend": row,
                "ms": round(statistics.median(times[row]), 2),
                "ratio": round(statistics.median(ratios), 3),
                "ratio_min": round(min(ratios), 3),
                "ratio_max": round(max(ratios), 3),
                "mIoU": miou,
            }
        )
    print(f"{'backend':<18} {'ms @' + args.size:>14} {'x eager fp32':>13} {'(min-max)':>13} {'val mIoU':>9}")
    for r in rows:
        spread = f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f}"
        print(f"{r['backend']:<18} {r['ms']:>14.1f} {r['ratio']:>13.3f} {spread:>13} {r['mIoU']:>9.4f}")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    print(json.dumps({"size": [h, w], "rounds": args.rounds, "load": load, "rows": rows, "cpu_flags": cpu_flags()}))


if __name__ == "__main__":
    main()
