"""``seg benchmark``: throughput of one model on the machine at hand, honestly labelled.

Inference: images/s and latency percentiles of the model alone (a float batch already on the device) and
end to end (uint8 HWC images in host memory → device → model → argmax → uint8 masks back on the host).
Training: images/s of one full step (forward, cross entropy, backward, AdamW) and its peak memory.
Every figure comes with what decides it: device name, threads, resolution, precision, memory format,
batch and backend.

The target may be an exported model (``.onnx`` through onnxruntime, ``.xml`` through OpenVINO, ``.torchscript``);
``onnx=True`` exports a checkpoint first (with its parity gate) and measures both backends, and ``data`` adds each
backend's mIoU on a dataset, so a user choosing a backend sees what it costs in accuracy as well as what it gains
in speed. ``compare`` times every backend of this machine in one table (:data:`COMPARED`: eager fp32 and bf16,
torch.compile, onnxruntime fp32 and int8, OpenVINO fp32 and int8), each as a ratio of eager fp32's latency, a
backend whose package is missing skipped with the reason.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segcli.core.runtime import autocast, resolve_amp, select_device
from segcli.errors import UserError, arg
from segcli.extras import install_hint, package_available
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices

__all__ = ["BenchmarkOptions", "benchmark"]


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


EXPORTED = {".onnx": "onnxruntime", ".xml": "openvino", ".torchscript": "torchscript", ".ts": "torchscript"}
# the rows of ``compare``, in the table's order (the first is the ratio base); the exported ones with the format
# they are exported to, their int8 options and the packages they need (package, extra)
COMPARED = ("eager fp32", "eager bf16", "torch.compile", "onnxruntime", "onnxruntime int8", "openvino", "openvino int8")
_ALIASES = {"compile": "torch.compile", "onnx": "onnxruntime", "onnx-int8": "onnxruntime int8"}
_EXPORTS = {
    "onnxruntime": ("onnx", False, (("onnx", "export"), ("onnxruntime", "export"))),
    "onnxruntime int8": ("onnx", True, (("onnx", "export"), ("onnxruntime", "export"))),
    "openvino": ("openvino", False, (("onnx", "export"), ("onnxruntime", "export"), ("openvino", "openvino"))),
    "openvino int8": (
        "openvino",
        True,
        (("onnx", "export"), ("onnxruntime", "export"), ("openvino", "openvino"), ("nncf", "openvino")),
    ),
}


def _backend_of(target: str) -> str:
    return EXPORTED.get(Path(target).suffix.lower(), "eager")


def _is_weights(target: str) -> bool:
    """Trained weights (a checkpoint, a run directory or an exported model), not a preset."""
    return _backend_of(target) != "eager" or target.endswith((".safetensors", ".pt", ".pth")) or Path(target).is_dir()


def _build(target: str, num_classes: int, device: torch.device) -> tuple[torch.nn.Module, str, int]:
    """The model, its name and its number of classes: a weights file or an exported model (their own classes),
    or a preset (``num_classes`` outputs, random weights)."""
    if _backend_of(target) != "eager":
        from segcli.infer.backends import load_inference_model

        model, meta = load_inference_model(target, device)
        return model, f"{meta.preset.model.name}/{meta.preset.model.backbone}", meta.num_classes
    if _is_weights(target):
        from segcli.core.checkpoint import build_from_weights
        from segcli.infer.evaluator import resolve_weights

        model, meta = build_from_weights(resolve_weights(target), device)
        return model, f"{meta.preset.model.name}/{meta.preset.model.backbone}", meta.num_classes
    from segcli.config.load import load_preset
    from segcli.core.factory import model_from_preset

    p = load_preset(target, []).preset
    model = model_from_preset(replace(p.model, pretrained=False, pretrained_file=""), num_classes)
    return model.to(device), f"{p.model.name}/{p.model.backbone}", num_classes


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


def _images(n: int, proto: PredictionProtocol, dev: torch.device) -> torch.Tensor:
    """``n`` random uint8 RGB images (N, 3, H, W) at the protocol's size, on ``dev``, in its memory format."""
    h, w = proto.size
    x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, device=dev)
    return x.contiguous(memory_format=_memory_format(proto))


