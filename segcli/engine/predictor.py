"""Prediction: images and videos → palette PNG masks, colour overlays, raw ids and probabilities.

Batched through the prediction core (:mod:`segcli.engine.predict_core`): a thread pool decodes and
resizes the next images while the model runs, and encodes and writes the outputs of the previous batch,
so the model never waits on disk.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from segcli.data.datasets import image_to_tensor
from segcli.data.io import IMAGE_EXTS, list_images, read_image, write_image, write_mask, write_palette_mask
from segcli.data.transforms import inference_size, resize_pair
from segcli.engine.backends import load_inference_model
from segcli.engine.predict_core import Protocol, class_ids, predict_images, setup_prediction
from segcli.engine.rundir import resolve_weights
from segcli.engine.runtime import resolve_amp, select_device
from segcli.errors import DataError, UserError
from segcli.io_utils import atomic_write, require_folder

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
SAVE_KINDS = ("mask", "overlay", "ids", "probs")


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


def overlay(
    image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5, alpha_bg: float | None = None
) -> np.ndarray:
    """Blend class colours onto the image (class 0 with ``alpha_bg`` when given: 0 leaves it untinted)."""
    colours = palette[np.clip(mask, 0, len(palette) - 1)].astype(np.float32)
    a = np.full(mask.shape + (1,), alpha, dtype=np.float32)
    if alpha_bg is not None:
        a[mask == 0] = alpha_bg
    return (image.astype(np.float32) * (1 - a) + colours * a + 0.5).astype(np.uint8)


@dataclass
class PredictResult:
    out_dir: Path
    weights: Path
    outputs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # inputs whose outputs were already there
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "weights": str(self.weights),
            "images": len(self.outputs),
            "skipped": len(self.skipped),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(len(self.outputs) / self.seconds, 2) if self.seconds > 0 else None,
            "outputs": self.outputs,
        }


def parse_save(save: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"mask,overlay"`` → ("mask", "overlay"); an unknown kind is a UserError naming ``--save``."""
    kinds = [k.strip() for k in (save.split(",") if isinstance(save, str) else save) if k.strip()]
    bad = [k for k in kinds if k not in SAVE_KINDS]
    if bad or not kinds:
        raise UserError(f"--save {','.join(kinds)}: choose from {', '.join(SAVE_KINDS)} (comma-separated)")
    return tuple(dict.fromkeys(kinds))


class _Writer:
    """Encodes and writes one image's outputs (runs in the thread pool)."""

    def __init__(self, meta: Any, save: tuple[str, ...], alpha: float, alpha_bg: float | None, tta: bool) -> None:
        self.meta, self.save, self.alpha, self.alpha_bg, self.tta = meta, save, alpha, alpha_bg, tta
        self.palette = np.array(meta.palette, dtype=np.uint8)
        self.id_dtype = np.uint8 if meta.num_classes <= 256 else np.uint16

    def paths(self, out: Path, stem: str) -> dict[str, Path]:
        ext = {"mask": ".png", "overlay": ".jpg", "ids": ".png", "probs": ".npy"}
        folder = {"mask": "masks", "overlay": "overlays", "ids": "ids", "probs": "probs"}
        return {k: out / folder[k] / f"{stem}{ext[k]}" for k in self.save}

    def write(
        self, image: np.ndarray, mask: np.ndarray, probs: np.ndarray | None, paths: dict[str, Path], keep: bool
    ) -> None:
        for kind, path in paths.items():
            if keep and path.exists():
                continue
            if kind == "mask":
                if self.id_dtype is np.uint8:
                    write_palette_mask(path, mask.astype(np.uint8), self.meta.palette)
                else:  # a palette PNG holds 256 ids at most
                    write_mask(path, mask.astype(np.uint16))
            elif kind == "ids":
                write_mask(path, mask.astype(self.id_dtype))
            elif kind == "overlay":
                write_image(path, overlay(image, mask, self.palette, self.alpha, self.alpha_bg))
            elif kind == "probs":
                arr = probs if probs is not None else np.zeros(0, np.float16)
                atomic_write(path, lambda tmp, a=arr: np.save(tmp, a), suffix=".npy")

    def shares(self, mask: np.ndarray) -> dict[str, float]:
        counts = np.bincount(mask.ravel(), minlength=self.meta.num_classes)
        return {self.meta.classes[c]: round(float(counts[c]) / mask.size, 4) for c in np.nonzero(counts)[0]}


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


def _probabilities(scores: torch.Tensor, tta: bool) -> torch.Tensor:
    return scores if tta else scores.softmax(0)


