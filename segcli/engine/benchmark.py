"""``seg benchmark``: throughput of one model on the machine at hand, honestly labelled.

Inference: images/s and latency percentiles of the model alone (a float batch already on the device) and
end to end (uint8 HWC images in host memory → device → model → argmax → uint8 masks back on the host).
Training: images/s of one full step (forward, cross entropy, backward, AdamW) and its peak memory.
Every figure comes with what decides it: device name, threads, resolution, precision, memory format,
batch and backend.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segcli.engine.runtime import autocast, resolve_amp, select_device

__all__ = ["benchmark"]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build(target: str, num_classes: int, device: torch.device) -> tuple[torch.nn.Module, str]:
    """A weights file (its own classes) or a preset (``num_classes`` outputs, random weights)."""
    if target.endswith((".safetensors", ".pt", ".pth")) or Path(target).is_dir():
        from segcli.engine.checkpoint import build_from_weights
        from segcli.engine.evaluator import resolve_weights

        model, meta = build_from_weights(resolve_weights(target), device)
        return model, f"{meta.preset.model.name}/{meta.preset.model.backbone}"
    from dataclasses import replace

    from segcli.config.load import load_preset
    from segcli.engine.factory import model_from_preset

    p = load_preset(target, []).preset
    model = model_from_preset(replace(p.model, pretrained=False, pretrained_file=""), num_classes)
    return model.to(device), f"{p.model.name}/{p.model.backbone}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Any, device: torch.device, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def _summary(seconds: list[float], batch: int) -> dict[str, float]:
    ms = sorted(s * 1e3 for s in seconds)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {
        "images_per_s": round(batch / statistics.median(seconds), 2),
        "latency_ms_p50": round(statistics.median(ms), 2),
        "latency_ms_p90": round(q[89], 2),
        "latency_ms_p99": round(q[98], 2),
    }


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak RSS (KiB on Linux)


def benchmark(
    target: str = "quickstart",
    size: tuple[int, int] = (512, 512),
    batch: int = 1,
    device: str = "auto",
    amp: str = "auto",
    channels_last: bool = True,
    compile: bool = False,
    num_classes: int = 19,
    iters: int = 10,
    warmup: int = 2,
    train: bool = True,
) -> dict[str, Any]:
    """Inference (model alone and end to end) and training-step throughput of ``target``; a dict of figures."""
    dev = select_device(device, option="--device")
    precision = resolve_amp(amp, dev, option="--amp")
    model, arch = _build(target, num_classes, dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = torch.compile(model) if compile else model
    h, w = size
    x = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, device=dev).contiguous(memory_format=fmt)
    host = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(batch)]
    pin = dev.type == "cuda"

    def logits(images: torch.Tensor) -> torch.Tensor:
        out = net(images)
        return out["out"] if isinstance(out, dict) else out

    @torch.inference_mode()
    def forward() -> None:
        with autocast(dev, precision):
            logits(x)

    @torch.inference_mode()
    def end_to_end() -> None:
        images = torch.from_numpy(np.stack(host)).permute(0, 3, 1, 2)
        images = (images.pin_memory() if pin else images).to(dev, non_blocking=True).contiguous(memory_format=fmt)
        with autocast(dev, precision):
            masks = logits(images).argmax(1).to(torch.uint8)
        masks.cpu().numpy()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    model.eval()
    result: dict[str, Any] = {
        "model": arch,
        "target": target,
        "device": str(dev),
        "device_name": device_name(dev),
        "threads": torch.get_num_threads(),
        "resolution": f"{h}x{w}",
        "precision": precision,
        "memory_format": "channels_last" if channels_last else "contiguous",
        "batch": batch,
        "backend": "compile" if compile else "eager",
        "inference": _summary(_time(forward, dev, warmup, iters), batch),
        "inference_end_to_end": _summary(_time(end_to_end, dev, warmup, iters), batch),
    }
    if train:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        target_masks = torch.randint(0, num_classes, (max(batch, 2), h, w), device=dev)
        xt = torch.randint(0, 256, (max(batch, 2), 3, h, w), dtype=torch.uint8, device=dev)
        xt = xt.contiguous(memory_format=fmt)  # BatchNorm needs 2 images in training

        def step() -> None:
            with autocast(dev, precision):
                loss = F.cross_entropy(logits(xt).float(), target_masks)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        seconds = _time(step, dev, warmup, max(iters // 2, 3))
        result["train_step"] = {
            "batch": xt.shape[0],
            "images_per_s": round(xt.shape[0] / statistics.median(seconds), 2),
            "peak_memory_mb": round(_peak_memory_mb(dev), 1),
            "peak_memory_of": "CUDA allocator" if dev.type == "cuda" else "process RSS",
        }
    result["cpu_count"] = os.cpu_count()
    return result
