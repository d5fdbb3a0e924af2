"""Training: one readable loop, a run directory that never overwrites, exact resume.

Run directory ``<train.out_dir>/<name>/<N>/``: ``preset.toml`` (resolved), ``metrics.csv`` (one
row per epoch), ``weights/{last,best}.safetensors``, ``state.pt`` (everything resume needs),
``log.txt``. State is saved at the end of every epoch; ``resume`` continues from the last
finished epoch, and because augmentation and shuffling depend only on (seed, epoch), the
resumed run sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import csv
import io
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from segcli.config.load import LoadedPreset, load_preset, preset_to_toml
from segcli.config.schema import Preset
from segcli.data.datasets import EvalDataset, SeededSampler, TrainDataset, eval_collate
from segcli.data.format import DatasetInfo, validate_dataset
from segcli.data.transforms import build_train_transform
from segcli.engine import distributed as ddp
from segcli.engine.checkpoint import load_state, save_state, save_weights
from segcli.engine.evaluator import confusion_over_loader
from segcli.engine.optim import build_optimizer, build_scheduler
from segcli.engine.runtime import (
    autocast,
    check_amp,
    grad_scaler,
    select_device,
    set_deterministic,
    set_threads,
)
from segcli.errors import PresetError, TrainingError, UserError
from segcli.io_utils import atomic_write_text, next_numbered_dir
from segcli.losses import build_loss, resolve_class_weights
from segcli.models import build_model

METRIC_KEYS = ("mIoU", "pixel_accuracy", "mean_accuracy", "fwIoU", "mean_dice")
CSV_FIELDS = ("epoch", "iterations", "train_loss", "lr", "seconds", *METRIC_KEYS)


class Reporter(Protocol):
    """Receives progress; the CLI shows it with rich, the Python API ignores it by default."""

    def start(self, run_dir: Path, epochs: int, iters_per_epoch: int, first_epoch: int) -> None: ...
    def iteration(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None: ...
    def epoch_end(self, epoch: int, row: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...


class SilentReporter:
    def start(self, run_dir: Path, epochs: int, iters_per_epoch: int, first_epoch: int) -> None:
        pass

    def iteration(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        pass

    def epoch_end(self, epoch: int, row: dict[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        pass


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best: dict[str, Any] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "epochs": self.epochs,
            "best": self.best,
            "last": self.last,
            "seconds": round(self.seconds, 2),
        }


def _validate_preset(p: Preset) -> None:
    """Cross-field checks the schema types cannot express."""
    if len(p.augment.scale) not in (0, 2) or (
        len(p.augment.scale) == 2 and not 0 < p.augment.scale[0] <= p.augment.scale[1]
    ):
        raise PresetError(f"augment.scale = {list(p.augment.scale)} must be [min, max] with 0 < min <= max")
    if len(p.augment.crop_size) not in (0, 1, 2) or any(v < 1 for v in p.augment.crop_size):
        raise PresetError(f"augment.crop_size = {list(p.augment.crop_size)} must be [height, width] of positive sizes")
    if len(p.eval.size) not in (0, 2) or any(v < 1 for v in p.eval.size):
        raise PresetError(f"eval.size = {list(p.eval.size)} must be [] or [height, width]")
    if len(p.model.mean) != 3 or len(p.model.std) != 3 or any(s <= 0 for s in p.model.std):
        raise PresetError("model.mean and model.std need 3 values each (std > 0)")
    if p.train.monitor not in METRIC_KEYS:
        raise PresetError(f"train.monitor = {p.train.monitor!r}; choose one of {', '.join(METRIC_KEYS)}")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [
            {k: (int(v) if k in ("epoch", "iterations") else float(v) if v else None) for k, v in r.items()}
            for r in csv.DictReader(f)
        ]


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


class _Log:
    """Appends lines to run_dir/log.txt (rank 0 only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self, text: str) -> None:
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