def _decode(src: Path, size: tuple[int, ...], keep_ratio: tuple[int, ...]) -> tuple[np.ndarray, torch.Tensor]:
    """The image and its model input (resized to the test-time size), on a pool thread."""
    image = read_image(src)
    return image, _model_input(image, size, keep_ratio)


def _model_input(image: np.ndarray, size: tuple[int, ...], keep_ratio: tuple[int, ...]) -> torch.Tensor:
    h, w = image.shape[:2]
    target = inference_size(h, w, size, keep_ratio)
    x = resize_pair(image, None, target)[0] if target != (h, w) else image
    return image_to_tensor(x)


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


def _run_batch(
    model: torch.nn.Module, batch: list, proto: Protocol, dev: torch.device, want_probs: bool
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(mask, float16 probabilities or None) per image of a batch, at each original image's size."""
    x = torch.stack([b[2] for b in batch])
    if dev.type == "cuda" and not proto.slide:
        x = x.pin_memory()
    sizes = [tuple(b[1].shape[:2]) for b in batch]
    scores = predict_images(model, x, sizes, proto, dev)
    out = []
    for sc in scores:
        mask = class_ids(sc).cpu().numpy()
        probs = _probabilities(sc, proto.tta).to(torch.float16).cpu().numpy() if want_probs else None
        out.append((mask, probs))
    return out


def predict(
    weights_or_run: str | os.PathLike,
    inputs: list[str] | tuple[str, ...],
    out_dir: str | os.PathLike,
    device: str = "auto",
    size: tuple[int, ...] | None = None,
    amp: str | None = None,
    overwrite: bool = False,
    on_image: Callable[[int, int, Path], None] | None = None,
    skip_existing: bool = False,
    *,
    save: str | tuple[str, ...] = ("mask", "overlay"),
    alpha: float = 0.5,
    alpha_bg: float | None = None,
    slide: bool | None = None,
    tile: tuple[int, ...] | None = None,
    stride: tuple[int, ...] | None = None,
    tta: bool | None = None,
    tta_scales: tuple[float, ...] | None = None,
    batch_size: int = 8,
    workers: int = 0,
) -> PredictResult:
    """Predict every input image or video frame; write what ``save`` asks for under ``out_dir``:
    ``masks/<stem>.png`` (palette), ``overlays/<stem>.jpg``, ``ids/<stem>.png`` (grey, uint16 above 256
    classes), ``probs/<stem>.npy`` (float16, classes first). A video ``clip.mp4`` gives
    ``masks/clip/<frame>.png`` ... per frame and ``overlays/clip.mp4``.

    Existing outputs are an error unless ``overwrite`` (replace them) or ``skip_existing`` (keep
    them and write only what is missing: an interrupted run continues where it stopped).
    """
    t0 = time.perf_counter()
    if overwrite and skip_existing:
        raise UserError("--overwrite and --skip-existing contradict each other; pass one of them")
    kinds = parse_save(save)
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"--alpha {alpha}: give a blend weight in [0, 1]")
    if alpha_bg is not None and not 0.0 <= alpha_bg <= 1.0:
        raise UserError(f"--alpha-bg {alpha_bg}: give a blend weight in [0, 1]")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: give 1 or more")
    weights = resolve_weights(weights_or_run)
    dev = select_device(device, option="--device")
    if amp is not None:
        resolve_amp(amp, dev, option="--amp")  # a bad --amp fails before the model loads
    paths = expand_inputs(inputs)
    out = require_folder(out_dir)
    model, meta = load_inference_model(weights, dev)
    proto, eval_size, keep_ratio = setup_prediction(
        model,
        meta.preset,
        dev,
        amp=amp,
        size=size,
        slide=slide,
        tile=tile,
        stride=stride,
        tta=tta,
        tta_scales=tta_scales,
    )
    writer = _Writer(meta, kinds, alpha, alpha_bg, proto.tta)
    stems: dict[str, int] = {}
    plan = []
    for p in paths:
        n = stems.get(p.stem, 0)
        stems[p.stem] = n + 1
        stem = p.stem if n == 0 else f"{p.stem}_{n + 1}"
        plan.append((p, stem))
    if not overwrite and not skip_existing:
        clash = [str(f) for p, stem in plan for f in _planned_files(writer, out, p, stem) if f.exists()]
        if clash:
            raise UserError(
                f"{clash[0]} exists ({len(clash)} output files would be replaced); pass --overwrite, "
                "--skip-existing (continue an interrupted run) or another --out"
            )
    result = PredictResult(out, weights)
    images = [(p, stem) for p, stem in plan if not is_video(p)]
    videos = [(p, stem) for p, stem in plan if is_video(p)]
    threads = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        todo = []
        for i, (src, stem) in enumerate(images):
            files = writer.paths(out, stem)
            if skip_existing and all(f.exists() for f in files.values()):
                result.skipped.append(str(src))
                if on_image is not None:
                    on_image(i, len(plan), src)
                continue
            todo.append((src, files))
        # decode ahead (bounded), predict in batches, write behind (bounded)
        ahead = max(2 * batch_size, threads)
        decoded = _prefetch(pool, todo, lambda item: _decode(item[0], eval_size, keep_ratio), ahead)
        pending: deque[Future] = deque()
        done = len(result.skipped)
        for batch in _batches(decoded, batch_size):
            for (item, image, _), (mask, probs) in zip(batch, _run_batch(model, batch, proto, dev, "probs" in kinds)):
                src, files = item
                entry = {"input": str(src), **{k: str(v) for k, v in files.items()}}
                result.outputs.append(entry)
                pending.append(pool.submit(_write_entry, writer, entry, image, mask, probs, files, skip_existing))
                if on_image is not None:
                    on_image(done, len(plan), src)
                done += 1
            while len(pending) > ahead:
                pending.popleft().result()
        for f in pending:
            f.result()
        for src, stem in videos:
            result.outputs.append(
                _predict_video(src, stem, out, model, proto, dev, writer, pool, batch_size, eval_size, keep_ratio)
            )
            if on_image is not None:
                on_image(done, len(plan), src)
            done += 1
    result.seconds = time.perf_counter() - t0
    return result