def _memory_format(proto: PredictionProtocol) -> torch.memory_format:
    return torch.channels_last if proto.channels_last else torch.contiguous_format


def _inference(
    net: torch.nn.Module, dev: torch.device, proto: PredictionProtocol, warmup: int, iters: int
) -> dict[str, Any]:
    """Model-only and end-to-end (uint8 HWC in host memory → uint8 masks back) inference figures."""
    (h, w), batch, fmt = proto.size, proto.batch_size, _memory_format(proto)
    x = _images(batch, proto, dev)
    host = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(batch)]
    pin = dev.type == "cuda"

    @torch.inference_mode()
    def forward() -> None:
        with autocast(dev, proto.amp):
            _logits(net, x)

    @torch.inference_mode()
    def end_to_end() -> None:
        images = torch.from_numpy(np.stack(host)).permute(0, 3, 1, 2)
        images = (images.pin_memory() if pin else images).to(dev, non_blocking=True).contiguous(memory_format=fmt)
        with autocast(dev, proto.amp):
            masks = _logits(net, images).argmax(1).to(torch.uint8)
        masks.cpu().numpy()

    return {
        "inference": _summary(_time(forward, dev, warmup, iters), batch),
        "inference_end_to_end": _summary(_time(end_to_end, dev, warmup, iters), batch),
    }


