"""Evaluation: one confusion matrix over a split, and the metrics derived from it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from segcli.core.distributed import DistInfo, all_reduce_sum, cleanup, init_distributed
from segcli.core.rundir import RunDir, resolve_weights, run_of_weights
from segcli.core.runtime import resolve_amp, select_device
from segcli.data.datasets import EvalDataset, eval_collate, resolve_workers, worker_init
from segcli.data.format import DatasetIndex, validate_dataset
from segcli.errors import CheckpointError, DataError, UserError
from segcli.infer.backends import load_inference_model
from segcli.infer.predict_core import Protocol, class_ids, predict_images, setup_prediction
from segcli.io_utils import atomic_write_text, dumps_json, next_free_path, require_folder
from segcli.metrics import Absent, ConfusionMatrix, metrics_from_confusion


def predict_logits(
    model: torch.nn.Module,
    images: torch.Tensor | list[torch.Tensor],
    sizes: list[tuple[int, int]],
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
    protocol: Protocol | None = None,
) -> list[torch.Tensor]:
    """Scores (C, H, W) per image at each requested output size, through the prediction core
    (padded to the model's input multiple; logits, or probabilities under TTA)."""
    proto = protocol or Protocol()
    proto = replace(proto, amp=amp, channels_last=channels_last)
    return predict_images(model, images, sizes, proto, device)


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
    protocol: Protocol | None = None,
    per_image: list[float] | None = None,
) -> ConfusionMatrix:
    """Accumulate the confusion matrix of ``model`` over ``loader`` (all-reduced under DDP).

    ``protocol`` is the test protocol (whole image by default, always padded to the model's multiple);
    ``per_image``, when given, receives each image's own mIoU in loader order.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index, device=device)
    for images, masks in loader:
        sizes = [tuple(m.shape[-2:]) for m in masks]
        for logits, mask in zip(predict_logits(model, images, sizes, device, amp, channels_last, protocol), masks):
            pred, target = class_ids(logits), mask.to(device, non_blocking=True)
            cm.update(pred, target)
            if per_image is not None:
                one = ConfusionMatrix(num_classes, ignore_index, device=device)
                one.update(pred, target)
                per_image.append(metrics_from_confusion(one.mat)["mIoU"])
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
    rank: int = 0  # under torchrun: the process's rank (rank 0 alone writes files and prints)

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


WEIGHT_CHOICES = ("best", "last", "ema")


def loader_workers(value: int | str, processes_per_node: int = 1) -> int:
    """``--workers``: a number >= 0, or ``auto`` (the default): as training's ``data.num_workers = "auto"``,
    this process's share of the usable cores less one for the process itself."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return resolve_workers("auto", processes_per_node)
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 0:
        raise UserError(f"--workers {value}: give a number of worker processes >= 0, or auto")
    return n


def select_weights(weights_or_run: str | os.PathLike, which: str | None = None) -> Path:
    """WEIGHTS_OR_RUN → a weights file; ``which`` (best, last, ema) picks one of a run's weights."""
    if which is None:
        return resolve_weights(weights_or_run)
    if which not in WEIGHT_CHOICES:
        raise UserError(f"--weights {which} is not one of {', '.join(WEIGHT_CHOICES)}")
    p = Path(weights_or_run)
    run = run_of_weights(p) if p.is_file() else (RunDir(p) if RunDir.is_run(p) else None)
    if run is None:
        run = run_of_weights(resolve_weights(p))
    if run is None:
        raise UserError(f"--weights {which}: {p} is not a run directory; pass the run, or drop --weights")
    found = run.weights(which)
    if not found.is_file():
        hint = " (train with train.ema_decay > 0 to get EMA weights)" if which == "ema" else ""
        have = [n for n in WEIGHT_CHOICES if run.weights(n).is_file()]
        raise CheckpointError(f"{found}: no {which} weights in this run{hint}; it has {', '.join(have) or 'none'}")
    return found