def _planned_files(writer: _Writer, out: Path, src: Path, stem: str) -> list[Path]:
    if not is_video(src):
        return list(writer.paths(out, stem).values())
    return [out / "overlays" / f"{stem}.mp4", out / "masks" / stem, out / "ids" / stem, out / "probs" / stem]


def _prefetch(pool: ThreadPoolExecutor, items: list, fn: Callable, ahead: int) -> Iterator[tuple[Any, Future]]:
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


def _predict_video(
    src: Path,
    stem: str,
    out: Path,
    model: torch.nn.Module,
    proto: Protocol,
    dev: torch.device,
    writer: _Writer,
    pool: ThreadPoolExecutor,
    batch_size: int,
    size: tuple[int, ...],
    keep_ratio: tuple[int, ...],
) -> dict[str, Any]:
    """Frame by frame: per-frame outputs in ``<kind>/<stem>/<frame>``, and an overlay video ``overlays/<stem>.mp4``."""
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
            raise DataError(f"{video_path}: OpenCV cannot write an mp4v video here; leave overlay out of --save")
    frames = 0
    shares = np.zeros(writer.meta.num_classes)
    pending: deque[Future] = deque()

    def decoded() -> Iterator[tuple[Any, Future]]:
        for k, frame in enumerate(_frames(src)):
            fut: Future = Future()
            fut.set_result((frame, _model_input(frame, size, keep_ratio)))
            yield k, fut

    try:
        for batch in _batches(decoded(), batch_size):
            for (k, frame, _), (mask, probs) in zip(
                batch, _run_batch(model, batch, proto, dev, "probs" in frame_kinds)
            ):
                files = {
                    kind: p.parent / stem / f"{k:06d}{p.suffix}"
                    for kind, p in writer.paths(out, "x").items()
                    if kind != "overlay"
                }
                pending.append(pool.submit(writer.write, frame, mask, probs, files, False))
                shares += np.bincount(mask.ravel(), minlength=writer.meta.num_classes)[: writer.meta.num_classes]
                if video is not None:
                    blended = overlay(frame, mask, writer.palette, writer.alpha, writer.alpha_bg)
                    video.write(cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))
                frames += 1
            while len(pending) > 2 * batch_size:
                pending.popleft().result()
        for f in pending:
            f.result()
        if video is not None:
            video.release()
            video = None
            os.replace(tmp, video_path)
    finally:
        if video is not None:
            video.release()
        tmp.unlink(missing_ok=True)
    if frames == 0:
        raise DataError(f"{src}: no frames could be decoded from this video")
    total = shares.sum() or 1.0
    return {
        "input": str(src),
        "frames": frames,
        **({"overlay": str(video_path)} if "overlay" in writer.save else {}),
        **{k: str(out / {"mask": "masks", "ids": "ids", "probs": "probs"}[k] / stem) for k in frame_kinds},
        "classes": {writer.meta.classes[c]: round(float(shares[c] / total), 4) for c in np.nonzero(shares)[0]},
    }
