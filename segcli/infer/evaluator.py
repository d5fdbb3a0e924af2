"""Evaluation: one confusion matrix over a split, and the metrics derived from it."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from segcli.core.checkpoint import CheckpointMeta
from segcli.core.distributed import DistInfo, all_reduce_sum, cleanup, init_distributed
from segcli.core.rundir import RunDir, resolve_weights, run_of_weights
from segcli.data.datasets import EvalDataset, eval_collate, resolve_workers, worker_init
from segcli.data.format import DATASET_FILE, DataFingerprint, DatasetIndex, list_splits, validate_dataset
from segcli.errors import CheckpointError, DataError, UserError, arg
from segcli.infer.predict_core import class_ids, open_for_prediction, predict_images, prediction_device
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices
from segcli.io_utils import atomic_write_text, dumps_json, next_free_path, require_folder
from segcli.metrics import Absent, BoundaryF, ConfusionMatrix, ReliabilityBins, metrics_from_confusion


def predict_logits(
    model: torch.nn.Module,
    images: torch.Tensor | list[torch.Tensor],
    sizes: list[tuple[int, int]],
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
    protocol: PredictionProtocol | None = None,
) -> list[torch.Tensor]:
    """Scores (C, H, W) per image at each requested output size, through the prediction core
    (padded to the model's input multiple; logits, or probabilities under TTA)."""
    proto = protocol or PredictionProtocol()
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
) -> ConfusionMatrix:
    """Training's validation: the confusion matrix of ``model`` over ``loader``, whole images at the run's
    precision and layout (all-reduced under DDP)."""
    cm = ConfusionMatrix(num_classes, ignore_index, device=device)
    return confusion_with(model, loader, cm, PredictionProtocol(amp=amp, channels_last=channels_last), dist)


@torch.no_grad()
def confusion_with(
    model: torch.nn.Module,
    loader: Iterable[Any],
    cm: ConfusionMatrix,
    proto: PredictionProtocol,
    dist: DistInfo | None = None,
    per_image: list[float] | None = None,
    watch: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
) -> ConfusionMatrix:
    """Accumulate the predictions of ``model`` over ``loader`` by the test protocol ``proto`` into ``cm`` (on
    its device; all-reduced under DDP); ``per_image``, when given, receives each image's own mIoU in loader
    order, and ``watch`` each image's (logits (C, H, W), mask (H, W) on the device), e.g. for a loss."""
    was_training = model.training
    model.eval()
    device = cm.mat.device
    for images, masks in loader:
        sizes = [tuple(m.shape[-2:]) for m in masks]
        for logits, mask in zip(predict_images(model, images, sizes, proto, device), masks):
            pred, target = class_ids(logits), mask.to(device, non_blocking=True)
            cm.update(pred, target)
            if watch is not None:
                watch(logits, target)
            if per_image is not None:
                one = ConfusionMatrix(cm.num_classes, cm.ignore_index, device=device)
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
            require_folder(out.parent, arg("out"))
            return next_free_path(out)
        return next_free_path(require_folder(out, arg("out")) / f"{split}.json")
    run = run_of_weights(weights) or RunDir.create("runs", "eval")
    return run.eval_report(split)


WEIGHT_CHOICES = ("best", "last", "ema")


@dataclass(frozen=True)
class EvalOptions:
    """What an evaluation does besides the protocol (:class:`ProtocolChoices`).

    ``weights`` picks best, last or ema of a run (default: best, else last); ``absent`` is the IoU of a class
    absent from both ground truth and prediction (default: the preset's ``eval.absent``); ``workers`` are the
    data-loading processes (``auto``: :func:`loader_workers`); ``out`` is where the JSON report goes (a
    ``.json`` file or a folder; default: inside the run); ``worst`` lists the K images with the lowest mIoU,
    with overlays in ``worst/`` beside the report; ``boundary_tolerance`` is the pixel tolerance of the boundary
    F-score (:class:`segcli.metrics.BoundaryF`) the report gives next to the mIoU.
    """

    weights: str | None = None
    absent: Absent | None = None
    workers: int | str = "auto"
    out: str | os.PathLike | None = None
    worst: int = 0
    boundary_tolerance: int = 2


