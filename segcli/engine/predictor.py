"""Prediction: images → palette PNG masks and colour overlays."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segcli.data.datasets import image_to_tensor
from segcli.data.io import IMAGE_EXTS, list_images, read_image, write_image, write_palette_mask
from segcli.data.transforms import resize_pair
from segcli.engine.checkpoint import build_from_weights
from segcli.engine.evaluator import predict_logits
from segcli.engine.rundir import resolve_weights
from segcli.engine.runtime import resolve_amp, select_device
from segcli.errors import DataError, UserError
from segcli.io_utils import require_folder


def expand_inputs(inputs: list[str] | tuple[str, ...]) -> list[Path]:
    """Files, folders (their images) and glob patterns → image paths, in order, without repeats."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            imgs = list_images(p)
            if not imgs:
                raise DataError(f"{p}: folder has no images ({', '.join(IMAGE_EXTS)})")
            found += imgs
        elif p.is_file():
            found.append(p)
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).suffix.lower() in IMAGE_EXTS)
            if not matches:
                raise DataError(f"{item}: pattern matches no images")
            found += matches
        else:
            raise DataError(f"{item}: no such file, folder or pattern")
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours onto the image."""
    colours = palette[np.clip(mask, 0, len(palette) - 1)]
    return (image.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha).astype(np.uint8)


@dataclass
class PredictResult:
    out_dir: Path
    weights: Path
    outputs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # inputs whose outputs were already there

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "weights": str(self.weights),
            "images": len(self.outputs),
            "skipped": len(self.skipped),
            "outputs": self.outputs,
        }


def predict(
    weights_or_run: str | os.PathLike,
    inputs: list[str] | tuple[str, ...],
    out_dir: str | os.PathLike,
    device: str = "auto",
    size: tuple[int, ...] | None = None,
    amp: str = "none",
    overwrite: bool = False,
    on_image: Callable[[int, int, Path], None] | None = None,
    skip_existing: bool = False,
) -> PredictResult:
    """Predict every input image; write ``masks/<stem>.png`` (palette) and ``overlays/<stem>.jpg``.

    Existing outputs are an error unless ``overwrite`` (replace them) or ``skip_existing`` (keep
    them and write only what is missing: an interrupted run continues where it stopped).
    """
    if overwrite and skip_existing:
        raise UserError("--overwrite and --skip-existing contradict each other; pass one of them")
    weights = resolve_weights(weights_or_run)
    dev = select_device(device, option="--device")
    amp = resolve_amp(amp, dev, option="--amp")
    paths = expand_inputs(inputs)
    out = require_folder(out_dir)
    stems: dict[str, int] = {}
    plan = []
    for p in paths:
        n = stems.get(p.stem, 0)
        stems[p.stem] = n + 1
        stem = p.stem if n == 0 else f"{p.stem}_{n + 1}"
        plan.append((p, out / "masks" / f"{stem}.png", out / "overlays" / f"{stem}.jpg"))
    if not overwrite and not skip_existing:
        clash = [str(f) for _, m, o in plan for f in (m, o) if f.exists()]
        if clash:
            raise UserError(
                f"{clash[0]} exists ({len(clash)} output files would be replaced); pass --overwrite, "
                "--skip-existing (continue an interrupted run) or another --out"
            )
    model, meta = build_from_weights(weights, dev)
    palette = np.array(meta.palette, dtype=np.uint8)
    eval_size = tuple(size) if size is not None else tuple(meta.preset.eval.size)
    result = PredictResult(out, weights)
    for i, (src, mask_path, overlay_path) in enumerate(plan):
        if skip_existing and mask_path.exists() and overlay_path.exists():
            result.skipped.append(str(src))
            if on_image is not None:
                on_image(i, len(plan), src)
            continue
        image = read_image(src)
        h, w = image.shape[:2]
        x = resize_pair(image, None, (eval_size[0], eval_size[1]))[0] if eval_size else image
        logits = predict_logits(model, image_to_tensor(x)[None], [(h, w)], dev, amp)[0]
        mask = logits.argmax(0).cpu().numpy().astype(np.uint8)
        if not (skip_existing and mask_path.exists()):
            write_palette_mask(mask_path, mask, meta.palette)
        if not (skip_existing and overlay_path.exists()):
            write_image(overlay_path, overlay(image, mask, palette))
        counts = np.bincount(mask.ravel(), minlength=meta.num_classes)
        result.outputs.append(
            {
                "input": str(src),
                "mask": str(mask_path),
                "overlay": str(overlay_path),
                "classes": {meta.classes[c]: round(float(counts[c]) / mask.size, 4) for c in np.nonzero(counts)[0]},
            }
        )
        if on_image is not None:
            on_image(i, len(plan), src)
    return result
