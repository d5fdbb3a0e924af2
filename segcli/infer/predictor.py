"""Prediction: images and videos → palette PNG masks, colour overlays, raw ids and probabilities.

Batched through the prediction core (:mod:`segcli.infer.predict_core`): a thread pool decodes and
resizes the next images while the model runs, and encodes and writes the outputs of the previous batch,
so the model never waits on disk.
"""

from __future__ import annotations

import functools
import glob
import os
import queue
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from segcli.core.checkpoint import CheckpointMeta
from segcli.core.rundir import resolve_weights
from segcli.data.datasets import image_to_tensor, usable_cores
from segcli.data.format import DATASET_FILE, DatasetInfo, extra_channel_files, read_dataset_info
from segcli.data.io import IMAGE_EXTS, list_images, read_image, write_image, write_mask, write_palette_mask
from segcli.data.prior import encode_prior
from segcli.data.transforms import inference_size, resize_pair
from segcli.errors import DataError, UserError, arg
from segcli.infer.predict_core import class_ids, open_for_prediction, predict_images, prediction_device
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices
from segcli.infer.tiled import TILED_ABOVE, is_tiled, predict_tiled, tiled_paths
from segcli.io_utils import atomic_write, require_folder
from segcli.metrics import Flicker
from segcli.viz import display_rgb
from segcli.viz.draw_cv import draw_legend_strip

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
SAVE_KINDS = ("mask", "overlay", "ids", "probs", "uncertainty")
FOLDERS = {"mask": "masks", "overlay": "overlays", "ids": "ids", "probs": "probs", "uncertainty": "uncertainty"}


def expand_inputs(inputs: list[str] | tuple[str, ...]) -> list[Path]:
    """Files (images or videos), folders (their images), glob patterns and ``-`` (paths on stdin, one a
    line) → paths, in order, without repeats."""
    found: list[Path] = []
    items: list[str] = []
    for item in inputs:
        items += [line.strip() for line in sys.stdin if line.strip()] if item == "-" else [item]
    for item in items:
        p = Path(item)
        if p.is_dir():
            imgs = list_images(p)
            if not imgs:
                raise DataError(f"{p}: folder has no images ({', '.join(IMAGE_EXTS)})")
            found += imgs
        elif p.is_file():
            found.append(p)
        elif any(ch in item for ch in "*?["):
            matches = sorted(
                Path(m) for m in glob.glob(item, recursive=True) if Path(m).suffix.lower() in IMAGE_EXTS + VIDEO_EXTS
            )
            if not matches:
                raise DataError(f"{item}: pattern matches no images")
            found += matches
        else:
            raise DataError(f"{item}: no such file, folder or pattern")
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def colour_mask(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colours of a class-id mask: ids above the palette take its last colour.

    An 8-bit mask goes through OpenCV's table lookup (several times faster than numpy's gather)."""
    palette = np.asarray(palette, np.uint8)
    if mask.dtype == np.uint8 and mask.flags.c_contiguous:
        table = np.repeat(palette[-1:], 256, axis=0)
        table[: min(len(palette), 256)] = palette[:256]
        return cv2.LUT(cv2.merge([mask, mask, mask]), table[:, None, :])
    return palette[np.clip(mask, 0, len(palette) - 1)]


def overlay(
    image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5, alpha_bg: float | None = None
) -> np.ndarray:
    """Blend class colours onto the image (class 0 with ``alpha_bg`` when given: 0 leaves it untinted).

    Integer blending in OpenCV, ``image * (1 - a) + colour * a`` rounded to the nearest value. An N-channel or
    float image shows its first three channels (one or two channels: the first as grey, :func:`display_rgb`)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        image = display_rgb(image)
    colours = colour_mask(mask, palette)
    out = cv2.addWeighted(image, 1.0 - alpha, colours, alpha, 0.0)
    if alpha_bg is not None and alpha_bg != alpha:
        bg = cv2.addWeighted(image, 1.0 - alpha_bg, colours, alpha_bg, 0.0)
        np.copyto(out, bg, where=(mask == 0)[..., None])
    return out