def evaluate(
    weights_or_run: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    split: str = "val",
    device: str = "auto",
    batch_size: int | None = None,
    size: tuple[int, ...] | None = None,
    absent: Absent | None = None,
    amp: str | None = None,
    num_workers: int | str = "auto",
    out: str | os.PathLike | None = None,
    *,
    weights: str | None = None,
    slide: bool | None = None,
    tile: tuple[int, ...] | None = None,
    stride: tuple[int, ...] | None = None,
    tta: bool | None = None,
    tta_scales: tuple[float, ...] | None = None,
    worst: int = 0,
) -> EvalResult:
    """Metrics of a checkpoint over a split; the JSON report (with the confusion matrix) is written next to the run.

    ``weights`` picks best/last/ema of a run; ``slide``/``tile``/``stride``/``tta`` override the preset's
    ``[eval]`` protocol; ``worst`` lists the K images with the lowest mIoU (overlays in ``eval/worst/``).
    """
    t0 = time.perf_counter()
    with process_group(device) as ddp:  # under torchrun: each rank evaluates its share of the split
        workers = loader_workers(num_workers, ddp.local_world_size)
        weights_file = select_weights(weights_or_run, weights)
        dev = select_device(device, ddp.local_rank if ddp.enabled else None, option="--device")
        if amp is not None:
            resolve_amp(amp, dev, option="--amp")  # a bad --amp fails before the model loads
        if worst < 0:
            raise UserError(f"--worst {worst}: give a number of images >= 0")
        if out is not None and ddp.is_main:
            _report_path(weights_file, split, out)  # a bad --out fails now, not after the evaluation
        model, meta = load_inference_model(weights_file, dev)
        preset = meta.preset
        proto, eval_size, keep_ratio = setup_prediction(
            model,
            preset,
            dev,
            amp=amp,
            size=size,
            slide=slide,
            tile=tile,
            stride=stride,
            tta=tta,
            tta_scales=tta_scales,
        )
        root = Path(data_root) if data_root is not None else Path(preset.data.root)
        index = DatasetIndex.scan(root, [split])
        info = validate_dataset(index, splits=[split], sample_masks=preset.data.check_samples)
        if list(info.classes) != list(meta.classes):
            raise DataError(
                f"{root}: dataset classes {list(info.classes)[:6]}... differ from the checkpoint's "
                f"{list(meta.classes)[:6]}...; evaluate on the dataset the model was trained for"
            )
        ds = EvalDataset(index, split, eval_size, keep_ratio)
        shard = list(range(ddp.rank, len(ds), ddp.world_size))  # rank r: images r, r + world, r + 2 world...
        loader = DataLoader(
            Subset(ds, shard) if ddp.enabled else ds,
            batch_size=batch_size or preset.eval.batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=eval_collate,
            pin_memory=dev.type == "cuda",
            worker_init_fn=worker_init if workers else None,
        )
        per_image: list[float] | None = [] if worst else None
        cm = confusion_over_loader(
            model,
            loader,
            meta.num_classes,
            info.ignore_index,
            dev,
            proto.amp,
            proto.channels_last,
            dist=ddp,
            protocol=proto,
            per_image=per_image,
        )
        if per_image is not None and ddp.enabled:  # every rank's per-image mIoU, back in dataset order
            per_image = _gather_in_order(per_image, shard, len(ds))
        absent = absent or preset.eval.absent
        metrics = cm.compute(absent, meta.classes)
        metrics["images"] = len(ds)
        metrics["workers"] = workers
        metrics["protocol"] = _protocol_summary(proto, eval_size, keep_ratio)
        metrics["confusion_matrix"] = {
            "classes": list(meta.classes),
            "rows": "ground truth",
            "columns": "prediction",
            "matrix": cm.mat.cpu().tolist(),
        }
        if ddp.enabled:
            metrics["processes"] = ddp.world_size
        report = _report_path(weights_file, split, out) if ddp.is_main else Path(os.devnull)
        if not ddp.is_main:  # rank 0 alone writes the report, the picture and the worst overlays
            return EvalResult(metrics, weights_file, root, split, report, time.perf_counter() - t0, rank=ddp.rank)
        metrics["confusion_png"] = str(write_confusion_png(cm.mat.cpu().numpy(), meta.classes, report))
        if per_image is not None:
            metrics["worst"] = _write_worst(
                model, ds, per_image, worst, proto, dev, meta.palette, report.parent / "worst"
            )
        result = EvalResult(metrics, weights_file, root, split, report, time.perf_counter() - t0)
        atomic_write_text(report, dumps_json(result.to_dict()) + "\n")
        return result