def loader_workers(value: int | str, processes_per_node: int = 1) -> int:
    """``workers``: a number >= 0, or ``auto`` (the default): as training's ``data.num_workers = "auto"``,
    this process's share of the usable cores less one for the process itself."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return resolve_workers("auto", processes_per_node)
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 0:
        raise UserError(f"{arg('workers')} {value}: give a number of worker processes >= 0, or auto")
    return n


def select_weights(weights_or_run: str | os.PathLike, which: str | None = None) -> Path:
    """WEIGHTS_OR_RUN → a weights file; ``which`` (best, last, ema) picks one of a run's weights."""
    if which is None:
        return resolve_weights(weights_or_run)
    if which not in WEIGHT_CHOICES:
        raise UserError(f"{arg('weights')} {which} is not one of {', '.join(WEIGHT_CHOICES)}")
    p = Path(weights_or_run)
    run = run_of_weights(p) if p.is_file() else (RunDir(p) if RunDir.is_run(p) else None)
    if run is None:
        run = run_of_weights(resolve_weights(p))
    if run is None:
        raise UserError(f"{arg('weights')} {which}: {p} is not a run directory; pass the run, or drop {arg('weights')}")
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
    protocol: ProtocolChoices | None = None,
    options: EvalOptions | None = None,
) -> EvalResult:
    """Metrics of a checkpoint over a split; the JSON report (with the confusion matrix) is written next to the run.

    ``protocol`` overrides the preset's test protocol (``[eval]``, precision, batch); ``options`` picks the
    weights, the absent-class rule, the loader workers, the report's place and the worst images to list.
    Under torchrun each process evaluates its share of the split; rank 0 alone writes files.
    """
    t0 = time.perf_counter()
    choices, opts = protocol or ProtocolChoices(), options or EvalOptions()
    with process_group(device) as ddp:
        workers, weights_file, dev = _checked_inputs(weights_or_run, split, device, choices, opts, ddp)
        model, meta, proto = open_for_prediction(weights_file, dev, choices)
        root, ds = _split_dataset(eval_index(meta, data_root, split), split, meta, proto)
        shard = list(range(ddp.rank, len(ds), ddp.world_size))  # rank r: images r, r + world, r + 2 world...
        loader = _loader(Subset(ds, shard) if ddp.enabled else ds, proto, workers, dev)
        per_image: list[float] | None = [] if opts.worst else None
        cm = ConfusionMatrix(meta.num_classes, ds.info.ignore_index, device=dev)
        ece = ReliabilityBins(meta.num_classes, ds.info.ignore_index, device=dev)
        bf = BoundaryF(meta.num_classes, ds.info.ignore_index, opts.boundary_tolerance, device=dev)
        confusion_with(model, loader, cm, proto, ddp, per_image, _watch(ece, bf, proto.tta))
        if per_image is not None and ddp.enabled:  # every rank's per-image mIoU, back in dataset order
            per_image = _gather_in_order(per_image, shard, len(ds))
        metrics = cm.compute(opts.absent or meta.preset.eval.absent, meta.classes)
        metrics.update(images=len(ds), workers=workers, protocol=_protocol_summary(proto))
        metrics["calibration"] = _calibration(ece, ddp, meta.classes)
        metrics.update(_boundary(bf, ddp, meta.classes))
        metrics["confusion_matrix"] = _matrix_table(cm, meta.classes)
        if ddp.enabled:
            metrics["processes"] = ddp.world_size
        if not ddp.is_main:  # rank 0 alone writes the report, the picture and the worst overlays
            return EvalResult(metrics, weights_file, root, split, Path(os.devnull), time.perf_counter() - t0, ddp.rank)
        report = _report_path(weights_file, split, opts.out)
        metrics["confusion_png"] = str(write_confusion_png(cm.mat.cpu().numpy(), meta.classes, report))
        metrics["reliability_png"] = str(write_reliability_png(metrics["calibration"], report))
        if per_image is not None:
            metrics["worst"] = _write_worst(
                model, ds, per_image, opts.worst, proto, dev, meta.palette, report.parent / "worst"
            )
        result = EvalResult(metrics, weights_file, root, split, report, time.perf_counter() - t0)
        atomic_write_text(report, dumps_json(result.to_dict()) + "\n")
        return result


