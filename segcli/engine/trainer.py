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
import re
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
from segcli.data.lint import quick_lint
from segcli.data.transforms import build_train_transform
from segcli.engine import distributed as ddp
from segcli.engine.checkpoint import load_state, save_state, save_weights
from segcli.engine.ema import ModelEMA
from segcli.engine.evaluator import confusion_over_loader
from segcli.engine.optim import build_optimizer, lr_factor, set_lr
from segcli.engine.runtime import (
    autocast,
    grad_scaler,
    resolve_amp,
    select_device,
    set_deterministic,
    set_threads,
)
from segcli.errors import PresetError, TrainingError, UserError
from segcli.io_utils import atomic_write_text, next_numbered_dir
from segcli.losses import build_loss, resolve_class_weights
from segcli.models import build_model
from segcli.models.heads import aux_weights_for

METRIC_KEYS = ("mIoU", "pixel_accuracy", "mean_accuracy", "fwIoU", "mean_dice")
CSV_FIELDS = ("epoch", "iterations", "train_loss", "lr", "seconds", *METRIC_KEYS, "ema_mIoU")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)")


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h30m', '1.5h' → seconds (PresetError naming train.time_budget otherwise)."""
    t = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise PresetError(f"train.time_budget = {text!r}: use a duration such as 90s, 15m or 1h30m")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise PresetError(f"train.time_budget = {text!r} must be positive")
    return seconds