@contextmanager
def process_group(device: str) -> Iterator[DistInfo]:
    """The torchrun process group for the duration of an evaluation (joined, then left, unless the caller
    had already joined one, as the trainer has); a plain single-process DistInfo otherwise."""
    joined = torch.distributed.is_available() and torch.distributed.is_initialized()
    ddp = init_distributed(device)
    try:
        yield ddp
    finally:
        if not joined:
            cleanup(ddp)


def _gather_in_order(values: list[float], shard: list[int], n: int) -> list[float]:
    """Each rank's ``values`` (one per index of its ``shard``) gathered into one list over the ``n`` images."""
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, (shard, values))
    merged = [float("nan")] * n
    for idx, vals in parts:
        for i, v in zip(idx, vals):
            merged[i] = v
    return merged


def write_confusion_png(confusion: np.ndarray, classes: list[str] | tuple[str, ...], report: Path) -> Path:
    """The row-normalised confusion matrix drawn next to the report: ``<report stem>_confusion.png``
    (``eval/val.json`` → ``eval/val_confusion.png``), with the same drawing as training's plots."""
    from segcli.viz import draw_cv, row_normalise, write_png

    path = next_free_path(report.with_name(f"{report.stem}_confusion.png"))
    return write_png(path, draw_cv.confusion(row_normalise(confusion), list(classes)))


def _protocol_summary(proto: Protocol, size: tuple[int, ...], keep_ratio: tuple[int, ...]) -> dict[str, Any]:
    """The test protocol as printed in the report (so a figure says how it was obtained)."""
    resize = {"size": list(size)} if size else {"keep_ratio": list(keep_ratio)} if keep_ratio else "native"
    return {
        "resize": resize,
        "mode": f"slide tile={list(proto.tile)} stride={list(proto.stride)}" if proto.slide else "whole",
        "tta": {"scales": list(proto.tta_scales or (1.0,)), "flip": proto.tta_flip} if proto.tta else None,
        "amp": proto.amp,
    }


def _write_worst(
    model: torch.nn.Module,
    ds: EvalDataset,
    per_image: list[float],
    k: int,
    proto: Protocol,
    device: torch.device,
    palette: list,
    folder: Path,
) -> list[dict[str, Any]]:
    """The ``k`` images with the lowest mIoU (NaN: nothing labelled, left out), with overlays in ``folder``."""
    from segcli.data.io import read_image, write_image
    from segcli.infer.predictor import overlay

    ranked = sorted((v, i) for i, v in enumerate(per_image) if v == v)[:k]
    rows = []
    colours = np.array(palette, dtype=np.uint8)
    for v, i in ranked:
        image_path = ds.samples[i][0]
        image, mask = ds[i]
        logits = predict_images(model, image[None], [tuple(mask.shape)], proto, device)[0]
        pred = class_ids(logits).cpu().numpy()
        dest = next_free_path(require_folder(folder) / f"{image_path.stem}.jpg")
        write_image(dest, overlay(read_image(image_path), pred, colours))
        rows.append({"image": str(image_path), "mIoU": round(v, 4), "overlay": str(dest)})
    return rows