def class_counts(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels per class id (at least ``num_classes`` entries): OpenCV's histogram for an 8-bit mask
    (about 4x faster than ``np.bincount``; its float32 counts are exact below 2**24 pixels),
    ``np.bincount`` otherwise."""
    if mask.dtype == np.uint8 and mask.ndim == 2 and mask.size < 1 << 24:
        return cv2.calcHist([mask], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return np.bincount(mask.ravel(), minlength=num_classes)


@dataclass
class PredictResult:
    out_dir: Path
    weights: Path
    outputs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # inputs whose outputs were already there
    seconds: float = 0.0
    load_seconds: float = 0.0  # of ``seconds``: until the model was ready (weights read, model built)
    sequence: dict[str, Any] | None = None  # with ``sequence``: the clip's frames and flicker

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "weights": str(self.weights),
            "images": len(self.outputs),
            "skipped": len(self.skipped),
            "seconds": round(self.seconds, 3),
            "load_seconds": round(self.load_seconds, 3),
            "images_per_second": round(len(self.outputs) / self.seconds, 2) if self.seconds > 0 else None,
            "outputs": self.outputs,
            **({"sequence": self.sequence} if self.sequence is not None else {}),
        }


def parse_save(save: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"mask,overlay"`` → ("mask", "overlay"); an unknown kind is a UserError naming ``save``."""
    kinds = [k.strip() for k in (save.split(",") if isinstance(save, str) else save) if k.strip()]
    bad = [k for k in kinds if k not in SAVE_KINDS]
    if bad or not kinds:
        raise UserError(f"{arg('save')} {','.join(kinds)}: choose from {', '.join(SAVE_KINDS)} (comma-separated)")
    return tuple(dict.fromkeys(kinds))


PROBS_FORMATS = ("auto", "npy", "png")


def resolve_probs_format(fmt: str, num_classes: int) -> str:
    """``probs_format``: ``auto`` is ``png`` for a binary (two-class) model, else ``npy``."""
    if fmt not in PROBS_FORMATS:
        raise UserError(f"{arg('probs_format')} {fmt}: choose from {', '.join(PROBS_FORMATS)}")
    return ("png" if num_classes == 2 else "npy") if fmt == "auto" else fmt


@dataclass(frozen=True)
class OutputOptions:
    """What `predict` writes, checked when made.

    ``save``: the kinds, comma-separated or a tuple (mask, overlay, ids, probs); ``alpha`` and ``alpha_bg``: the
    overlay's opacity of the class colours and of class 0 (None: as the others; 0 leaves it untinted);
    ``legend``: a strip below each overlay naming the classes present (images only); ``probs_format``: npy,
    png or auto (png for a two-class model, else npy); ``overwrite`` replaces existing outputs,
    ``skip_existing`` keeps them and writes only what is missing (an interrupted run continues).
    ``tiled``: predict each still image band by band into tiled TIFFs (:mod:`segcli.infer.tiled`: the mask and
    ids only, never the whole image in memory); None (the default) does so for images with more than
    ``tiled_above`` x ``tiled_above`` pixels, False never.
    ``sequence``: the still images are the frames of one clip, in the order given (a folder: by name), predicted
    as a video's frames are: every frame in order, a prior model (``model.prior = "mask"``) fed the previous
    frame's mask, and the clip's flicker reported.
    """

    save: str | tuple[str, ...] = ("mask", "overlay")
    alpha: float = 0.5
    alpha_bg: float | None = None
    legend: bool = False
    probs_format: str = "auto"
    overwrite: bool = False
    skip_existing: bool = False
    tiled: bool | None = None
    tiled_above: int = TILED_ABOVE
    sequence: bool = False

    def __post_init__(self) -> None:
        if self.overwrite and self.skip_existing:
            raise UserError(f"{arg('overwrite')} and {arg('skip_existing')} contradict each other; pass one of them")
        if self.sequence and self.skip_existing:
            raise UserError(
                f"{arg('sequence')} predicts every frame in order (each one's prior is the frame before); "
                f"{arg('skip_existing')} would leave gaps: pass {arg('overwrite')} instead"
            )
        if self.tiled_above < 1:
            raise UserError(f"{arg('tiled_above')} {self.tiled_above}: give a side in pixels >= 1, e.g. 8192")
        object.__setattr__(self, "save", parse_save(self.save))
        for name in ("alpha", "alpha_bg"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UserError(f"{arg(name)} {value}: give a blend weight in [0, 1]")
        resolve_probs_format(self.probs_format, 0)  # a bad format fails before the model loads


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"


class _Writer:
    """Encodes and writes one image's outputs (runs in the thread pool)."""

    def __init__(self, meta: Any, options: OutputOptions) -> None:
        self.meta, self.save, self.alpha, self.alpha_bg = meta, options.save, options.alpha, options.alpha_bg
        self.legend, self.probs_fmt = options.legend, resolve_probs_format(options.probs_format, meta.num_classes)
        self.palette = np.array(meta.palette, dtype=np.uint8)
        self.id_dtype = np.uint8 if meta.num_classes <= 256 else np.uint16
        self.binary = meta.num_classes == 2
        self.class_files = [f"{k:03d}_{_slug(n)}.png" for k, n in enumerate(meta.classes)]

    def paths(self, out: Path, stem: str) -> dict[str, Path]:
        """Output path per kind; multi-class probability PNGs are a folder ``probs/<stem>/`` (one PNG a class)."""
        probs_ext = ".npy" if self.probs_fmt == "npy" else ".png" if self.binary else ""
        ext = {"mask": ".png", "overlay": ".jpg", "ids": ".png", "probs": probs_ext, "uncertainty": ".png"}
        return {k: out / FOLDERS[k] / f"{stem}{ext[k]}" for k in self.save}

    def wanted_probs(self, kinds: tuple[str, ...]) -> str | None:
        """The probability format the model's side hands the writer: ``probs``'s own, float16 when only
        ``uncertainty`` needs them, None when nothing does."""
        if "probs" in kinds:
            return self.probs_fmt
        return "npy" if "uncertainty" in kinds else None

    def write(
        self, image: np.ndarray, mask: np.ndarray, probs: np.ndarray | None, paths: dict[str, Path], keep: bool
    ) -> None:
        for kind, path in paths.items():
            if keep and path.exists():
                continue
            if kind == "mask":
                if self.id_dtype is np.uint8:
                    write_palette_mask(path, mask.astype(np.uint8), self.meta.palette, compress_level=1)
                else:  # a palette PNG holds 256 ids at most
                    write_mask(path, mask.astype(np.uint16))
            elif kind == "ids":
                write_mask(path, mask.astype(self.id_dtype))
            elif kind == "overlay":
                blended = overlay(image, mask, self.palette, self.alpha, self.alpha_bg)
                if self.legend:
                    present = np.nonzero(class_counts(mask, self.meta.num_classes))[0]
                    blended = draw_legend_strip(blended, present, self.meta.classes, self.meta.palette)
                write_image(path, blended)
            elif kind == "probs":
                self._write_probs(path, probs)
            elif kind == "uncertainty" and probs is not None:
                write_mask(path, uncertainty_map(probs))

    def _write_probs(self, path: Path, probs: np.ndarray | None) -> None:
        """float16 ``.npy`` (classes first), or 8-bit PNGs: round(255 p) of the foreground for a binary
        model (one grey PNG), of every class for a multi-class one (``<path>/<id>_<name>.png``)."""
        if probs is None:
            probs = np.zeros(0, np.float16)
        if self.probs_fmt == "npy":
            atomic_write(path, lambda tmp, a=probs: np.save(tmp, a), suffix=".npy")
        elif self.binary:
            write_mask(path, probs[1])
        else:
            path.mkdir(parents=True, exist_ok=True)
            for k, name in enumerate(self.class_files):
                write_mask(path / name, probs[k])

    def shares(self, mask: np.ndarray) -> dict[str, float]:
        counts = class_counts(mask, self.meta.num_classes)
        return {self.meta.classes[c]: round(float(counts[c]) / mask.size, 4) for c in np.nonzero(counts)[0]}


def uncertainty_map(probs: np.ndarray) -> np.ndarray:
    """Per-pixel entropy of class probabilities (K, H, W) (float, or uint8 as round(255 p)) normalised by
    log K, as 8-bit grey: 0 = certain (one class), 255 = uniform over all classes."""
    p = probs.astype(np.float32) / (255.0 if probs.dtype == np.uint8 else 1.0)
    k = max(2, p.shape[0])
    entropy = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(0) / np.log(k)
    return np.clip(np.rint(entropy * 255), 0, 255).astype(np.uint8)


def _write_entry(
    writer: _Writer,
    entry: dict[str, Any],
    image: np.ndarray,
    mask: np.ndarray,
    probs: np.ndarray | None,
    files: dict[str, Path],
    keep: bool,
) -> None:
    """On a pool thread: write the outputs and fill in the image's class shares."""
    writer.write(image, mask, probs, files, keep)
    entry["classes"] = writer.shares(mask)


ARRAY_PROBS = "float32"  # the probabilities handed back in memory (:func:`predict_arrays`), not written


def _probabilities(scores: torch.Tensor, tta: bool, fmt: str) -> torch.Tensor:
    """Class probabilities (K, H, W) of one image's scores: float16 for ``.npy``, round(255 p) as uint8
    for PNGs (quantised where the scores are, before the copy to the host), float32 for arrays in memory."""
    p = scores if tta else scores.softmax(0)
    if fmt == ARRAY_PROBS:
        return p.float()
    return p.mul(255).round_().to(torch.uint8) if fmt == "png" else p.to(torch.float16)


def _decode(
    src: Path, size: tuple[int, ...], keep_ratio: tuple[int, ...], channels: int = 3
) -> tuple[np.ndarray, torch.Tensor]:
    """The image (``channels``: the model's ``data.channels``; another count is one line naming the file) and its
    model input (resized to the test-time size), on a pool thread. An image of a segcli dataset's
    ``images/<split>`` whose dataset.toml lists ``extra_channels`` gets them from their folders, as in training."""
    image = read_input(src, channels)
    return image, _model_input(image, size, keep_ratio)


def read_input(src: Path, channels: int = 3) -> np.ndarray:
    """An image to predict, with the extra channels of its dataset (see :func:`_extra_channels`)."""
    return read_image(src, channels, _extra_channels(src))


def _extra_channels(src: Path) -> list[Path]:
    """The extra-channel files of ``src`` when it is in a segcli dataset's ``images/<split>`` (else none)."""
    src = src.resolve()
    if src.parent.parent.name != "images":
        return []
    info = _dataset_info(src.parent.parent.parent)
    return extra_channel_files(src, info) if info is not None else []


@functools.lru_cache(maxsize=8)
def _dataset_info(root: Path) -> DatasetInfo | None:
    """``root``'s dataset.toml, None when it is not a segcli dataset (read once per dataset)."""
    return read_dataset_info(root) if (root / DATASET_FILE).is_file() else None


def _model_input(image: np.ndarray, size: tuple[int, ...], keep_ratio: tuple[int, ...]) -> torch.Tensor:
    h, w = image.shape[:2]
    target = inference_size(h, w, size, keep_ratio)
    x = resize_pair(image, None, target)[0] if target != (h, w) else image
    return image_to_tensor(x)


def _decoded(image: np.ndarray, proto: PredictionProtocol) -> Future:
    """An image already in memory (a video frame, an array) as a finished decode: (image, model input)."""
    fut: Future = Future()
    fut.set_result((image, _model_input(image, proto.size, proto.keep_ratio)))
    return fut


def _batches(
    items: Iterator[tuple[Any, Future]], batch_size: int
) -> Iterator[list[tuple[Any, np.ndarray, torch.Tensor]]]:
    """Consecutive decoded items grouped into batches of one input size (at most ``batch_size``)."""
    batch: list[tuple[Any, np.ndarray, torch.Tensor]] = []
    for key, fut in items:
        image, x = fut.result()
        if batch and (len(batch) == batch_size or batch[0][2].shape != x.shape):
            yield batch
            batch = []
        batch.append((key, image, x))
    if batch:
        yield batch


def _to_host(ts: list[torch.Tensor]) -> list[np.ndarray]:
    """Tensors as numpy arrays: on an accelerator one device-to-host copy (one sync) for a batch of one
    shape instead of one per image."""
    if ts and ts[0].device.type != "cpu" and len({tuple(t.shape) for t in ts}) == 1:
        return list(torch.stack(ts).cpu().numpy())
    return [t.cpu().numpy() for t in ts]


def _stack_inputs(inputs: list[torch.Tensor], pin: bool) -> torch.Tensor:
    """One (N, 3, H, W) batch of same-shaped inputs, in page-locked memory when ``pin`` (asynchronous copy to CUDA).

    Filled by numpy, one thread: ``torch.stack`` or ``pin_memory()`` on the host wakes torch's OpenMP team, whose
    threads then spin on the cores that the decode/encode pool needs (with a GPU, infer ran at a tenth of the
    model's rate, the pool half idle). The caching host allocator keeps a pinned block until the copies queued
    from it have run, so a new batch never overwrites one still being copied.
    """
    x = torch.empty((len(inputs), *inputs[0].shape), dtype=inputs[0].dtype, pin_memory=pin)
    out = x.numpy()
    for i, t in enumerate(inputs):
        out[i] = t.numpy()
    return x


def has_prior(meta: CheckpointMeta) -> bool:
    """Whether the model takes the previous frame's mask as an input channel (``model.prior = "mask"``)."""
    return getattr(meta.preset.model, "prior", "none") == "mask"


def resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A class-id mask at (height, width), nearest neighbour (OpenCV's rule for uint8, the same by indexing else)."""
    h, w = size
    if mask.shape[:2] == (h, w):
        return mask
    if mask.dtype == np.uint8:
        return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    rows = np.minimum((np.arange(h) * (mask.shape[0] / h)).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum((np.arange(w) * (mask.shape[1] / w)).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


class Clip:
    """The frames of one video or image sequence, predicted in order: for a prior model each frame's input gets
    the previous frame's mask as its last channel (none before the first frame, :func:`segcli.data.prior.encode_prior`),
    and the masks' flicker is counted (:class:`segcli.metrics.Flicker`)."""

    def __init__(self, prior: bool, num_classes: int) -> None:
        self.prior, self.num_classes = prior, num_classes
        self.previous: np.ndarray | None = None
        self.flicker = Flicker()
        self.frames = 0

    def batch_size(self, proto: PredictionProtocol) -> int:
        """Frames per forward pass: one for a prior model (each needs the mask of the one before), else the
        protocol's batch."""
        return 1 if self.prior else proto.batch_size

    def fed(self, batches: Iterator[list]) -> Iterator[list]:
        """``batches`` of (key, image, model input) with the prior channel added to each input (a prior model),
        made as each batch is asked for, after the frame before it was predicted and handed to :meth:`done`."""
        for batch in batches:
            yield [(key, image, self.input(x)) for key, image, x in batch] if self.prior else batch

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A frame's model input (C, H, W) with the prior channel of the previous frame's mask appended."""
        h, w = x.shape[-2:]
        previous = None if self.previous is None else resize_nearest(self.previous, (h, w))
        code = torch.from_numpy(encode_prior(previous, self.num_classes, (h, w)))
        return torch.cat([x, code[None].to(x.dtype)])

    def done(self, mask: np.ndarray) -> None:
        """The next frame's predicted mask, in order."""
        self.previous = mask
        self.flicker.update(mask)
        self.frames += 1

    def summary(self) -> dict[str, Any]:
        """Frames, flicker (None below two frames) and whether the prior was fed, for the result."""
        value = self.flicker.value
        return {"frames": self.frames, "flicker": None if value != value else round(value, 6), "prior": self.prior}


def _run_batch(
    model: torch.nn.Module, batch: list, proto: PredictionProtocol, dev: torch.device, probs_fmt: str | None
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(mask, probabilities or None) per image of a batch, at each original image's size.

    Masks are uint8 up to 256 classes (int32 above), made on the device, so the host copy is small and
    the writers' colour lookup is a table lookup."""
    x = _stack_inputs([b[2] for b in batch], pin=dev.type == "cuda" and not proto.slide)
    sizes = [tuple(b[1].shape[:2]) for b in batch]
    scores = predict_images(model, x, sizes, proto, dev)
    id_dtype = torch.uint8 if scores[0].shape[0] <= 256 else torch.int32
    masks = _to_host([class_ids(sc).to(id_dtype) for sc in scores])
    if not probs_fmt:
        return [(m, None) for m in masks]
    return list(zip(masks, _to_host([_probabilities(sc, proto.tta, probs_fmt) for sc in scores])))


INFER_BATCH = 8  # images per forward pass of `predict` when the protocol leaves it open (not eval's batch)


@dataclass(frozen=True)
class OpenedModel:
    """A model loaded for prediction: its weights file, device, module (eval mode), metadata and protocol."""

    weights: Path
    device: torch.device
    model: torch.nn.Module
    meta: CheckpointMeta
    protocol: PredictionProtocol


def open_model(
    weights_or_run: str | os.PathLike, device: str = "auto", protocol: ProtocolChoices | None = None
) -> OpenedModel:
    """The one way `seg infer` and ``segcli.Model`` load a model: a run (its best weights), a weights file or an
    exported graph, on ``device``, with the preset's protocol and ``protocol`` on top (the batch:
    :data:`INFER_BATCH` unless given)."""
    choices = protocol or ProtocolChoices()
    if choices.batch_size is None:
        choices = replace(choices, batch_size=INFER_BATCH)
    weights = resolve_weights(weights_or_run)
    dev = prediction_device(device, choices)
    model, meta, proto = open_for_prediction(weights, dev, choices)
    return OpenedModel(weights, dev, model, meta, proto)


def predict_arrays(
    model: torch.nn.Module,
    images: list[np.ndarray],
    proto: PredictionProtocol,
    dev: torch.device,
    probs: bool = False,
    clip: Clip | None = None,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(mask, float32 probabilities or None) of RGB uint8 images in memory, each at its own size: nothing is
    written. The batches of `predict` (consecutive images of one input size, ``proto.batch_size`` at most)
    through the same :func:`_run_batch`, so a mask here is the mask `seg infer` writes. ``clip``: the images are
    the next frames of that clip (a prior model gets each one's previous mask; the flicker is counted)."""
    found: list[tuple[np.ndarray, np.ndarray | None]] = []
    items = ((i, _decoded(image, proto)) for i, image in enumerate(images))
    batches = _batches(items, clip.batch_size(proto) if clip else proto.batch_size)
    for batch in clip.fed(batches) if clip else batches:
        predicted = _run_batch(model, batch, proto, dev, ARRAY_PROBS if probs else None)
        for mask, _ in predicted if clip else ():
            clip.done(mask)
        found += predicted
    return found


def predict(
    weights_or_run: str | os.PathLike,
    inputs: list[str] | tuple[str, ...],
    out_dir: str | os.PathLike,
    device: str = "auto",
    protocol: ProtocolChoices | None = None,
    output: OutputOptions | None = None,
    *,
    workers: int | str = "auto",
    on_image: Callable[[int, int, Path], None] | None = None,
) -> PredictResult:
    """Predict every input image or video frame; write what ``output.save`` asks for under ``out_dir``:
    ``masks/<stem>.png`` (palette), ``overlays/<stem>.jpg`` (``legend``: a strip below naming the classes
    present), ``ids/<stem>.png`` (grey, uint16 above 256 classes), ``probs/<stem>.npy`` (float16, classes
    first) or, with ``probs_format`` png (``auto`` for a two-class model), ``probs/<stem>.png`` (8-bit
    foreground probability of a binary model) or ``probs/<stem>/<id>_<class>.png`` (one per class);
    ``uncertainty/<stem>.png`` (8-bit per-pixel entropy over log K: 0 certain, 255 uniform).
    A video ``clip.mp4`` gives ``masks/clip/<frame>.png`` ... per frame and ``overlays/clip.mp4``, and its flicker
    (:class:`Clip`: a prior model is fed the previous mask); ``output.sequence``: the images are one clip's frames.

    ``protocol`` overrides the preset's test protocol (its batch: :data:`INFER_BATCH` unless given); ``workers``
    are the decode/encode threads besides this one (0: all in this thread; "auto": up to 8, one per core);
    ``on_image(i, n, path)`` follows the progress.
    Existing outputs are an error unless ``overwrite`` (replace them) or ``skip_existing`` (keep
    them and write only what is missing: an interrupted run continues where it stopped).
    """
    t0 = time.perf_counter()
    opts = output or OutputOptions()
    resolve_weights(weights_or_run)  # the model first: a missing run is the error to see, whatever the inputs
    paths = expand_inputs(inputs)
    out = require_folder(out_dir, arg("out_dir"))
    opened = open_model(weights_or_run, device, protocol)
    model, meta, proto, dev = opened.model, opened.meta, opened.protocol, opened.device
    result = PredictResult(out, opened.weights, load_seconds=time.perf_counter() - t0)
    writer = _Writer(meta, opts)
    plan = _plan(paths)
    big = [(p, stem) for p, stem in plan if not is_video(p) and is_tiled(p, opts.tiled, opts.tiled_above)]
    plan = [item for item in plan if item not in big]
    if not opts.overwrite and not opts.skip_existing:
        _refuse_to_replace(writer, out, plan)
        _refuse_to_replace_files([f for _, stem in big for f in tiled_paths(out, stem, opts.save).values()])
    threads = min(8, usable_cores()) if workers == "auto" else int(workers)
    progress = _Progress(on_image, len(plan) + len(big))
    with ThreadPoolExecutor(max_workers=threads) if threads else InThisThread() as pool:
        job = _Job(model, proto, dev, writer, out, pool, result, progress)
        images = [(p, stem) for p, stem in plan if not is_video(p)]
        job.images(images, opts.skip_existing, ahead=max(2 * proto.batch_size, threads), sequence=opts.sequence)
        for src, stem in plan:
            if is_video(src):
                result.outputs.append(_predict_video(job, src, stem))
                progress.tick(src)
    for src, stem in big:  # last, one at a time: each may take the machine's memory and time to itself
        files = tiled_paths(out, stem, opts.save)
        if opts.skip_existing and all(f.exists() for f in files.values()):
            result.skipped.append(str(src))
        else:
            result.outputs.append(predict_tiled(model, src, files, proto, meta))
        progress.tick(src)
    result.seconds = time.perf_counter() - t0
    return result


class InThisThread(Executor):
    """An executor that runs each call at once in the calling thread: ``workers = 0``, nothing besides it."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future, as a pool would
            future.set_exception(e)
        return future


def _plan(paths: list[Path]) -> list[tuple[Path, str]]:
    """(input, output stem) per input: a repeated stem gets ``_2``, ``_3``..."""
    stems: dict[str, int] = {}
    plan = []
    for p in paths:
        n = stems.get(p.stem, 0)
        stems[p.stem] = n + 1
        plan.append((p, p.stem if n == 0 else f"{p.stem}_{n + 1}"))
    return plan


def _refuse_to_replace(writer: _Writer, out: Path, plan: list[tuple[Path, str]]) -> None:
    _refuse_to_replace_files([f for p, stem in plan for f in _planned_files(writer, out, p, stem)])


def _refuse_to_replace_files(files: list[Path]) -> None:
    clash = [str(f) for f in files if f.exists()]
    if clash:
        raise UserError(
            f"{clash[0]} exists ({len(clash)} output files would be replaced); pass {arg('overwrite')}, "
            f"{arg('skip_existing')} (continue an interrupted run) or another {arg('out_dir')}"
        )


class _Progress:
    """``on_image(i, n, path)`` as the inputs get done."""

    def __init__(self, on_image: Callable[[int, int, Path], None] | None, total: int) -> None:
        self.on_image, self.total, self.done = on_image, total, 0

    def tick(self, src: Path, index: int | None = None) -> None:
        """``src`` is done: the next one, or the one at ``index`` (a skipped image, not counted)."""
        if self.on_image is not None:
            self.on_image(self.done if index is None else index, self.total, src)
        if index is None:
            self.done += 1


@dataclass
class _Job:
    """One `predict` call at work: the prepared model and its protocol, the writer, the pool, the progress."""

    model: torch.nn.Module
    proto: PredictionProtocol
    dev: torch.device
    writer: _Writer
    out: Path
    pool: Executor
    result: PredictResult
    progress: _Progress

    def images(self, items: list[tuple[Path, str]], keep: bool, ahead: int, sequence: bool = False) -> None:
        """Predict the still images: decode ahead, predict in batches, write behind (``ahead`` at most in flight
        each way); ``keep``: leave the images whose outputs all exist, and every file that exists; ``sequence``: the
        images are the frames of one clip, in order (``result.sequence``: its frames and flicker)."""
        meta = self.writer.meta
        clip = Clip(has_prior(meta), meta.num_classes) if sequence and items else None
        todo = []
        for i, (src, stem) in enumerate(items):
            files = self.writer.paths(self.out, stem)
            if keep and all(f.exists() for f in files.values()):
                self.result.skipped.append(str(src))
                self.progress.tick(src, i)
                continue
            todo.append((src, files))
        self.progress.done = len(self.result.skipped)
        proto, writer = self.proto, self.writer
        channels = meta.preset.data.channels
        decoded = _prefetch(
            self.pool, todo, lambda item: _decode(item[0], proto.size, proto.keep_ratio, channels), ahead
        )
        want_probs = writer.wanted_probs(writer.save)
        pending: deque[Future] = deque()
        batches = _batches(decoded, clip.batch_size(proto) if clip else proto.batch_size)
        for batch in clip.fed(batches) if clip else batches:
            predicted = _run_batch(self.model, batch, proto, self.dev, want_probs)
            for ((src, files), image, _), (mask, probs) in zip(batch, predicted):
                if clip is not None:
                    clip.done(mask)
                entry = {"input": str(src), **{k: str(v) for k, v in files.items()}}
                self.result.outputs.append(entry)
                pending.append(self.pool.submit(_write_entry, writer, entry, image, mask, probs, files, keep))
                self.progress.tick(src)
            while len(pending) > ahead:
                pending.popleft().result()
        for f in pending:
            f.result()
        if clip is not None:
            self.result.sequence = clip.summary()


def _planned_files(writer: _Writer, out: Path, src: Path, stem: str) -> list[Path]:
    if not is_video(src):
        return list(writer.paths(out, stem).values())
    return [out / "overlays" / f"{stem}.mp4", *(out / FOLDERS[k] / stem for k in SAVE_KINDS if k != "overlay")]


def _prefetch(pool: Executor, items: list, fn: Callable, ahead: int) -> Iterator[tuple[Any, Future]]:
    """(item, future of fn(item)) in order, with at most ``ahead`` submitted but not yet consumed."""
    queue: deque[tuple[Any, Future]] = deque()
    it = iter(items)
    for item in it:
        queue.append((item, pool.submit(fn, item)))
        if len(queue) >= ahead:
            break
    while queue:
        yield queue.popleft()
        nxt = next(it, None)
        if nxt is not None:
            queue.append((nxt, pool.submit(fn, nxt)))


def _frames(src: Path) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise DataError(f"{src}: cannot open this video (OpenCV has no decoder for it); convert it to .mp4 (H.264)")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _read_ahead(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """``items`` produced by a background thread, at most ``depth`` ahead of the consumer (a video's frames
    are decoded while the model runs); an exception in the producer is raised in the consumer."""
    box: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()
    end = object()

    def offer(entry: tuple[Any, BaseException | None]) -> bool:
        """Queue ``entry`` unless the consumer has stopped (never blocks for good on a full queue)."""
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((end, None))
        except BaseException as e:  # handed to the consumer
            offer((end, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator's own clean-up (the video capture released) on this thread
                close()

    thread = threading.Thread(target=produce, name="seg-video-decode", daemon=True)
    thread.start()
    try:
        while True:
            item, error = box.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _predict_video(job: _Job, src: Path, stem: str) -> dict[str, Any]:
    """Frame by frame: per-frame outputs in ``<kind>/<stem>/<frame>``, and an overlay video ``overlays/<stem>.mp4``."""
    model, proto, dev, writer, pool, out = job.model, job.proto, job.dev, job.writer, job.pool, job.out
    clip = Clip(has_prior(writer.meta), writer.meta.num_classes)
    batch_size = clip.batch_size(proto)
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    size_wh = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    frame_kinds = tuple(k for k in writer.save if k != "overlay")
    video_path = out / "overlays" / f"{stem}.mp4"
    video: cv2.VideoWriter | None = None
    tmp = video_path.with_name(f".{video_path.stem}.tmp.mp4")
    if "overlay" in writer.save:
        require_folder(video_path.parent).mkdir(parents=True, exist_ok=True)
        video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size_wh)
        if not video.isOpened():
            raise DataError(f"{video_path}: OpenCV cannot write an mp4v video here; leave overlay out of {arg('save')}")
    frames = 0
    shares = np.zeros(writer.meta.num_classes)
    pending: deque[Future] = deque()

    def decoded() -> Iterator[tuple[Any, Future]]:
        for k, frame in enumerate(_frames(src)):
            yield k, _decoded(frame, proto)

    def encode(frame: np.ndarray, mask: np.ndarray) -> None:
        assert video is not None
        blended = overlay(frame, mask, writer.palette, writer.alpha, writer.alpha_bg)
        video.write(cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))

    # frames decoded on one thread ahead of the model, blended and encoded on another in order (one video
    # writer), per-frame files written by the pool: the main thread only runs the model
    encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seg-video-encode")
    try:
        for batch in clip.fed(_batches(_read_ahead(decoded(), 2 * batch_size), batch_size)):
            for (k, frame, _), (mask, probs) in zip(
                batch, _run_batch(model, batch, proto, dev, writer.wanted_probs(frame_kinds))
            ):
                clip.done(mask)
                files = {
                    kind: p.parent / stem / f"{k:06d}{p.suffix}"
                    for kind, p in writer.paths(out, "x").items()
                    if kind != "overlay"
                }
                pending.append(pool.submit(writer.write, frame, mask, probs, files, False))
                shares += class_counts(mask, writer.meta.num_classes)[: writer.meta.num_classes]
                if video is not None:
                    pending.append(encoder.submit(encode, frame, mask))
                frames += 1
            while len(pending) > 4 * batch_size:
                pending.popleft().result()
        for f in pending:
            f.result()
        encoder.shutdown(wait=True)
        if video is not None:
            video.release()
            video = None
            os.replace(tmp, video_path)
    finally:
        encoder.shutdown(wait=True, cancel_futures=True)
        if video is not None:
            video.release()
        tmp.unlink(missing_ok=True)
    if frames == 0:
        raise DataError(f"{src}: no frames could be decoded from this video")
    total = shares.sum() or 1.0
    return {
        "input": str(src),
        "frames": frames,
        "flicker": clip.summary()["flicker"],
        "prior": clip.prior,
        **({"overlay": str(video_path)} if "overlay" in writer.save else {}),
        **{k: str(out / FOLDERS[k] / stem) for k in frame_kinds},
        "classes": {writer.meta.classes[c]: round(float(shares[c] / total), 4) for c in np.nonzero(shares)[0]},
    }