def _logits(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    out = net(images)
    return out["out"] if isinstance(out, dict) else out


def _miou(target: str, data: str, split: str, device: str, amp: str) -> dict[str, Any]:
    """mIoU and pixel accuracy of ``target`` on a dataset split, through seg eval's own path."""
    from segcli.infer.evaluator import EvalOptions, evaluate

    choices = ProtocolChoices(amp=None if _backend_of(target) != "eager" else amp)
    with tempfile.TemporaryDirectory(prefix="segcli-bench-") as tmp:  # the eval report is not kept
        r = evaluate(target, data, split, device, choices, EvalOptions(out=tmp))
    return {"split": split, "mIoU": r.metrics["mIoU"], "pixel_acc": r.metrics.get("pixel_acc")}


@dataclass(frozen=True)
class BenchmarkOptions:
    """What :func:`benchmark` measures besides the protocol.

    ``compile``: torch.compile the model; ``num_classes``: the outputs of a preset's model (weights have their
    own); ``iters`` timed repetitions (the median is reported) after ``warmup`` untimed ones; ``train``: also
    time a training step; ``data``: a dataset, on whose ``split`` each backend's mIoU is measured too (trained
    weights only); ``onnx``: export the checkpoint too (parity gate included) and time onnxruntime; ``openvino``:
    the same through OpenVINO; ``int8``: also the int8 graph of each (`seg export --int8`, the val-mIoU gate
    included; implies ``onnx`` unless ``openvino``); ``compare``: the rows of :data:`COMPARED` to time beside eager
    fp32 (``("all",)``: every one), which is then the first row and the ratio base whatever the protocol's ``amp``.
    """

    compile: bool = False
    num_classes: int = 19
    iters: int = 10
    warmup: int = 2
    train: bool = True
    data: str | None = None
    split: str = "val"
    onnx: bool = False
    int8: bool = False
    openvino: bool = False
    compare: tuple[str, ...] = ()


def compared_rows(opts: BenchmarkOptions) -> list[str]:
    """The rows timed beside the first, in :data:`COMPARED`'s order: ``compare`` plus what ``onnx``, ``openvino``
    and ``int8`` ask for."""
    names = [_ALIASES.get(c, c.replace("-", " ")) for c in opts.compare]  # onnxruntime-int8, compile: as typed
    unknown = [c for c in names if c not in (*COMPARED, "all")]
    if unknown:
        raise UserError(f"{arg('compare')} {unknown[0]!r}: choose from all, {', '.join(COMPARED)}")
    wanted = set(COMPARED[1:]) if "all" in names else set(names) - {COMPARED[0]}
    if opts.onnx or (opts.int8 and not opts.openvino):
        wanted.add("onnxruntime")
    if opts.openvino:
        wanted.add("openvino")
    if opts.int8:
        wanted |= {f"{b} int8" for b in ("onnxruntime", "openvino") if b in wanted}
    return [c for c in COMPARED if c in wanted]


BENCH_SIZE = (512, 512)  # the input size timed when the protocol does not give one


def benchmark(
    target: str = "quickstart",
    protocol: ProtocolChoices | None = None,
    device: str = "auto",
    options: BenchmarkOptions | None = None,
) -> dict[str, Any]:
    """Inference (model alone and end to end) and training-step throughput of ``target``; a dict of figures.

    ``protocol``: the input ``size`` (default 512x512), ``batch_size`` (default 1), ``amp`` (default auto) and
    ``channels_last`` (default on) timed. ``options.data``: also the mIoU on that dataset's split (weights or
    exported models only); ``options.onnx``: export the checkpoint too and add onnxruntime's figures (and mIoU)
    under ``"backends"``, the parity report with them.
    """
    choices, opts = protocol or ProtocolChoices(), options or BenchmarkOptions()
    dev = select_device(device, option=arg("device"))
    backend = _backend_of(target)
    exported = backend != "eager"
    rows = compared_rows(opts)
    amp = "none" if opts.compare else choices.amp or "auto"  # compared: the first row is eager fp32
    precision = "graph" if exported else resolve_amp(amp, dev, option=arg("amp"))
    if (opts.data or any(r in _EXPORTS for r in rows)) and not _is_weights(target):
        raise UserError(
            f"{target}: {arg('data')}, {arg('onnx')}, {arg('openvino')} and {arg('int8')} need trained weights (a "
            ".safetensors file or a run directory)"
        )
    if rows and exported:
        raise UserError(
            f"{target}: {arg('onnx')}, {arg('openvino')} and {arg('compare')} start from a checkpoint; this is "
            "already an exported model"
        )
    proto = PredictionProtocol(
        size=choices.size or BENCH_SIZE,
        amp="none" if exported else precision,
        channels_last=choices.channels_last is not False and not exported,
        batch_size=choices.batch_size or 1,
    )
    model, arch, num_classes = _build(target, opts.num_classes, dev)
    model = model.to(memory_format=_memory_format(proto))
    compiled = opts.compile and not exported
    net = torch.compile(model) if compiled else model

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    model.eval()
    result: dict[str, Any] = {
        "model": arch,
        "target": target,
        "device": str(dev),
        "device_name": device_name(dev),
        "threads": torch.get_num_threads(),
        "resolution": f"{proto.size[0]}x{proto.size[1]}",
        "precision": precision,
        "memory_format": "channels_last" if proto.channels_last else "contiguous",
        "batch": proto.batch_size,
        "backend": "compile" if compiled else "eager fp32" if opts.compare else backend,
        **_inference(net, dev, proto, opts.warmup, opts.iters),
    }
    if opts.data:
        result["accuracy"] = _miou(target, opts.data, opts.split, device, amp)
    if opts.train and not exported:
        result["train_step"] = _train_step(model, net, dev, proto, num_classes, opts)
    elif opts.train:
        result["train_step_skipped"] = "an exported model has no training step"
    if rows:
        run = _Compared(target, device, dev, proto, opts)
        result["backends"], result["skipped"] = [], []
        for name in rows:
            row, why = run.eager(name, model) if name not in _EXPORTS else run.exported(name)
            if row is None:
                result["skipped"].append({"backend": name, "reason": why})
            else:
                result["backends"].append(row)
        base = result["inference"]["latency_ms_p50"]
        for row in result["backends"]:
            row["latency_ratio_to_first"] = round(row["inference"]["latency_ms_p50"] / base, 3) if base else None
    result["cpu_count"] = os.cpu_count()
    result["cpu_flags"] = cpu_flags()
    return result


def _train_step(
    model: torch.nn.Module,
    net: torch.nn.Module,
    dev: torch.device,
    proto: PredictionProtocol,
    num_classes: int,
    opts: BenchmarkOptions,
) -> dict[str, Any]:
    """images/s of one forward/backward/AdamW step and the peak memory."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n = max(proto.batch_size, 2)  # BatchNorm needs 2 images in training
    target_masks = torch.randint(0, num_classes, (n, *proto.size), device=dev)
    xt = _images(n, proto, dev)

    def step() -> None:
        with autocast(dev, proto.amp):
            loss = F.cross_entropy(_logits(net, xt).float(), target_masks)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = _time(step, dev, opts.warmup, max(opts.iters // 2, 3))
    return {
        "batch": xt.shape[0],
        "images_per_s": round(xt.shape[0] / statistics.median(seconds), 2),
        "peak_memory_mb": round(_peak_memory_mb(dev), 1),
        "peak_memory_of": "CUDA allocator" if dev.type == "cuda" else "process RSS",
    }


def cpu_flags() -> list[str]:
    """The CPU's instruction sets that decide int8 and bf16 speed (AVX-512 VNNI, AMX, bf16), as /proc/cpuinfo
    names them; empty where it cannot be read."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def _missing(name: str) -> str:
    """Why row ``name`` cannot run here ("" when it can): the first package it needs that is not installed."""
    for package, extra in _EXPORTS[name][2]:
        if not package_available(package):
            return f"{package} is not installed ({install_hint(extra)})"
    return ""


@dataclass
class _Compared:
    """The rows of ``compare`` beside the first: the eager variants on the same model, and each exported backend
    from a temporary export of the checkpoint (its parity gate and, for int8, its val-mIoU gate included)."""

    target: str
    device: str
    dev: torch.device
    proto: PredictionProtocol
    opts: BenchmarkOptions

    def eager(self, name: str, model: torch.nn.Module) -> tuple[dict[str, Any] | None, str]:
        """``eager bf16`` (autocast) or ``torch.compile`` (fp32) of ``model``; None and why when it cannot run."""
        amp = "bf16" if name == "eager bf16" else "none"
        try:
            proto = replace(self.proto, amp=resolve_amp(amp, self.dev, option=arg("amp")))
            net = torch.compile(model) if name == "torch.compile" else model
            row: dict[str, Any] = {
                "backend": name,
                **_inference(net, self.dev, proto, self.opts.warmup, self.opts.iters),
            }
        except UserError as e:
            return None, str(e)
        except Exception as e:  # noqa: BLE001 - torch.compile's failures (no compiler, an unsupported op) skip its row
            return None, f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
        if self.opts.data and name == "eager bf16":  # torch.compile computes what eager fp32 does: its mIoU
            row["accuracy"] = _miou(self.target, self.opts.data, self.opts.split, self.device, amp)
        return row, ""

    def exported(self, name: str) -> tuple[dict[str, Any] | None, str]:
        """Export the checkpoint for row ``name`` into a temporary folder, then the same figures through it."""
        from segcli.infer.exporter import ExportOptions, export_model
        from segcli.infer.quantize import Int8Options

        why = _missing(name)
        if why:
            return None, why
        fmt, int8, _ = _EXPORTS[name]
        q = Int8Options() if int8 else None
        with tempfile.TemporaryDirectory(prefix="segcli-bench-") as tmp:
            out = Path(tmp) / ("model" + (".int8" if int8 else "") + (".xml" if fmt == "openvino" else ".onnx"))
            exp = export_model(self.target, fmt, out, self.device, ExportOptions(data_root=self.opts.data, int8=q))
            model, _, _ = _build(str(exp.path), 0, self.dev)
            graph = replace(self.proto, amp="none", channels_last=False)
            parity = {k: exp.parity.get(k) for k in ("passed", "agreement", "max_abs_diff", "bound")}
            if int8:  # the int8 gate: against the fp32 graph, and its val mIoU drop
                g = exp.parity["int8"]
                parity.update(agreement=g["vs_fp32"]["agreement"], max_abs_diff=g["vs_fp32"]["max_abs_diff"])
                parity.update(bound=None, miou_drop=g["drop"], calibration=g["method"])
            row: dict[str, Any] = {
                "backend": name,
                "shapes": "dynamic" if exp.info.dynamic else f"fixed {exp.info.fixed_size}",
                "parity": parity,
                **_inference(model.eval(), self.dev, graph, self.opts.warmup, self.opts.iters),
            }
            del model  # its session's threads stop before the next one is timed
            if self.opts.data:
                row["accuracy"] = _miou(str(exp.path), self.opts.data, self.opts.split, self.device, "none")
        return row, ""