def _all_agree(flag: bool, dist: ddp.DistInfo, device: torch.device) -> bool:
    """True on every rank when any rank says so (keeps DDP ranks stepping together)."""
    if not dist.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)  # NCCL reduces device tensors only
    ddp.all_reduce_sum(t, dist)
    return bool(t.item() > 0)


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
    amp = resolve_amp(p.train.amp, device)
    set_threads(p.train.threads)
    set_deterministic(p.train.deterministic)

    splits = [p.data.train_split, p.data.val_split]
    info: DatasetInfo = validate_dataset(p.data.root, splits=splits, sample_masks=0)
    if p.data.check_samples:  # the sampled `seg check`: palette/RGB/binary/raw-labelId masks, bad values, sizes
        for finding in quick_lint(p.data.root, splits, sample=p.data.check_samples):
            rep.message(f"warning: {finding.one_line()}")
    if resume is None:
        run_dir = None
        if dist.is_main:
            run_dir = next_numbered_dir(Path(p.train.out_dir) / (p.train.name or loaded.stem))
            atomic_write_text(run_dir / "preset.toml", preset_to_toml(p, header=f"resolved preset of {run_dir}"))
        run_dir = Path(ddp.broadcast_object(str(run_dir) if run_dir else None, dist))
    log = _Log(run_dir / "log.txt" if dist.is_main else None)
    log(
        f"{'resume' if resume else 'start'}: device={device} amp={amp} channels_last={p.train.channels_last} "
        f"world_size={dist.world_size} argv={' '.join(sys.argv[1:])}"
    )

    _seed_everything(p.train.seed)
    model = build_model(p.model, info.num_classes).to(device)
    for module in model.modules():
        if getattr(module, "load_report", ""):
            rep.message(module.load_report)
            log(module.load_report)
    if dist.enabled and device.type == "cuda" and p.train.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if p.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # a relative class-weights path is relative to the working directory, like data.root
    weights = resolve_class_weights(p.loss.class_weights, info.num_classes)
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
    steps_per_epoch = -(-len(train_loader) // p.train.accumulate)
    if len(train_loader) == 0:
        raise UserError(f"{p.data.root}: training split {p.data.train_split!r} yields no batches")
    budget = parse_duration(p.train.time_budget) if p.train.time_budget else None
    if budget is not None:
        epochs, total_steps = 10**9, None
    elif p.train.iters:
        total_steps = p.train.iters
        epochs = -(-total_steps // steps_per_epoch)
    else:
        epochs, total_steps = p.train.epochs, steps_per_epoch * p.train.epochs

    optimizer = build_optimizer(model, p.optim)
    scaler = grad_scaler(device, amp)
    ema = ModelEMA(model, p.train.ema) if p.train.ema > 0 else None

    first_epoch, step, elapsed_before, best_value, best_row, stale = 0, 0, 0.0, -math.inf, {}, 0
    val_seconds = 0.0
    rows: list[dict[str, Any]] = []
    if resume is not None:
        state = load_state(run_dir / "state.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        first_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        elapsed_before, val_seconds = float(state["elapsed"]), float(state.get("val_seconds", 0.0))
        best_value, stale = float(state["best_value"]), int(state.get("stale", 0))
        best_row = dict(state.get("best_row", {}))
        rows = [r for r in _read_rows(run_dir / "metrics.csv") if int(r["epoch"]) <= first_epoch]
        if dist.is_main:
            _write_rows(run_dir / "metrics.csv", rows)
        if state.get("finished"):
            rep.message(f"{run_dir} already finished")
            first_epoch = epochs

    net: torch.nn.Module = model
    if dist.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if p.train.compile:
        net = torch.compile(net)

    def progress() -> float:
        if budget is not None:
            return (time.perf_counter() - t_run) / max(budget - val_seconds, 1e-9)
        return step / max(total_steps or 1, 1)

    def compute_loss(out: Any, masks: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, dict):
            return criterion(out, masks)
        loss = criterion(out["out"], masks)
        aux = out.get("aux", [])
        for w, logits in zip(aux_weights_for(p.model, len(aux)), aux):
            loss = loss + w * criterion(logits, masks)
        return loss

    rep.start(run_dir, epochs if budget is None else 0, len(train_loader), first_epoch)
    t_run = time.perf_counter() - elapsed_before
    last_row: dict[str, Any] = rows[-1] if rows else {}
    finished = first_epoch >= epochs
    epoch = first_epoch
    while not finished:
        sampler.set_epoch(epoch)
        net.train()
        t_epoch = time.perf_counter()
        loss_sum, loss_n, seen = 0.0, 0, 0
        optimizer.zero_grad(set_to_none=True)
        for it, (images, masks) in enumerate(train_loader):
            lr = set_lr(optimizer, lr_factor(p.schedule, step, progress(), p.optim.lr))
            if hasattr(criterion, "set_progress"):  # e.g. the top-k loss anneals its pixel share
                est_total = total_steps or max(step + 1, round(step / max(progress(), 1e-9)))
                criterion.set_progress(step, est_total)
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True)
            if p.train.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                loss = compute_loss(net(images), masks)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, iteration {it + 1}; "
                    "lower optim.lr, set train.grad_clip, or check the masks with seg check"
                )
            scaler.scale(loss / p.train.accumulate).backward()
            if (it + 1) % p.train.accumulate == 0 or it + 1 == len(train_loader):
                if p.train.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), p.train.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(model)
                step += 1
            loss_sum += loss.item()
            loss_n += 1
            seen += images.shape[0] * dist.world_size
            rep.iteration(epoch, it, loss.item(), lr, seen / (time.perf_counter() - t_epoch))
            if total_steps is not None and step >= total_steps:
                finished = True
                break
            if budget is not None and _all_agree(progress() >= 1.0, dist, device):
                finished = True
                break
        if epoch + 1 >= epochs:
            finished = True

        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "iterations": step,
            "train_loss": loss_sum / max(loss_n, 1),
            "lr": optimizer.param_groups[0]["lr"],
        }
        if (epoch + 1) % p.train.val_every == 0 or finished:
            t_val = time.perf_counter()
            args = (val_loader, info.num_classes, info.ignore_index, device, amp, p.train.channels_last, dist)
            metrics = confusion_over_loader(model, *args).compute(p.eval.absent, info.classes)
            row.update({k: metrics[k] for k in METRIC_KEYS})
            if ema is not None:
                row["ema_mIoU"] = confusion_over_loader(ema.module, *args).compute(p.eval.absent)["mIoU"]
            val_seconds = time.perf_counter() - t_val
            value = row.get(p.train.monitor)
            if value is not None and not math.isnan(value) and value > best_value:
                best_value, best_row, stale = value, dict(row), 0
                improved = True
            else:
                stale, improved = stale + 1, False
            if p.train.patience and stale >= p.train.patience:
                rep.message(f"early stop: {p.train.monitor} did not improve for {stale} validations")
                finished = True
        else:
            improved = False
        row["seconds"] = time.perf_counter() - t_epoch
        if dist.is_main:
            rows.append(row)
            _write_rows(run_dir / "metrics.csv", rows)
            save_weights(run_dir / "weights" / "last.safetensors", model, p, info, epoch + 1, row)
            if improved:
                save_weights(run_dir / "weights" / "best.safetensors", model, p, info, epoch + 1, row)
            if ema is not None and "ema_mIoU" in row:
                save_weights(run_dir / "weights" / "ema.safetensors", ema.module, p, info, epoch + 1, row)
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "epoch": epoch,
                "step": step,
                "elapsed": time.perf_counter() - t_run,
                "val_seconds": val_seconds,
                "best_value": best_value,
                "best_row": best_row,
                "stale": stale,
                "finished": finished,
            }
            if ema is not None:
                state["ema"] = ema.state_dict()
            if device.type == "cuda":
                state["rng_cuda"] = torch.cuda.get_rng_state(device)
            save_state(run_dir / "state.pt", state)
            log(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        ddp.barrier(dist)
        last_row = row
        rep.epoch_end(epoch, row)
        epoch += 1

    ddp.cleanup(dist)
    return TrainResult(
        run_dir,
        int(last_row.get("epoch", 0)),
        best=best_row,
        last=dict(last_row),
        seconds=time.perf_counter() - t_start,
    )
