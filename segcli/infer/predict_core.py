"""The prediction core shared by validation, `seg eval` and `seg infer`: one place that turns images into
class scores.

- **Padding.** Every forward pass sees an input whose height and width are multiples of the model's
  input multiple (32, or what the network declares as ``input_multiple``): the image is padded on the
  bottom/right by reflection and the logits are cropped back, so the padded region never counts.
- **Whole image or sliding window.** ``PredictionProtocol.slide`` cuts the image into ``tile`` windows every
  ``stride`` pixels (the mmseg ``slide_inference`` grid, the last window flush with the border), runs
  the windows in batches and averages the logits where windows overlap.
- **TTA.** ``PredictionProtocol.tta_scales`` rescales the image by each factor (and flips it horizontally when
  ``tta_flip``), predicts each view (whole or slide), and averages the softmax probabilities at the
  output size.

- **Dense CRF.** ``PredictionProtocol.crf`` refines each image's scores at the output size with the dense CRF
  (:mod:`segcli.infer.crf`), reading the colours of the image the model saw, resized to that size.

Without TTA the scores are logits (log-marginals after the CRF); with TTA they are probabilities (marginals after
the CRF). Either way ``argmax(0)`` is the mask.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F

from segcli.core.checkpoint import CheckpointMeta
from segcli.core.runtime import autocast, resolve_amp, select_device
from segcli.errors import arg
from segcli.infer.backends import load_inference_model
from segcli.infer.crf import refine_scores
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices, resolve_protocol

DEFAULT_MULTIPLE = 32
# Upsampling to the label size goes in chunks of classes above this many output elements (memory bound).
_CHUNK_ELEMENTS = 1 << 28


def class_ids(scores: torch.Tensor) -> torch.Tensor:
    """Class ids (H, W) from scores (K, H, W): the first maximum, as ``argmax(0)``, 3x faster on CPU."""
    return scores.max(0).indices


def input_multiple(model: torch.nn.Module) -> int:
    """The multiple the input size must have for ``model`` (``input_multiple`` on the network, else 32)."""
    net = getattr(model, "net", model)
    net = getattr(net, "module", net)
    return int(getattr(net, "input_multiple", DEFAULT_MULTIPLE))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (N, C, H, W) on the bottom/right to multiples of ``multiple``: reflect (replicate where the
    image is too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x.float(), (0, pw, 0, ph), mode=mode)


@torch.no_grad()
def forward_padded(model: torch.nn.Module, x: torch.Tensor, proto: PredictionProtocol, multiple: int) -> torch.Tensor:
    """Logits (N, K, H, W) of a batch (N, 3, H, W) already on the device: padded in, cropped out, fp32."""
    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, multiple)
    if proto.channels_last:
        xp = xp.contiguous(memory_format=torch.channels_last)
    with autocast(xp.device, proto.amp):
        logits = model(xp)
    if isinstance(logits, dict):
        logits = logits["out"]
    if logits.shape[-2:] != xp.shape[-2:]:
        logits = F.interpolate(logits.float(), size=xp.shape[-2:], mode="bilinear", align_corners=False)
    return logits[..., :h, :w].float()


def window_grid(
    size: tuple[int, int], tile: tuple[int, int], stride: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """(y1, y2, x1, x2) of every window: mmseg's slide grid, the last row/column flush with the border."""
    (h, w), (th, tw), (sh, sw) = size, tile, stride
    rows = max(h - th + sh - 1, 0) // sh + 1
    cols = max(w - tw + sw - 1, 0) // sw + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + th, h), min(c * sw + tw, w)
            boxes.append((max(y2 - th, 0), y2, max(x2 - tw, 0), x2))
    return boxes


@functools.lru_cache(maxsize=8)
def window_weight(size: tuple[int, int], floor: float = 1e-3) -> torch.Tensor:
    """A smooth blending window (H, W) for one sliding window: the outer product of two raised cosines
    (sin^2 over the pixel centres), 1 in the middle falling to ``floor`` at the edges, so overlapping windows
    hand over gradually and no seam is left where one ends. Pixels that only one window covers (the image's
    border) divide the weight out again: there the window's own scores are kept as they are. Cached by size: read
    it, never change it in place."""
    h, w = size
    ramps = [torch.sin(math.pi * (torch.arange(n, dtype=torch.float32) + 0.5) / n).square() for n in (h, w)]
    return (ramps[0][:, None] * ramps[1][None, :]).clamp_min_(floor)


