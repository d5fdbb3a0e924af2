"""onnxruntime vs PyTorch eager: latency of exported FPN-R18 and LRASPP-MobileNetV3 at 512x1024 on this machine.

    PYTHONPATH=$PWD python bench/export.py [--size 512,1024 --classes 19 --reps 10 --threads 0 --device cpu]

Each model is exported the way `seg export --onnx` does it (dynamic shapes; pre-flight, then the graph), once
with float NCHW input and once with ``--input uint8-nhwc`` (conversion and normalisation inside the graph), and
timed batch 1 against eager PyTorch (fp32, no_grad, the same threads). Prints median milliseconds, the ratio
onnxruntime / eager (below 1 = onnxruntime faster; the issue's target is <= 0.45) and the max |logit
difference| (target <= 1e-4). Untrained weights (pretrained=False): latency does not depend on them.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from segcli.infer.backends import OnnxRunner
from segcli.infer.exporter import ExportWrapper, build_graph
from segcli.models import build_model

MODELS = {"fpn-r18": ("fpn", "resnet18"), "lraspp-mbv3": ("lraspp", "mobilenetv3_large_100")}


def alternate_ms(fns: list[Callable[[], object]], reps: int) -> list[float]:
    """Median milliseconds of each function, timed in turn within every repetition (on a shared machine a
    burst of load then hits all of them alike). Each timed call follows an untimed call of the same
    function: the previous function's threads (onnxruntime's pool and OpenMP's both spin a while after a
    run) must not compete with the one being timed."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, t in zip(fns, times):
            fn()
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [float(np.median(t)) * 1000 for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="512,1024")
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="threads for both (0 = one per core)")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split(","))
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    dev = torch.device("cpu")
    print(f"batch 1, {h}x{w}, {args.classes} classes, {threads} threads, median of {args.reps} after an untimed call")
    print(f"{'model':<14}{'input':<12}{'eager ms':>10}{'ort ms':>10}{'ratio':>8}{'max|dlogit|':>13}")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(0, 3, 1, 2).float().contiguous()
    for key in args.models.split(","):
        name, backbone = MODELS[key]
        torch.manual_seed(0)
        model = build_model(name, args.classes, backbone=backbone, pretrained=False).eval()
        with torch.no_grad():
            ref = model(x).numpy()
        sessions = {}
        for layout in ("float-nchw", "uint8-nhwc"):
            wrapper = ExportWrapper(model, layout).eval()
            built = build_graph(wrapper, "onnx", opset=18, multiple=32, fixed_size=(h, w), dev=dev)
            session = OnnxRunner(built.payload, dev, threads).session
            feed = {session.get_inputs()[0].name: image if layout == "uint8-nhwc" else x.numpy()}
            diff = float(np.abs(session.run(None, feed)[0] - ref).max())
            mode = "dynamic" if built.info.dynamic else f"fixed ({built.reason})"
            sessions[layout] = (session, feed, diff, mode)

        def eager(m: torch.nn.Module = model) -> None:
            with torch.no_grad():
                m(x)

        runs = [lambda s=s, f=f: s.run(None, f) for s, f, _, _ in sessions.values()]
        eager_ms, *ort_ms = alternate_ms([eager, *runs], args.reps)
        for (layout, (_, _, diff, mode)), ms in zip(sessions.items(), ort_ms):
            print(f"{key:<14}{layout:<12}{eager_ms:>10.1f}{ms:>10.1f}{ms / eager_ms:>8.2f}{diff:>13.2e}  {mode}")


if __name__ == "__main__":
    main()