def train(
    preset: LoadedPreset | Preset | str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | Path | None = None,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train from a preset (a LoadedPreset, a Preset, a path or a bundled name), or resume a run."""
    t_start = time.perf_counter()
    rep = reporter or SilentReporter()
    if resume is not None:
        run_dir = Path(resume)
        if overrides:
            raise UserError("--resume continues a run exactly as it was; drop the key=value overrides")
        if not (run_dir / "preset.toml").is_file():
            raise UserError(f"{run_dir}: not a run directory (no preset.toml); pass runs/<name>/<N>")
        loaded = load_preset(run_dir / "preset.toml")
    elif isinstance(preset, LoadedPreset):
        loaded = preset
    elif isinstance(preset, Preset):
        loaded = LoadedPreset(preset=preset, path=None)
    else:
        loaded = load_preset(preset, overrides)
    p = loaded.preset
    _validate_preset(p)
    dist = ddp.init_distributed(p.train.device)
    device = select_device(p.train.device, dist.local_rank if dist.enabled else None)
    check_amp(p.train.amp, device)
    set_threads(p.train.threads)
    set_deterministic(p.train.deterministic)

    info: DatasetInfo = validate_dataset(
        p.data.root, splits=[p.data.train_split, p.data.val_split], sample_masks=p.data.check_samples
    )
    if resume is None:
        run_dir = None
        if dist.is_main:
            run_dir = next_numbered_dir(Path(p.train.out_dir) / (p.train.name or loaded.stem))
            atomic_write_text(run_dir / "preset.toml", preset_to_toml(p, header=f"resolved preset of {run_dir}"))
        run_dir = Path(ddp.broadcast_object(str(run_dir) if run_dir else None, dist))
    log = _Log(run_dir / "log.txt" if dist.is_main else None)
    log(
        f"{'resume' if resume else 'start'}: device={device} world_size={dist.world_size} argv={' '.join(sys.argv[1:])}"
    )

    _seed_everything(p.train.seed)
    model = build_model(p.model, info.num_classes).to(device)
    if p.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    weights = resolve_class_weights(
        p.loss.class_weights, info.num_classes, base=loaded.path.parent if loaded.path else "."
    )
    criterion = build_loss(p.loss, info.num_classes, info.ignore_index, weights).to(device)

    train_ds = TrainDataset(p.data.root, p.data.train_split, build_train_transform(p.augment, info.ignore_index))
    sampler = SeededSampler(len(train_ds), p.train.seed, shuffle=True, rank=dist.rank, world_size=dist.world_size)
    pin = p.data.pin_memory and device.type == "cuda"
    train_loader = DataLoader(
        train_ds,
        batch_size=p.data.batch_size,
        sampler=sampler,
        num_workers=p.data.num_workers,
        pin_memory=pin,
        drop_last=len(sampler) > p.data.batch_size,
        persistent_workers=False,
    )
    val_ds = EvalDataset(p.data.root, p.data.val_split, p.eval.size)
    val_idx = list(range(dist.rank, len(val_ds), dist.world_size))
    val_loader = DataLoader(
        torch.utils.data.Subset(val_ds, val_idx),
        batch_size=p.eval.batch_size,
        shuffle=False,
        num_workers=p.data.num_workers,
        collate_fn=eval_collate,
        pin_memory=pin,
    )
    iters_per_epoch = len(train_loader)
    if iters_per_epoch == 0:
        raise UserError(f"{p.data.root}: training split {p.data.train_split!r} yields no batches")
    total_iters = iters_per_epoch * p.train.epochs

    optimizer = build_optimizer(model, p.optim)
    scheduler = build_scheduler(optimizer, p.schedule, total_iters, p.optim.lr)
    scaler = grad_scaler(device, p.train.amp)

    first_epoch, best_value, best_row = 0, -math.inf, {}
    rows: list[dict[str, Any]] = []
    if resume is not None:
        state = load_state(run_dir / "state.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        first_epoch = int(state["epoch"]) + 1
        best_value = float(state["best_value"])
        best_row = dict(state.get("best_row", {}))
        rows = [r for r in _read_rows(run_dir / "metrics.csv") if int(r["epoch"]) <= int(state["epoch"]) + 1]
        if dist.is_main:
            _write_rows(run_dir / "metrics.csv", rows)
        if first_epoch >= p.train.epochs:
            rep.message(f"{run_dir} already finished all {p.train.epochs} epochs")

    net: torch.nn.Module = model
    if dist.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    rep.start(run_dir, p.train.epochs, iters_per_epoch, first_epoch)
    last_row: dict[str, Any] = rows[-1] if rows else {}
    for epoch in range(first_epoch, p.train.epochs):
        sampler.set_epoch(epoch)
        net.train()
        t_epoch = time.perf_counter()
        loss_sum, loss_n, seen = 0.0, 0, 0
        for it, (images, masks) in enumerate(train_loader):
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True)
            if p.train.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, p.train.amp):
                out = net(images)
                logits = out["out"] if isinstance(out, dict) else out
                loss = criterion(logits, masks)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, iteration {it + 1}; "
                    "lower optim.lr, set train.grad_clip, or check the masks with seg check"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if p.train.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), p.train.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.item()
            loss_n += 1
            seen += images.shape[0] * dist.world_size
            rep.iteration(
                epoch, it, loss.item(), optimizer.param_groups[0]["lr"], seen / (time.perf_counter() - t_epoch)
            )

        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "iterations": (epoch + 1) * iters_per_epoch,
            "train_loss": loss_sum / max(loss_n, 1),
            "lr": optimizer.param_groups[0]["lr"],
        }
        if (epoch + 1) % p.train.val_every == 0 or epoch + 1 == p.train.epochs:
            cm = confusion_over_loader(
                model,
                val_loader,
                info.num_classes,
                info.ignore_index,
                device,
                p.train.amp,
                p.train.channels_last,
                dist,
            )
            metrics = cm.compute(p.eval.absent, info.classes)
            row.update({k: metrics[k] for k in METRIC_KEYS})
        row["seconds"] = time.perf_counter() - t_epoch
        if dist.is_main:
            rows.append(row)
            _write_rows(run_dir / "metrics.csv", rows)
            save_weights(run_dir / "weights" / "last.safetensors", model, p, info, epoch + 1, row)
            value = row.get(p.train.monitor)
            if value is not None and not math.isnan(value) and value > best_value:
                best_value, best_row = value, dict(row)
                save_weights(run_dir / "weights" / "best.safetensors", model, p, info, epoch + 1, row)
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "epoch": epoch,
                "best_value": best_value,
                "best_row": best_row,
            }
            if device.type == "cuda":
                state["rng_cuda"] = torch.cuda.get_rng_state(device)
            save_state(run_dir / "state.pt", state)
            log(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        ddp.barrier(dist)
        last_row = row
        rep.epoch_end(epoch, row)

    ddp.cleanup(dist)
    return TrainResult(
        run_dir, p.train.epochs, best=best_row, last=dict(last_row), seconds=time.perf_counter() - t_start
    )