def _watch(ece: ReliabilityBins, bf: BoundaryF, probabilities: bool) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """What each image's (scores, target) goes into besides the confusion matrix: the calibration bins and the
    boundary F-score."""

    def watch(scores: torch.Tensor, target: torch.Tensor) -> None:
        ece.update(scores, target, probabilities)
        bf.update(class_ids(scores), target)

    return watch


def _boundary(bf: BoundaryF, ddp: DistInfo, classes: tuple[str, ...]) -> dict[str, Any]:
    """The boundary F-score over the split (every process's images under DDP): ``boundary_f`` (the mean over the
    classes with an outline) and ``boundary`` (the tolerance, per-class F, precision and recall)."""
    if ddp.enabled:
        all_reduce_sum(bf.stats, ddp)
    result = bf.compute(classes)
    return {"boundary_f": result.pop("boundary_f"), "boundary": result}


def _calibration(ece: ReliabilityBins, ddp: DistInfo, classes: tuple[str, ...]) -> dict[str, Any]:
    """The expected calibration error over the split (every process's pixels under DDP), of the probabilities as
    served: with the checkpoint's temperature when `seg calibrate` stored one."""
    if ddp.enabled:
        all_reduce_sum(ece.stats, ddp)
    return ece.summary(classes)


def _checked_inputs(
    weights_or_run: str | os.PathLike,
    split: str,
    device: str,
    choices: ProtocolChoices,
    opts: EvalOptions,
    ddp: DistInfo,
) -> tuple[int, Path, torch.device]:
    """(loader workers, weights file, device), every option checked before the model loads."""
    workers = loader_workers(opts.workers, ddp.local_world_size)
    weights_file = select_weights(weights_or_run, opts.weights)
    dev = prediction_device(device, choices, ddp.local_rank if ddp.enabled else None)
    if opts.worst < 0:
        raise UserError(f"{arg('worst')} {opts.worst}: give a number of images >= 0")
    if opts.boundary_tolerance < 0:
        raise UserError(f"{arg('boundary_tolerance')} {opts.boundary_tolerance}: give a number of pixels >= 0")
    if opts.out is not None and ddp.is_main:
        _report_path(weights_file, split, opts.out)  # a bad out fails now, not after the evaluation
    return workers, weights_file, dev


def _scan_for(root: Path, split: str, fingerprint: DataFingerprint) -> DatasetIndex:
    """``root`` scanned for ``split`` and the fingerprint's splits that it has (to compare their sizes)."""
    present = set(list_splits(root))
    return DatasetIndex.scan(root, [split, *(s for s in fingerprint.splits if s != split and s in present)])


def eval_index(meta: CheckpointMeta, data_root: str | os.PathLike | None, split: str) -> DatasetIndex:
    """The dataset a checkpoint is scored on: ``data_root`` when given, whatever it holds; else the data it
    trained on. That is its preset's ``data.root`` when the folder it names from here holds the data of the
    checkpoint's fingerprint (same classes, same images per split), else the absolute folder stored at training
    (so a run evaluates from any directory). A folder holding other data is refused, naming ``data_root`` to
    score it anyway; a checkpoint without a fingerprint (written by older versions) uses ``data.root`` as it is."""
    if data_root is not None:
        return DatasetIndex.scan(data_root, [split])
    fp, named = meta.data, Path(meta.preset.data.root)
    if fp is None:
        return DatasetIndex.scan(named, [split])
    refused = []
    for root in dict.fromkeys([named, Path(fp.root)]):
        if not (root / DATASET_FILE).is_file():
            continue
        index = _scan_for(root, split, fp)
        difference = fp.difference(index, first=split)
        if not difference:
            return index
        refused.append((root, difference))
    if not refused:
        raise DataError(
            f"{fp.root}: the data this model trained on is gone (nor is there a dataset at {named} from here); "
            f"pass {arg('data_root')} DIR to evaluate on another copy"
        )
    root, difference = refused[0]
    raise DataError(
        f"{root.resolve()}: not the data this model trained on ({difference}; it trained on {fp.describe()}); "
        f"pass {arg('data_root')} {root} to evaluate on it anyway"
    )