@torch.no_grad()
def window_outputs(
    model: torch.nn.Module,
    x: torch.Tensor,
    boxes: Sequence[tuple[int, int, int, int]],
    proto: PredictionProtocol,
    multiple: int,
) -> Iterator[tuple[tuple[int, int, int, int], torch.Tensor]]:
    """(box, logits (K, h, w)) of each window ``box`` (y1, y2, x1, x2) of an image (1, 3, H, W), in order: the
    windows go through the model ``proto.window_batch`` at a time, on the model's device, padded and cropped
    as every forward pass is; only one batch of windows is on the device at once."""
    model_dev = next((p.device for p in model.parameters()), x.device)
    for i in range(0, len(boxes), proto.window_batch):
        group = boxes[i : i + proto.window_batch]
        shapes = {(y2 - y1, x2 - x1) for y1, y2, x1, x2 in group}
        if len(shapes) == 1:
            crops = torch.cat([x[..., y1:y2, x1:x2] for y1, y2, x1, x2 in group])
            outs = forward_padded(model, crops.to(model_dev, non_blocking=True), proto, multiple)
        else:  # windows of an image smaller than the tile in one direction only (never mixed in practice)
            outs = [
                forward_padded(model, x[..., y1:y2, x1:x2].to(model_dev, non_blocking=True), proto, multiple)[0]
                for y1, y2, x1, x2 in group
            ]
        yield from zip(group, outs)


@torch.no_grad()
def slide_logits(
    model: torch.nn.Module,
    x: torch.Tensor,
    proto: PredictionProtocol,
    multiple: int,
    smooth: bool = False,
) -> torch.Tensor:
    """Logits (1, K, H, W) of one image (1, 3, H, W) by overlapping windows, batched, averaged where they overlap
    (``smooth``: weighted by :func:`window_weight`, as tiled inference blends them).

    The sums stay on the image's device; pass a CPU image to accumulate on the host (images too big for
    device memory: only the windows of one batch go to the model's device).
    """
    h, w = x.shape[-2:]
    boxes = window_grid((h, w), proto.tile, proto.stride)
    total: torch.Tensor | None = None
    count = torch.zeros((1, 1, h, w), device=x.device)
    for (y1, y2, x1, x2), out in window_outputs(model, x, boxes, proto, multiple):
        if total is None:
            total = torch.zeros((1, out.shape[0], h, w), device=x.device)
        out = out.to(x.device, non_blocking=True)
        if smooth:
            weight = window_weight((y2 - y1, x2 - x1)).to(x.device)
            total[0, :, y1:y2, x1:x2] += out * weight
            count[..., y1:y2, x1:x2] += weight
        else:
            total[0, :, y1:y2, x1:x2] += out
            count[..., y1:y2, x1:x2] += 1
    assert total is not None
    return total.div_(count)  # in place: an image-sized accumulator is the largest buffer here


