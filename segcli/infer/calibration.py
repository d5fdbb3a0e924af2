"""`seg calibrate`: temperature scaling fitted on the val split, stored in the weights' metadata.

Segmentation networks trained with cross-entropy are usually over-confident: their top-class probability is
higher than how often they are right. Temperature scaling divides the logits by one fitted scalar (``per_class``:
one a class) that minimises the negative log-likelihood of the val split's labelled pixels; a scalar leaves
every argmax (mask, mIoU) unchanged. The temperature goes into the weights file's metadata (``temperature``,
an atomic rewrite), and from then on every path reads it through the prediction protocol: `seg eval`'s ECE,
`seg infer --save probs` and ``uncertainty``, TTA's averaged probabilities and exported graphs (inside the
graph).

The fit uses the plain forward pass of the protocol (no TTA) on at most ``max_pixels`` labelled pixels, sampled
evenly across the split's images; the ECE and NLL before and after are measured on those pixels.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from segcli.core.checkpoint import TEMPERATURE_KEY, update_metadata
from segcli.data.datasets import EvalDataset
from segcli.errors import DataError, UserError, arg
from segcli.infer.evaluator import select_weights
from segcli.infer.predict_core import open_for_prediction, predict_images, prediction_device
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices
from segcli.metrics import ReliabilityBins

DEFAULT_MAX_PIXELS = 1_000_000


@dataclass(frozen=True)
class CalibrateOptions:
    """What :func:`calibrate` fits and where it stores it.

    ``per_class``: one temperature a class (may change some argmax) instead of one scalar; ``split``: the split
    fitted on (default the preset's ``data.val_split``); ``max_pixels``: labelled pixels sampled for the fit;
    ``weights``: best, last or ema of a run (default best, else last); ``dry_run``: fit and report, write
    nothing; ``reset``: remove a stored temperature instead of fitting one.
    """

    per_class: bool = False
    split: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    weights: str | None = None
    dry_run: bool = False
    reset: bool = False


@dataclass(frozen=True)
class CalibrationResult:
    weights: Path
    temperature: list[float]
    split: str
    images: int
    pixels: int
    before: dict[str, float]
    after: dict[str, float]
    written: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": str(self.weights),
            "temperature": self.temperature,
            "split": self.split,
            "images": self.images,
            "pixels": self.pixels,
            "before": self.before,
            "after": self.after,
            "written": self.written,
            "seconds": round(self.seconds, 3),
        }


def fit_temperature(logits: torch.Tensor, target: torch.Tensor, per_class: bool = False) -> list[float]:
    """The temperature (one value, or one a class) minimising the NLL of ``target`` (n,) under ``logits`` (n, K)
    divided by it: L-BFGS on its logarithm (so it stays positive)."""
    log_t = torch.zeros(logits.shape[1] if per_class else 1, dtype=torch.float64, requires_grad=True)
    x, y = logits.double(), target.long()
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return [float(t) for t in log_t.detach().exp()]


def pixel_scores(logits: torch.Tensor, target: torch.Tensor, temperature: list[float]) -> dict[str, float]:
    """ECE (15 bins) and NLL of ``logits`` (n, K) divided by ``temperature``, against ``target`` (n,)."""
    t = torch.tensor(temperature, dtype=torch.float32)
    scaled = logits / t
    bins = ReliabilityBins(logits.shape[1], ignore_index=-1)
    bins.update(scaled.T[:, :, None], target[:, None])
    return {"ece": bins.summary()["ece"], "nll": float(F.cross_entropy(scaled, target.long()))}


def collect_pixels(
    model: torch.nn.Module, ds: EvalDataset, proto: PredictionProtocol, device: torch.device, max_pixels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (n, K) and class ids (n,) of at most ``max_pixels`` labelled pixels of ``ds``, the same share of
    each image (a fixed random sample), by the plain forward pass of ``proto``."""
    per_image = max(1, max_pixels // max(1, len(ds)))
    gen = torch.Generator().manual_seed(0)
    xs, ys = [], []
    ignore = ds.info.ignore_index
    for i in range(len(ds)):
        image, mask = ds[i]
        logits = predict_images(model, image[None], [tuple(mask.shape)], proto, device)[0].cpu()
        keep = ((mask != ignore) & (mask >= 0) & (mask < logits.shape[0])).flatten().nonzero().squeeze(1)
        if keep.numel() > per_image:
            keep = keep[torch.randperm(keep.numel(), generator=gen)[:per_image]]
        xs.append(logits.flatten(1)[:, keep].T)
        ys.append(mask.flatten()[keep])
    if not xs or sum(len(y) for y in ys) == 0:
        raise DataError(f"{ds.samples[0][0].parent if ds.samples else 'the split'}: no labelled pixels to calibrate on")
    return torch.cat(xs).float(), torch.cat(ys)


def calibrate(
    weights_or_run: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    device: str = "auto",
    protocol: ProtocolChoices | None = None,
    options: CalibrateOptions | None = None,
) -> CalibrationResult:
    """Fit temperature scaling on a split and store it in the weights' metadata (see the module's docstring)."""
    t0 = time.perf_counter()
    choices, opts = protocol or ProtocolChoices(), options or CalibrateOptions()
    if opts.max_pixels < 1:
        raise UserError(f"{arg('max_pixels')} {opts.max_pixels}: give 1 or more")
    weights = select_weights(weights_or_run, opts.weights)
    if weights.suffix.lower() != ".safetensors":
        raise UserError(f"{weights}: calibrate takes segcli .safetensors weights or a run directory (export after it)")
    if opts.reset:
        if not opts.dry_run:
            update_metadata(weights, {TEMPERATURE_KEY: None})
        return CalibrationResult(weights, [], "", 0, 0, {}, {}, not opts.dry_run, time.perf_counter() - t0)
    dev = prediction_device(device, choices)
    model, meta, proto = open_for_prediction(weights, dev, choices)
    proto = replace(proto, temperature=(), tta_scales=(), tta_flip=False, crf=None)  # raw logits of one plain pass
    split = opts.split or meta.preset.data.val_split
    root = Path(meta.preset.data.root if data_root is None else data_root)
    ds = EvalDataset(root, split, proto.size, proto.keep_ratio, meta.preset.data.channels)
    if list(ds.info.classes) != list(meta.classes):
        raise DataError(
            f"{root}: dataset classes differ from the checkpoint's; calibrate on the data it was trained on"
        )
    logits, target = collect_pixels(model, ds, proto, dev, opts.max_pixels)
    temperature = fit_temperature(logits, target, opts.per_class)
    before, after = pixel_scores(logits, target, [1.0]), pixel_scores(logits, target, temperature)
    if not opts.dry_run:
        update_metadata(weights, {TEMPERATURE_KEY: json.dumps(temperature)})
    return CalibrationResult(
        weights, temperature, split, len(ds), len(target), before, after, not opts.dry_run, time.perf_counter() - t0
    )