def _split_dataset(
    index: DatasetIndex, split: str, meta: CheckpointMeta, proto: PredictionProtocol
) -> tuple[Path, EvalDataset]:
    """The split to score, checked (masks sampled, classes those of the checkpoint), resized by the protocol;
    with the dataset's absolute folder."""
    root = index.root.resolve()
    info = validate_dataset(index, splits=[split], sample_masks=meta.preset.data.check_samples)
    if list(info.classes) != list(meta.classes):
        raise DataError(
            f"{root}: dataset classes {list(info.classes)[:6]}... differ from the checkpoint's "
            f"{list(meta.classes)[:6]}...; evaluate on the dataset the model was trained for"
        )
    return root, EvalDataset(index, split, proto.size, proto.keep_ratio, meta.preset.data.channels)


def _loader(ds: Dataset, proto: PredictionProtocol, workers: int, dev: torch.device) -> DataLoader:
    """The evaluation loader: the protocol's batch, in order, pinned for CUDA."""
    return DataLoader(
        ds,
        batch_size=proto.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=eval_collate,
        pin_memory=dev.type == "cuda",
        worker_init_fn=worker_init if workers else None,
    )


def _matrix_table(cm: ConfusionMatrix, classes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The confusion matrix as the report stores it."""
    return {"classes": list(classes), "rows": "ground truth", "columns": "prediction", "matrix": cm.mat.cpu().tolist()}


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


def reliability_title(calibration: dict[str, Any]) -> str:
    """The reliability diagram's title: the ECE it shows and what it was counted over."""
    return f"ECE {calibration['ece']:.4f} ({calibration['bins']} bins over {calibration['pixels']:,} labelled pixels)"


def write_reliability_png(calibration: dict[str, Any], report: Path) -> Path:
    """The reliability diagram of the report's calibration (:meth:`ReliabilityBins.summary`: accuracy against
    confidence per bin, the diagonal, the pixels per bin) next to the report: ``<report stem>_reliability.png``."""
    from segcli.viz import draw_cv, write_png

    path = next_free_path(report.with_name(f"{report.stem}_reliability.png"))
    return write_png(path, draw_cv.reliability(calibration["reliability"], reliability_title(calibration)))


def _protocol_summary(proto: PredictionProtocol) -> dict[str, Any]:
    """The test protocol as printed in the report (so a figure says how it was obtained)."""
    size, keep_ratio = proto.size, proto.keep_ratio
    resize = {"size": list(size)} if size else {"keep_ratio": list(keep_ratio)} if keep_ratio else "native"
    return {
        "resize": resize,
        "mode": f"slide tile={list(proto.tile)} stride={list(proto.stride)}" if proto.slide else "whole",
        "tta": {"scales": list(proto.tta_scales or (1.0,)), "flip": proto.tta_flip} if proto.tta else None,
        "amp": proto.amp,
        "crf": dataclasses.asdict(proto.crf) if proto.crf is not None else None,
    }


def _write_worst(
    model: torch.nn.Module,
    ds: EvalDataset,
    per_image: list[float],
    k: int,
    proto: PredictionProtocol,
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
        write_image(dest, overlay(read_image(image_path, ds.info.channels, ds.extras(i)), pred, colours))
        rows.append({"image": str(image_path), "mIoU": round(v, 4), "overlay": str(dest)})
    return rows