def resize_scores(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (K, H, W) scores to ``size``, in chunks of classes when the output is large."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    k = scores.shape[0]
    step = max(1, _CHUNK_ELEMENTS // max(1, size[0] * size[1]))
    parts = [
        F.interpolate(scores[None, c : c + step], size=size, mode="bilinear", align_corners=False)[0]
        for c in range(0, k, step)
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def scale_logits(logits: torch.Tensor, temperature: Sequence[float]) -> torch.Tensor:
    """Logits (N, K, H, W) divided by the temperature (one value, or one a class); unchanged when empty."""
    if not temperature:
        return logits
    t = torch.tensor(temperature, dtype=logits.dtype, device=logits.device)
    return logits / (t.view(1, -1, 1, 1) if t.numel() > 1 else t)


def _scores_one_view(model: torch.nn.Module, x: torch.Tensor, proto: PredictionProtocol, multiple: int) -> torch.Tensor:
    """Logits (N, K, H, W) of a batch, whole image or sliding windows (divided by the protocol's temperature)."""
    if not proto.slide or all(t >= s for t, s in zip(proto.tile, x.shape[-2:])):  # one window: the whole image
        model_dev = next((p.device for p in model.parameters()), x.device)
        logits = forward_padded(model, x.to(model_dev, non_blocking=True), proto, multiple)
    else:
        logits = torch.cat([slide_logits(model, x[i : i + 1], proto, multiple) for i in range(x.shape[0])])
    return scale_logits(logits, proto.temperature)


@torch.no_grad()
def predict_batch(
    model: torch.nn.Module,
    images: torch.Tensor,
    out_sizes: Sequence[tuple[int, int]],
    proto: PredictionProtocol,
    device: torch.device,
) -> list[torch.Tensor]:
    """Scores (K, h, w) per image of a batch (N, 3, H, W) of one size, resized to each ``out_sizes`` entry.

    Logits without TTA, mean softmax probabilities with it; refined by the protocol's dense CRF when it has one.
    The model is put in eval mode by the caller.
    Images go to ``device`` for whole-image inference; sliding windows accumulate where the images are
    when they are on the CPU and ``device`` is not (host accumulation), else on the device.
    """
    multiple = input_multiple(model)
    x = images if proto.slide and images.device.type == "cpu" else images.to(device, non_blocking=True)
    prior = bool(getattr(model, "prior", False))  # the last channel is the previous frame's mask (class codes)
    colours = x[:, :-1] if prior else x
    if not proto.tta:
        logits = _scores_one_view(model, x, proto, multiple)
        return _refined([resize_scores(lg, tuple(s)) for lg, s in zip(logits, out_sizes)], colours, proto)
    h, w = x.shape[-2:]
    sums: list[torch.Tensor | None] = [None] * x.shape[0]
    scales = proto.tta_scales or (1.0,)
    flips = (False, True) if proto.tta_flip else (False,)
    for scale in scales:
        size = (max(1, math.floor(h * scale + 0.5)), max(1, math.floor(w * scale + 0.5)))
        xs = x.float() if size == (h, w) else _rescaled(x.float(), size, prior)
        for flip in flips:
            logits = _scores_one_view(model, xs.flip(-1) if flip else xs, proto, multiple)
            if flip:
                logits = logits.flip(-1)
            for i, (lg, s) in enumerate(zip(logits, out_sizes)):
                p = resize_scores(lg, tuple(s)).softmax(0)
                sums[i] = p if sums[i] is None else sums[i] + p
    n = len(scales) * len(flips)
    return _refined([s / n for s in sums], colours, proto)  # type: ignore[operator]


def _rescaled(x: torch.Tensor, size: tuple[int, int], prior: bool) -> torch.Tensor:
    """A TTA scale of the model input: bilinear, but a prior model's mask channel nearest (its values are class
    codes, :func:`segcli.data.prior.encode_prior`: a blend of two codes would be a third class)."""
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if prior:
        out[:, -1:] = F.interpolate(x[:, -1:], size=size, mode="nearest")
    return out


def _refined(scores: list[torch.Tensor], images: torch.Tensor, proto: PredictionProtocol) -> list[torch.Tensor]:
    """Each image's scores (K, h, w) refined by the protocol's dense CRF (as they are without one), with the
    colours of its model input (C, H, W, a prior model's mask channel left out) resized to (h, w); logits stay
    logits, probabilities probabilities."""
    if proto.crf is None:
        return scores
    refined = []
    for sc, image in zip(scores, images):
        colours = image.float()[None]
        if tuple(colours.shape[-2:]) != tuple(sc.shape[-2:]):
            colours = F.interpolate(colours, size=tuple(sc.shape[-2:]), mode="bilinear", align_corners=False)
        refined.append(refine_scores(sc, colours[0].to(sc.device), proto.crf, probabilities=proto.tta))
    return refined


def predict_images(
    model: torch.nn.Module,
    images: torch.Tensor | list[torch.Tensor],
    out_sizes: Sequence[tuple[int, int]],
    proto: PredictionProtocol,
    device: torch.device,
) -> list[torch.Tensor]:
    """:func:`predict_batch` for a stacked batch or a list of images of different sizes (one at a time)."""
    if isinstance(images, torch.Tensor):
        return predict_batch(model, images, out_sizes, proto, device)
    return [predict_batch(model, im[None], [s], proto, device)[0] for im, s in zip(images, out_sizes)]


def prepare_model(model: torch.nn.Module, device: torch.device, channels_last: bool, fixed_size: bool) -> None:
    """Eval mode, the training memory layout, and cuDNN autotuning on CUDA when every input has one size."""
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda" and fixed_size:
        torch.backends.cudnn.benchmark = True


def prediction_device(device: str, choices: ProtocolChoices, local_rank: int | None = None) -> torch.device:
    """The device `seg eval` and `seg infer` run on, with the precision asked for checked on it: a bad
    ``device`` or ``amp`` fails before the model loads."""
    dev = select_device(device, local_rank, option=arg("device"))
    if choices.amp is not None:
        resolve_amp(choices.amp, dev, option=arg("amp"))
    return dev


def open_for_prediction(
    weights: str | os.PathLike, device: torch.device, choices: ProtocolChoices
) -> tuple[torch.nn.Module, CheckpointMeta, PredictionProtocol]:
    """What `seg eval`, `seg infer` and the run report share: the model of a checkpoint or an exported graph,
    its metadata, and the protocol of its preset with ``choices`` on top, the model prepared for it (eval mode,
    layout, cuDNN tuning)."""
    model, meta = load_inference_model(weights, device)
    return model, meta, ready_for_prediction(model, meta, device, choices)


def ready_for_prediction(
    model: torch.nn.Module, meta: CheckpointMeta, device: torch.device, choices: ProtocolChoices
) -> PredictionProtocol:
    """The protocol of ``meta``'s preset with ``choices`` on top, and ``model`` prepared for it (eval mode, layout,
    cuDNN tuning): what :func:`open_for_prediction` does once a model is loaded, and what a model built in
    Python (``segcli.Model("quickstart")``) goes through instead. The temperature of a calibrated checkpoint
    (`seg calibrate`) goes into the protocol; an exported graph has it inside."""
    proto = replace(resolve_protocol(choices, meta.preset, device), temperature=meta.temperature)
    prepare_model(model, device, proto.channels_last, fixed_size=bool(proto.size))
    return proto
