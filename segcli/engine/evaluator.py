"""Evaluation: one confusion matrix over a split, and the metrics derived from it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from segcli.data.datasets import EvalDataset, eval_collate
from segcli.data.format import DatasetIndex, validate_dataset
from segcli.engine.checkpoint import build_from_weights
from segcli.engine.distributed import DistInfo, all_reduce_sum
from segcli.engine.rundir import RunDir, resolve_weights, run_of_weights
from segcli.engine.runtime import autocast, resolve_amp, select_device
from segcli.errors import DataError
from segcli.io_utils import atomic_write_text, dumps_json, next_free_path, require_folder
from segcli.metrics import Absent, ConfusionMatrix


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    images: torch.Tensor | list[torch.Tensor],
    sizes: list[tuple[int, int]],
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
) -> list[torch.Tensor]:
    """Logits (C, H, W) per image, resized (bilinear) to each requested output size."""
    batches = [images] if isinstance(images, torch.Tensor) else [im.unsqueeze(0) for im in images]
    outs: list[torch.Tensor] = []
    for batch in batches:
        x = batch.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(x)
        if isinstance(logits, dict):
            logits = logits["out"]
        outs.extend(logits.float().unbind(0))
    return [
        F.interpolate(lg[None], size=s, mode="bilinear", align_corners=False)[0] if lg.shape[-2:] != s else lg
        for lg, s in zip(outs, sizes)
    ]


@torch.no_grad()
def confusion_over_loader(
    model: torch.nn.Module,
    loader: DataLoader,
    num_classes: int,
    ignore_index: int,
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
    dist: DistInfo | None = None,
) -> ConfusionMatrix:
    """Accumulate the confusion matrix of ``model`` over ``loader`` (all-reduced under DDP)."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index, device=device)
    for images, masks in loader:
        sizes = [tuple(m.shape[-2:]) for m in masks]
        for logits, mask in zip(predict_logits(model, images, sizes, device, amp, channels_last), masks):
            cm.update(logits.argmax(0), mask.to(device))
    if dist is not None:
        all_reduce_sum(cm.mat, dist)
    model.train(was_training)
    return cm


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, Any]
    weights: Path
    data_root: Path
    split: str
    report: Path
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": str(self.weights),
            "data": str(self.data_root),
            "split": self.split,
            "report": str(self.report),
            "seconds": round(self.seconds, 3),
            **self.metrics,
        }


def _report_path(weights: Path, split: str, out: str | os.PathLike | None) -> Path:
    if out is not None:
        out = Path(out)
        if out.suffix == ".json":
            require_folder(out.parent)
            return next_free_path(out)
        return next_free_path(require_folder(out) / f"{split}.json")
    run = run_of_weights(weights) or RunDir.create("runs", "eval")
    return run.eval_report(split)


def evaluate(
    weights_or_run: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    split: str = "val",
    device: str = "auto",
    batch_size: int | None = None,
    size: tuple[int, ...] | None = None,
    absent: Absent | None = None,
    amp: str = "none",
    num_workers: int = 0,
    out: str | os.PathLike | None = None,
) -> EvalResult:
    """Metrics of a checkpoint over a split; the JSON report is written next to the run."""
    t0 = time.perf_counter()
    weights = resolve_weights(weights_or_run)
    dev = select_device(device, option="--device")
    amp = resolve_amp(amp, dev, option="--amp")
    if out is not None:
        _report_path(weights, split, out)  # a bad --out fails now, not after the evaluation
    model, meta = build_from_weights(weights, dev)
    preset = meta.preset
    root = Path(data_root) if data_root is not None else Path(preset.data.root)
    index = DatasetIndex.scan(root, [split])
    info = validate_dataset(index, splits=[split], sample_masks=preset.data.check_samples)
    if list(info.classes) != list(meta.classes):
        raise DataError(
            f"{root}: dataset classes {list(info.classes)[:6]}... differ from the checkpoint's "
            f"{list(meta.classes)[:6]}...; evaluate on the dataset the model was trained for"
        )
    eval_size = tuple(size) if size is not None else tuple(preset.eval.size)
    ds = EvalDataset(index, split, eval_size)
    loader = DataLoader(
        ds,
        batch_size=batch_size or preset.eval.batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=eval_collate,
        pin_memory=dev.type == "cuda",
    )
    cm = confusion_over_loader(model, loader, meta.num_classes, info.ignore_index, dev, amp)
    absent = absent or preset.eval.absent
    metrics = cm.compute(absent, meta.classes)
    metrics["images"] = len(ds)
    report = _report_path(weights, split, out)
    result = EvalResult(metrics, weights, root, split, report, time.perf_counter() - t0)
    atomic_write_text(report, dumps_json(result.to_dict()) + "\n")
    return result
