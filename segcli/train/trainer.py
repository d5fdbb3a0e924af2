"""Training: build everything, then ``for epoch: train_one_epoch(); validate(); save()``.

The run directory (:class:`~segcli.core.rundir.RunDir`) is created only after the data, model,
loss and optimiser are built, so a bad preset leaves nothing behind. Resume state is one
:class:`~segcli.train.state.TrainState`; because augmentation and shuffling depend only on
(seed, epoch, position), a resumed run sees exactly the batches the uninterrupted run would have.

Saves happen at epoch ends and, with ``train.save_every``, every N iterations inside an epoch (at
least ``train.save_min_seconds`` apart); a mid-epoch save records the position, and resume continues
from the next batch (:meth:`SeededSampler.set_epoch` with ``start``). metrics.csv gets one row per
epoch, at its end. Under a time budget the schedule runs on the budget less a reserve for the final
validation, estimated before the first step (:meth:`Trainer.estimate_reserve`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from segcli.config.load import LoadedPreset, load_preset, preset_from_dict, preset_to_toml
from segcli.config.schema import METRIC_KEYS, Preset
from segcli.config.toml_io import load_toml
from segcli.config.validate import backbone_norm, channel_norm, validate_preset
from segcli.core import distributed as ddp
from segcli.core.callbacks import Callback, CallbackList, IterStats, LogFile, RunStart, ValEnd
from segcli.core.checkpoint import load_state, state_writer, weights_writer
from segcli.core.factory import aux_weights, class_weights_from_preset, loss_from_preset, model_from_preset
from segcli.core.rundir import RunDir
from segcli.core.runlock import RunLock
from segcli.core.runtime import autocast, grad_scaler, resolve_amp, select_device, set_deterministic, set_threads
from segcli.data.datasets import (
    EvalDataset,
    SeededSampler,
    TrainDataset,
    cache_bytes,
    decode_all,
    eval_collate,
    resolve_workers,
    worker_init,
)
from segcli.data.format import DataFingerprint, DatasetIndex, DatasetInfo, validate_dataset
from segcli.data.lint import quick_lint
from segcli.data.prior import WithPrior
from segcli.data.stats import LabelStats, split_label_stats
from segcli.data.transforms import build_train_transform
from segcli.errors import CheckpointError, TrainingError, TrainingInterrupted, UserError, from_os_error
from segcli.infer.evaluator import confusion_over_loader, confusion_with
from segcli.infer.protocol import PredictionProtocol
from segcli.losses.outputs import output_loss
from segcli.metrics import ConfusionMatrix
from segcli.report.loggers import make_loggers
from segcli.report.plots import Plots
from segcli.report.run_report import RunReport
from segcli.report.textlog import ProgressLines
from segcli.train.auto_recipe import auto_preset
from segcli.train.budget import estimate_save_seconds, subsample_indices, warmup_warning
from segcli.train.commit import InterruptedAfterSave, commit, recover
from segcli.train.distill import Teacher, check_resumed_teacher, load_teacher
from segcli.train.ema import ModelEMA, TailAverage
from segcli.train.extend import Extension, extend_preset
from segcli.train.failures import is_out_of_memory, out_of_memory
from segcli.train.init_from import init_lines
from segcli.train.meters import LossMeter, ValLoss
from segcli.train.optim import batch_lr_scale, build_optimizer, lr_factor, set_lr
from segcli.train.pacer import Pacer, Plan
from segcli.train.state import TrainState

__all__ = ["TrainResult", "Trainer", "train"]

clock = time.perf_counter  # the trainer's only clock (tests drive time budgets with a fake one)


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best: dict[str, Any] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)  # seconds per activity (budget.Ledger.shares)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "epochs": self.epochs,
            "best": self.best,
            "last": self.last,
            "seconds": round(self.seconds, 2),
            "timing": {k: round(v, 3) for k, v in self.timing.items()},
        }


# ----------------------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Runtime:
    """Where this process trains: DDP rank, device, autocast precision."""

    dist: ddp.DistInfo
    device: torch.device
    amp: str
    batch: int  # images per step on this device: data.batch_size (the global batch) / world size

    def describe(self, p: Preset) -> str:
        lr = p.optim.lr * batch_lr_scale(p.optim, p.data.batch_size)
        return (
            f"device={self.device} amp={self.amp} channels_last={p.train.channels_last} "
            f"world_size={self.dist.world_size} batch={p.data.batch_size} per_device_batch={self.batch} "
            f"accumulate={p.train.accumulate} lr={lr:g} argv={' '.join(sys.argv[1:])}"
        )


def setup_runtime(p: Preset) -> Runtime:
    dist = ddp.init_distributed(p.train.device)
    batch = ddp.per_device_batch(p.data.batch_size, dist)
    device = select_device(p.train.device, dist.local_rank if dist.enabled else None)
    set_threads(p.train.threads)
    set_deterministic(p.train.deterministic)
    return Runtime(dist, device, resolve_amp(p.train.amp, device), batch)


@dataclass
class Data:
    """The dataset's description and the train/val loaders of this process."""

    info: DatasetInfo
    train_loader: DataLoader
    sampler: SeededSampler
    val_loader: DataLoader
    messages: list[str]  # lint warnings and what the data path set up, printed at the start
    fingerprint: DataFingerprint | None = None  # stored in every checkpoint (seg eval finds and checks the data)


def loader_options(workers: int, pin: bool) -> dict[str, Any]:
    """Workers that live for the whole run (not restarted every epoch), each prefetching a few batches
    and running OpenCV single-threaded; pinned host memory for asynchronous copies to CUDA."""
    if workers == 0:
        return {"num_workers": 0, "pin_memory": pin}
    return {
        "num_workers": workers,
        "pin_memory": pin,
        "persistent_workers": True,
        "prefetch_factor": 4,
        "worker_init_fn": worker_init,
    }


def stop_workers(*loaders: DataLoader) -> None:
    """Stop the loaders' persistent worker processes now, not when the loaders become garbage.

    A reference cycle anywhere on the training stack (an exception object kept by a plotting library is
    enough) keeps the loaders alive until the garbage collector runs, or until interpreter exit, where
    torch 2.11 joins each worker with a 5-second timeout one after another: a 15 + 15 worker run under
    torchrun on a GPU host took 2.5 minutes to exit after its last line. DataLoader has no public close;
    its iterator's own shutdown is used when present (a torch without it falls back to the old behaviour).
    """
    for loader in loaders:
        iterator = getattr(loader, "_iterator", None)
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if callable(shutdown):
            shutdown()
            loader._iterator = None


def guessed_normalisation(p: Preset) -> list[str]:
    """A warning when N-channel data (``data.channels`` other than 3) is normalised with the guess "auto" falls
    back on (the backbone's RGB values, 0.5/0.25 for the other channels): its dataset.toml had no statistics."""
    n = p.data.channels
    if n == 3 or (p.model.mean, p.model.std) != channel_norm(backbone_norm(p.model), n):
        return []
    return [
        f"warning: model.mean/std of the {n}-channel data are a guess ({list(p.model.mean)}, {list(p.model.std)}): "
        f"{p.data.root}/dataset.toml holds no statistics; `seg check --stats {p.data.root}` records them"
    ]


def build_data(p: Preset, rt: Runtime) -> Data:
    """Scan the dataset once, check it (format, then the sampled lint) and build this rank's loaders."""
    splits = [p.data.train_split, p.data.val_split]
    index = DatasetIndex.scan(p.data.root, splits).with_channels(p.data.channels, "data.channels =")
    info = validate_dataset(index, splits=splits, sample_masks=0)
    messages = []
    if p.data.check_samples:  # the sampled `seg check`: palette/RGB/binary/raw-labelId masks, bad values, sizes
        messages = [f"warning: {f.one_line()}" for f in quick_lint(index, splits, sample=p.data.check_samples)]
    messages += guessed_normalisation(p)
    workers = resolve_workers(p.data.num_workers, rt.dist.local_world_size)
    cache = None
    if p.data.cache == "ram":  # decoded before the workers fork, so they share it
        cache = decode_all(index.pairs(p.data.train_split), info, threads=workers + 1)
        messages.append(
            f"data cache: {len(cache)} training samples decoded in RAM, {cache_bytes(cache) / 2**20:.1f} MiB"
        )
    transform = build_train_transform(p.augment, info.ignore_index)
    if p.model.prior == "mask":  # the image gets a spoilt copy of its mask as one more channel (segcli.data.prior)
        transform = WithPrior(transform, info.num_classes, info.ignore_index)
    train_ds = TrainDataset(index, p.data.train_split, transform, cache)
    rank, world = rt.dist.rank, rt.dist.world_size
    sampler = SeededSampler(len(train_ds), p.train.seed, shuffle=True, rank=rank, world_size=world)
    options = loader_options(workers, pin=p.data.pin_memory and rt.device.type == "cuda")
    train_loader = DataLoader(
        train_ds, batch_size=rt.batch, sampler=sampler, drop_last=len(sampler) > rt.batch, **options
    )
    if len(train_loader) == 0:
        raise UserError(f"{p.data.root}: training split {p.data.train_split!r} yields no batches")
    val_ds = EvalDataset(index, p.data.val_split, p.eval.size, p.eval.keep_ratio)  # as seg eval resizes
    val_loader = DataLoader(
        torch.utils.data.Subset(val_ds, list(range(rank, len(val_ds), world))),
        batch_size=p.eval.batch_size,
        collate_fn=eval_collate,
        **options,
    )
    messages.append(f"data: {workers} loader worker(s) per process (data.num_workers = {p.data.num_workers!r})")
    return Data(info, train_loader, sampler, val_loader, messages, DataFingerprint.of(index))


def build_state(
    p: Preset, info: DatasetInfo, rt: Runtime, resuming: bool = False
) -> tuple[TrainState, torch.nn.Module, list[str]]:
    """Model, optimiser, scaler and EMA (as a TrainState), the loss, and the model's load reports.

    ``resuming``: the state restored next replaces the weights, so ``model.init_from`` is not read.
    """
    random.seed(p.train.seed)
    np.random.seed(p.train.seed % 2**32)
    torch.manual_seed(p.train.seed)
    model = model_from_preset(p.model, info.num_classes).to(rt.device)
    reports = [m.load_report for m in model.modules() if getattr(m, "load_report", "")]
    reports += [] if resuming else init_lines(model, p.model.init_from)
    if rt.dist.enabled and rt.device.type == "cuda" and p.train.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if p.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # a relative class-weights path is relative to the working directory, like data.root
    weights = class_weights_from_preset(p.loss, info.num_classes)
    criterion = loss_from_preset(p.loss, info.num_classes, info.ignore_index, weights).to(rt.device)
    state = TrainState(
        model=model,
        optimizer=build_optimizer(model, p.optim),
        scaler=grad_scaler(rt.device, rt.amp),
        ema=ModelEMA(model, p.train.ema) if p.train.ema > 0 else None,
        device=rt.device,
        average=TailAverage(p.train.average, p.train.average_from) if p.train.average != "none" else None,
    )
    return state, criterion, reports


def _open_or_create_run(
    loaded: LoadedPreset, resume: RunDir | None, dist: ddp.DistInfo
) -> tuple[RunDir, contextlib.AbstractContextManager]:
    """The resumed run, or a new numbered one made by rank 0 and shared with the other ranks; and the run's
    lock (:class:`RunLock`, taken by rank 0 before it writes anything), released when its context ends.

    A run another process is writing is refused on every rank with one line.
    """
    p, path, refused, lock = loaded.preset, None, None, contextlib.nullcontext()
    if dist.is_main:
        try:
            run = resume or RunDir.create(p.train.out_dir, p.train.name or loaded.stem)
            lock = RunLock.acquire(run)
            path = str(run.path)
        except (UserError, OSError) as e:  # told to every rank, so that none waits for rank 0
            user = e if isinstance(e, UserError) else from_os_error(e)  # a read-only or full run folder
            if user is None:
                raise
            refused = str(user)
        if refused is None and resume is None:
            with _released_on_error(lock):
                run.write_preset(preset_to_toml(p, header=f"resolved preset of {run.path}"))
    path, refused = ddp.broadcast_object((path, refused), dist)
    if refused is not None:
        raise UserError(refused)
    return RunDir(Path(path)), lock


@contextlib.contextmanager
def _released_on_error(lock: contextlib.AbstractContextManager) -> Iterator[None]:
    try:
        yield
    except BaseException:
        lock.__exit__(None, None, None)
        raise


# ----------------------------------------------------------------------------------------- the loop


class TimedIter:
    """Wraps a loader iterator; ``waited`` is the time spent waiting for batches (the data-wait share)."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches, self.waited = iter(batches), 0.0

    def __iter__(self) -> TimedIter:
        return self

    def __next__(self) -> Any:
        t0 = clock()
        try:
            return next(self.batches)
        finally:
            self.waited += clock() - t0


class Trainer:
    """One run's loop: :meth:`train_one_epoch`, :meth:`validate` and :meth:`save`, epoch after epoch."""

    def __init__(
        self,
        p: Preset,
        rt: Runtime,
        data: Data,
        state: TrainState,
        criterion: torch.nn.Module,
        run: RunDir,
        callbacks: CallbackList,
        rows: list[dict[str, Any]],
    ) -> None:
        self.p, self.rt, self.data, self.state, self.criterion = p, rt, data, state, criterion
        self.plan = plan = Plan.of(p.train, len(data.train_loader))  # how long: epochs, steps or a time budget
        self.run, self.cb, self.rows = run, callbacks, rows
        self.net: torch.nn.Module = state.model
        self.ddp: DistributedDataParallel | None = None
        if rt.dist.enabled:
            self.net = self.ddp = DistributedDataParallel(
                state.model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
            )
        if p.train.compile:
            self.net = torch.compile(self.net)
        self.lr_scale = batch_lr_scale(p.optim, p.data.batch_size)  # optim.scale_lr_with_batch (1 when off)
        self.aux_weights = aux_weights(p.model)  # one weight per auxiliary output, checked at load
        self.last: dict[str, Any] = dict(rows[-1]) if rows else {}
        self.saved = len(rows)  # epochs whose metrics row is on disk (what an interruption's log line says)
        self.pacer = Pacer(p.train, plan, state.progress, rt.dist, rt.device, clock)  # what is due when
        self.t_epoch = clock()
        self.terms: dict[str, torch.Tensor] = {}  # the last training loss per term (CombinedLoss.last_terms)
        self.meter = LossMeter(rt.device, state.progress.epoch)  # the current epoch's, on the device
        self.val_sample: DataLoader | None = None  # the fixed val subsample of periodic budgeted validations
        self.teacher: Teacher | None = None  # train.distill: its logits go to the distillation loss terms

    @property
    def done(self) -> bool:
        return self.pacer.done

    def estimate_reserve(self) -> None:
        """Under a time budget, before training: time validation on a few batches of the val split and
        scale to the whole split, so the schedule keeps room for the final validation from the first step;
        estimate a save's cost the same way; and set the validation/save pacing (:mod:`segcli.train.budget`).

        Measured validations then raise the reserve (never lower it: the lr never jumps back up).
        """
        pr, p, loader = self.state.progress, self.p, self.data.val_loader
        n = len(loader.dataset)
        if self.plan.budget is None or n == 0:
            return
        t0 = clock()
        reserve = pr.reserve
        pr.reserve = 0.0
        self._time_validation(n)  # sets pr.reserve for the full split
        per_image = pr.reserve / n
        pr.reserve = max(pr.reserve, reserve)  # a resumed run keeps the largest seen
        save = estimate_save_seconds(self.state.state_dict(), clock)
        per_image, save = ddp.broadcast_object((per_image, save), self.rt.dist)
        average = self.state.average is not None
        described = self.pacer.budget_measured(n, per_image, save, p.eval.batch_size, average)
        indices = subsample_indices(n, self.pacer.policy.subsample)
        self.val_sample = DataLoader(
            torch.utils.data.Subset(loader.dataset, indices),
            batch_size=p.eval.batch_size,
            num_workers=0,
            collate_fn=loader.collate_fn,
        )
        self.pacer.ledger.probe += clock() - t0
        self.cb.on_message(described)

    def _time_validation(self, n: int) -> None:
        """Validate a few batches of the val split (model and EMA); ``reserve`` = that time scaled to ``n`` images."""
        pr, p, loader = self.state.progress, self.p, self.data.val_loader
        k = min(n, max(p.eval.batch_size, n // 50))  # one batch: the estimate is part of the budget
        sample = DataLoader(
            torch.utils.data.Subset(loader.dataset, list(range(k))),
            batch_size=p.eval.batch_size,
            num_workers=0,
            collate_fn=loader.collate_fn,
        )
        info, rt = self.data.info, self.rt
        args = (sample, info.num_classes, info.ignore_index, rt.device, rt.amp, p.train.channels_last)
        rng = torch.get_rng_state()  # the estimate must not change the training's random stream
        t0 = clock()
        try:
            for model in [self.state.model] + ([self.state.ema.module] if self.state.ema is not None else []):
                confusion_over_loader(model, *args, rt.dist)
        except RuntimeError as e:
            if is_out_of_memory(e):
                raise out_of_memory(p, "validation", rt.device, self.run) from None
            raise
        torch.set_rng_state(rng)
        pr.reserve = ddp.broadcast_object((clock() - t0) * n / k, rt.dist)  # one lr schedule on every rank

    def _loss(self, out: Any, masks: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """The criterion on the main output (distilled from ``teacher``'s logits when given) plus the weighted
        auxiliary outputs."""
        loss, self.terms = output_loss(self.criterion, out, masks, self.aux_weights, teacher)
        return loss

    def _optimizer_step(self) -> None:
        st, t = self.state, self.p.train
        if t.grad_clip > 0:
            st.scaler.unscale_(st.optimizer)
            torch.nn.utils.clip_grad_norm_(st.model.parameters(), t.grad_clip)
        st.scaler.step(st.optimizer)
        st.scaler.update()
        st.optimizer.zero_grad(set_to_none=True)
        if st.ema is not None:
            st.ema.update(st.model)
        if st.average is not None:
            st.average.update(st.model, self.pacer.fraction())  # the same fraction on every rank (the pacer's)
        st.progress.step += 1

    def train_one_epoch(self) -> dict[str, Any]:
        """One pass over the training split (cut short by ``iters`` or the time budget).

        A run resumed from a mid-epoch save (``train.save_every``) starts at the batch after it. The loop
        never waits on the device: the loss is summed there and read at the pacer's log points (and before
        any validation or save), where a non-finite loss stops the run naming its iteration. After each step
        the pacer says what is due (validate, save, stop) and the loop does it.
        """
        p, st, pr, dev, pacer = self.p, self.state, self.state.progress, self.rt.device, self.pacer
        epoch, loader, n = pr.epoch, self.data.train_loader, self.plan.iters_per_epoch
        start = pr.iter
        self.data.sampler.set_epoch(epoch, start=start * self.rt.batch)
        self.net.train()
        self.t_epoch = clock() - pr.epoch_seconds
        t_seen, seen = clock(), 0
        self.meter = LossMeter(dev, epoch)
        rng = torch.get_rng_state()
        batches = TimedIter(iter(loader))  # a new loader iterator draws a seed from the global RNG (persistent
        torch.set_rng_state(rng)  # workers only the first time): keep the model's random stream independent of it
        st.optimizer.zero_grad(set_to_none=True)
        it, t_prev, loss_mean = start - 1, clock(), None
        for it, (images, masks) in enumerate(batches, start):
            waited = clock() - t_prev  # the step's wait on the loader
            stepped = (it + 1) % p.train.accumulate == 0 or it + 1 == n
            pacer.savable = False
            lr = self._train_step(images, masks, stepped, it)
            pacer.savable = stepped  # a save now is a consistent position (no gradients half accumulated)
            pr.iter = it + 1
            read = pacer.is_log_point(it, start)
            if read:
                self._read_loss()  # the loop's one wait on the device
                warning = pacer.warmup_warning(p.schedule)
                if warning and self.rt.dist.is_main:
                    self.cb.on_message(warning)
            seen += images.shape[0] * self.rt.dist.world_size
            losses = self.meter.take() if read else ()  # exact, one per iteration since the last take
            if read:
                loss_mean = pr.epoch_loss / pr.iter  # the epoch's exact running mean (resumed iterations included)
            ips, shown = seen / max(clock() - t_seen, 1e-9), self.meter.shown  # the loss as last read
            self.cb.on_iter_end(epoch, it, shown, lr, ips)
            terms = {k: float(v) for k, v in self.terms.items()} if read and len(self.terms) > 1 else {}
            now = clock()
            stats = IterStats(epoch, it, n, shown, lr, ips, terms, waited, now - t_prev, now - pacer.t_run, dev.type)
            self.cb.on_iter_stats(dataclasses.replace(stats, loss_mean=loss_mean, losses=losses))
            due = pacer.after_step(it, stepped, now - t_prev)
            if due.stop:
                pr.finished = True
                break
            improved = False
            if due.validate:
                self._read_loss()  # a NaN stops the run here rather than being validated
                row: dict[str, Any] = {"epoch": pr.epoch + 1}
                improved = self._run_validation(row)
                pr.epoch_row = {k: v for k, v in row.items() if k != "epoch"}
            if improved or due.save:
                self.save_position(improved)
            if pr.finished:  # early stopping after a validation inside the epoch
                break
            t_prev = clock()
        self._read_loss()
        pacer.ledger.wait += batches.waited
        pr.finished = pr.finished or epoch + 1 >= self.plan.epochs
        lr_now = st.optimizer.param_groups[0]["lr"]
        row = {"epoch": epoch + 1, "iterations": pr.step, "train_loss": pr.epoch_loss / max(it + 1, 1), "lr": lr_now}
        row.update(pr.epoch_row)  # a validation inside the epoch (train.val_every_iters)
        if self.rt.dist.is_main:
            seconds = clock() - self.t_epoch
            share = batches.waited / max(seconds, 1e-9)
            self.run.log(f"epoch {epoch + 1}: data wait {share:.1%} of {seconds:.1f}s ({batches.waited:.2f}s)")
        return row

    def _train_step(self, images: torch.Tensor, masks: torch.Tensor, stepped: bool, it: int) -> float:
        """Forward, backward and (when ``stepped``) the optimiser step of one micro-batch; returns the lr."""
        p, st, pr, dev = self.p, self.state, self.state.progress, self.rt.device
        lr = set_lr(st.optimizer, self.lr_scale * lr_factor(p.schedule, pr.step, self.pacer.fraction(), p.optim.lr))
        if hasattr(self.criterion, "set_progress"):  # e.g. the top-k loss anneals its pixel share
            total = self.plan.total_steps or max(pr.step + 1, round(pr.step / max(self.pacer.fraction(), 1e-9)))
            self.criterion.set_progress(pr.step, total)
        images, masks = images.to(dev, non_blocking=True), masks.to(dev, non_blocking=True)
        if p.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        try:
            with self._grad_sync(stepped), autocast(dev, self.rt.amp):
                out = self.net(images)
                taught = self.teacher(images, out) if self.teacher is not None else None  # same batch, autocast
                loss = self._loss(out, masks, taught)
                self.meter.add(loss, it)
                st.scaler.scale(loss / p.train.accumulate).backward()
            if stepped:
                self._optimizer_step()
        except RuntimeError as e:
            if is_out_of_memory(e):
                raise out_of_memory(p, "training step", dev, self.run) from None
            raise
        return lr

    def _grad_sync(self, stepped: bool) -> contextlib.AbstractContextManager:
        """Under DDP, gradients are all-reduced only on the micro-batch that steps (``no_sync`` for the others)."""
        if stepped or self.ddp is None:
            return contextlib.nullcontext()
        return self.ddp.no_sync()

    def _read_loss(self) -> None:
        """Add the device's loss sum to the epoch's, for the progress bar and saves; stop on a non-finite loss."""
        bad = self.meter.read(self.state.progress)
        if bad is not None:
            it, value = bad
            raise TrainingError(
                f"loss became {value} at epoch {self.meter.epoch + 1}, iteration {it + 1}; "
                "lower optim.lr, set train.grad_clip, try train.amp=none (fp32), or check the masks with "
                "seg check; the last save in the run directory is kept"
            )

    def _check_finite(self) -> None:
        """Stop before a save when a weight became inf or NaN (an update overflowed after a finite loss): such
        weights must never become last or best. One device sync for all tensors; every rank checks its own
        (equal) copy, so all stop together."""
        tensors = [t for t in self.state.model.state_dict().values() if t.is_floating_point()]
        if not tensors or bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            return
        pr = self.state.progress
        raise TrainingError(
            f"the weights became inf/NaN in epoch {pr.epoch + (1 if pr.iter else 0)} (by optimiser step {pr.step}) "
            "(an update overflowed); lower optim.lr, set train.grad_clip, or try train.amp=none (fp32); "
            f"the last save in {self.run.path} is kept"
        )

    def _run_validation(self, row: dict[str, Any]) -> bool:
        """Validate the model (and its EMA) into ``row``; True when ``monitor`` improved. The run's last
        validation first puts the averaged weights (``train.average``) in place when they score higher."""
        if self.state.progress.finished:
            self._pick_average()
        with self.pacer.validating():
            return self._validate_into(row)

    def _pick_average(self) -> None:
        """At the end: score the trained and the averaged weights on the val subsample (the whole val split
        without a time budget) by ``train.monitor``; the averaged ones replace the trained ones when higher. Both
        scores and the choice are logged. Once per run (the average is dropped after the choice)."""
        average, p, rt, info = self.state.average, self.p, self.rt, self.data.info
        if average is None or average.module is None:
            return
        t0 = clock()
        loader = self.val_sample if self.val_sample is not None else self.data.val_loader
        args = (loader, info.num_classes, info.ignore_index, rt.device, rt.amp, p.train.channels_last)
        scores = []
        for module in (self.state.model, average.module):
            ddp.broadcast_buffers(module, rt.dist)
            metrics = confusion_over_loader(module, *args, rt.dist).compute(p.eval.absent, info.classes)
            scores.append(float(metrics[p.train.monitor]))
        trained, averaged = scores
        use = averaged > trained  # a NaN score (no labelled pixel) keeps the trained weights
        if use:
            self.state.model.load_state_dict(average.module.state_dict())
        self.state.average = None
        seconds = clock() - t0
        self.pacer.ledger.add_val(seconds)
        what = "val subsample" if self.val_sample is not None else "val split"
        self.cb.on_message(
            f"weight averaging: {average.describe()}: {p.train.monitor} {averaged:.4f} on the {what} "
            f"({len(loader.dataset)} images), the trained weights {trained:.4f}: the final evaluation uses the "
            f"{'averaged' if use else 'trained'} weights ({seconds:.1f}s)"
        )

    def _validate_into(self, row: dict[str, Any]) -> bool:
        p, pr, info, rt = self.p, self.state.progress, self.data.info, self.rt
        t_val = clock()
        for module in [self.state.model] + ([self.state.ema.module] if self.state.ema is not None else []):
            ddp.broadcast_buffers(module, rt.dist)  # every rank validates rank 0's checkpoint
        final = self.pacer.final_validation  # under a budget: the subsample until the end
        loader = self.data.val_loader if self.val_sample is None or final else self.val_sample
        args = (loader, info.num_classes, info.ignore_index, rt.device, rt.amp, p.train.channels_last)
        try:
            cm = ConfusionMatrix(info.num_classes, info.ignore_index, device=rt.device)
            val_loss = ValLoss(self.criterion, rt.device)  # the training criterion on the main output
            proto = PredictionProtocol(amp=rt.amp, channels_last=p.train.channels_last)
            cm = confusion_with(self.state.model, self._val_batches(loader), cm, proto, rt.dist, watch=val_loss)
            metrics = cm.compute(p.eval.absent, info.classes)
            row.update({k: metrics[k] for k in METRIC_KEYS})
            ddp.all_reduce_sum(val_loss.total, rt.dist)
            row["val_loss"] = val_loss.mean()
            if self.state.ema is not None:
                ema = confusion_over_loader(self.state.ema.module, *args, rt.dist)
                row["ema_mIoU"] = ema.compute(p.eval.absent)["mIoU"]
        except RuntimeError as e:
            if is_out_of_memory(e):
                raise out_of_memory(p, "validation", rt.device, self.run) from None
            raise
        pr.val_seconds = clock() - t_val
        pr.reserve = ddp.broadcast_object(max(pr.reserve, pr.val_seconds), rt.dist)
        before = (pr.best_value, pr.best_row)
        improved = pr.improve(row.get(p.train.monitor), row)
        if improved and not self.pacer.keeps_best():
            pr.best_value, pr.best_row, improved = *before, False  # best.safetensors stays what best_row says
        if rt.dist.is_main:
            best = pr.best_value if math.isfinite(pr.best_value) else None
            val_ds = self.data.val_loader.dataset
            self.cb.on_val_end(
                ValEnd(
                    pr.epoch, pr.step, metrics, cm.mat.cpu().numpy(), tuple(info.classes), tuple(info.palette),
                    improved, p.train.monitor, best, row.get("ema_mIoU"), self.state.model, val_ds, rt.device,
                    info.ignore_index, row.get("val_loss"),
                )
            )  # fmt: skip
        if p.train.patience and pr.stale >= p.train.patience:
            self.cb.on_message(f"early stop: {p.train.monitor} did not improve for {pr.stale} validations")
            pr.finished = True
        return improved

    def _val_batches(self, loader: DataLoader) -> Iterator[Any]:
        """``loader``'s batches, telling the callbacks (rank 0) how many images are done (the console's bar)."""
        total, done, main = len(loader.dataset), 0, self.rt.dist.is_main
        if main:
            self.cb.on_val_progress(0, total)
        for images, masks in loader:
            yield images, masks
            done += len(masks)
            if main:
                self.cb.on_val_progress(done, total)

    def validate(self, row: dict[str, Any]) -> bool:
        """Validate at the epoch's end when the pacer says so; True when ``monitor`` improved."""
        return self._run_validation(row) if self.pacer.validate_at_epoch_end() else False

    def save_position(self, improved: bool = False) -> None:
        """A mid-epoch checkpoint: the weights and state.pt at the current batch (metrics.csv is untouched)."""
        pr = self.state.progress
        self._read_loss()  # the epoch's loss so far goes into state.pt (and a NaN stops before saving)
        pr.elapsed = clock() - self.pacer.t_run
        pr.epoch_seconds = clock() - self.t_epoch
        self._commit(dict(pr.best_row) if improved else dict(self.last), pr.epoch_row, improved)

    def save(self, row: dict[str, Any], improved: bool) -> None:
        """The epoch's end: metrics.csv, the weights and state.pt as one commit (when the pacer says so; under a
        budget saves follow the clock); then every rank moves on."""
        pr = self.state.progress
        row["seconds"] = clock() - self.t_epoch
        self.last = row
        pr.epoch += 1
        pr.elapsed = clock() - self.pacer.t_run
        pr.iter, pr.epoch_loss, pr.epoch_seconds, pr.epoch_row = 0, 0.0, 0.0, {}
        if self.rt.dist.is_main:
            self.rows.append(row)
        if self.pacer.save_at_epoch_end(improved):
            self._commit(row, row, improved, rows=list(self.rows))
        self.cb.on_epoch_end(pr.epoch - 1, row, improved)

    def _commit(
        self, meta: dict[str, Any], ema_row: dict[str, Any], improved: bool, rows: list[dict[str, Any]] | None = None
    ) -> None:
        """Rank 0 writes one consistent checkpoint set (metrics.csv too when ``rows`` are given); all ranks wait.

        ``meta`` goes into the weights' metadata; EMA weights are written when ``ema_row`` has their mIoU.
        Weights that are not finite are never written (:meth:`_check_finite`): the last save stays.
        """
        st, run, info, pr = self.state, self.run, self.data.info, self.state.progress
        self._check_finite()
        t0 = clock()
        if self.rt.dist.is_main:
            files: dict[Path, Any] = {}
            if rows is not None:
                files[run.metrics] = lambda path: path.write_text(run.metrics_text(rows), encoding="utf-8")
            data = self.data.fingerprint
            files[run.weights("last")] = weights_writer(st.model, self.p, info, epoch=pr.epoch, metrics=meta, data=data)
            if improved:
                files[run.weights("best")] = files[run.weights("last")]
            if st.ema is not None and "ema_mIoU" in ema_row:
                files[run.weights("ema")] = weights_writer(
                    st.ema.module, self.p, info, epoch=pr.epoch, metrics=ema_row, data=data
                )
            files[run.state] = state_writer(st.state_dict())
            try:
                commit(run, pr.epoch, pr.step, files)
            except InterruptedAfterSave:  # Ctrl-C during the save, raised once it was complete
                self.saved = len(rows) if rows is not None else self.saved
                raise
            self.saved = len(rows) if rows is not None else self.saved
        ddp.barrier(self.rt.dist)
        self.pacer.saved(t0)

    def interrupted(self) -> TrainingInterrupted:
        """Ctrl-C: what is on disk is the last save (saves are atomic); log it and say how to go on.

        Without ``train.save_every`` the interrupted epoch's partial work is dropped: resume restarts
        that epoch from its first batch, which is what ``state.pt`` at an epoch boundary means. With it,
        the current batch is saved (when no gradients are half accumulated) and resume goes on from the next.
        """
        pr, n = self.state.progress, self.plan.iters_per_epoch
        where = ""
        alone = not self.rt.dist.enabled  # under torchrun the other ranks may not have been interrupted
        if alone and self.p.train.save_every and self.pacer.savable and 0 < pr.iter < n and not pr.finished:
            self.save_position()
            where = f" at iteration {pr.iter} of {n}"
        if self.rt.dist.is_main:
            self.run.log(
                f"interrupted during epoch {pr.epoch + 1}; {self.saved} finished epoch(s) saved"
                + (f", and epoch {pr.epoch + 1} up to iteration {pr.iter} of {n}" if where else "")
            )
        return TrainingInterrupted(f"interrupted: resume with seg train --resume {self.run.path}")


def label_statistics(p: Preset) -> LabelStats:
    """The training split's label statistics, from at most 32 masks (:func:`segcli.data.stats.split_label_stats`)."""
    return split_label_stats(DatasetIndex.scan(p.data.root, [p.data.train_split]), p.data.train_split)


def _resolve(
    preset: LoadedPreset | Preset | str | Path | None,
    overrides: Iterable[str],
    resume: str | Path | None,
    extend: Iterable[str] = (),
) -> tuple[LoadedPreset, RunDir | None, list[Extension]]:
    """The validated preset and, when resuming, the run it continues and the keys extended."""
    extend = list(extend)
    if resume is not None:
        if list(overrides):
            raise UserError(
                "--resume continues a run exactly as it was; drop the key=value overrides "
                "(a longer schedule: --extend train.epochs=N)"
            )
        run = RunDir.open(resume)
        # a run's preset.toml is fully resolved; reading it as a dict also migrates keys that moved since
        preset = preset_from_dict(load_toml(run.preset), source=str(run.preset), check_files=True, resuming=True)
        preset, changes = extend_preset(preset, extend, str(run.preset))
        return LoadedPreset(preset=preset, path=run.preset), run, changes
    if extend:
        raise UserError("--extend lengthens an existing run; use it with --resume RUN_DIR")
    if isinstance(preset, LoadedPreset):
        return preset, None, []
    if isinstance(preset, Preset):
        validate_preset(preset)  # a preset built in Python has not been through load_preset
        return LoadedPreset(preset=preset, path=None), None, []
    return load_preset(preset, list(overrides)), None, []


def _restore(
    run: RunDir, state: TrainState, rt: Runtime, cb: CallbackList, teacher: Teacher | None = None
) -> list[dict[str, Any]]:
    """Resume: finish a save cut short, load ``state.pt`` and keep the metrics rows it covers.

    A run stopped before its first save completed has nothing to load: it starts over in place. A distilled
    run resumes only with the teacher file it was trained with (same sha256).
    """
    manifest = recover(run) if rt.dist.is_main else None  # finish a save cut short, drop stray temp files
    ddp.barrier(rt.dist)
    if manifest is None and not run.state.is_file():
        cb.on_message(f"{run.path}: stopped before its first checkpoint; training starts from the beginning")
        if rt.dist.is_main:
            run.write_metrics([])
        return []
    saved = load_state(run.state)
    check_resumed_teacher(teacher, saved.get("teacher"))
    state.load_state_dict(saved)
    if manifest is not None and manifest["epoch"] != state.progress.epoch:
        raise CheckpointError(
            f"{run.state}: holds epoch {state.progress.epoch} but {run.manifest} names epoch {manifest['epoch']}; "
            "the run directory was changed by hand"
        )
    rows = [r for r in run.read_metrics() if r["epoch"] <= state.progress.epoch]
    if rt.dist.is_main:
        run.write_metrics(rows)
    return rows


def train(
    preset: LoadedPreset | Preset | str | Path | None = None,
    overrides: Iterable[str] = (),
    resume: str | Path | None = None,
    callbacks: Iterable[Callback] = (),
    extend: Iterable[str] = (),
) -> TrainResult:
    """Train from a preset (a LoadedPreset, a Preset, a path or a bundled name), or resume a run.

    ``extend`` (with ``resume``): ``["train.epochs=20"]`` continues a finished or stopped run with a
    longer schedule; the run's preset.toml is rewritten with it and the lr schedule follows the new length.
    """
    t_start = clock()
    loaded, resumed, extended = _resolve(preset, overrides, resume, extend)
    p, cb = loaded.preset, CallbackList(callbacks)
    rt = setup_runtime(p)
    stats = label_statistics(p)  # class shares, foreground share, object width, size: logged, and the auto rules'
    auto, recipe = "", ()
    if p.train.auto and resumed is None:  # crop, batch, lr and schedule from probed step times (auto_recipe)
        p, choice = auto_preset(p, rt.device, rt.amp, clock, stats)
        p, auto, recipe = ddp.broadcast_object((p, choice.describe(), choice.recipe), rt.dist)
        loaded = dataclasses.replace(loaded, preset=p)
        rt = dataclasses.replace(rt, batch=ddp.per_device_batch(p.data.batch_size, rt.dist))
    data = build_data(p, rt)
    state, criterion, reports = build_state(p, data.info, rt, resuming=resumed is not None)
    teacher = load_teacher(p.train.distill, tuple(data.info.classes), rt.device, p.train.channels_last)
    state.teacher = teacher.identity if teacher is not None else None

    run, lock = _open_or_create_run(loaded, resumed, rt.dist)  # only now: a bad preset leaves no directory
    with lock:  # one writer per run (RUN/.lock), released however training ends
        if rt.dist.is_main:
            cb.callbacks[:0] = [LogFile(run, rt.describe(p)), ProgressLines(run.log, p.train.log_every)]
            cb.callbacks.append(RunReport())  # environment.json at the start, report.html at the end
            if p.train.plots:
                cb.callbacks.insert(2, Plots())
            cb.callbacks.extend(make_loggers(p.train.loggers))  # after the plots, whose pictures they log
        rows = _restore(run, state, rt, cb, teacher) if resumed is not None else []
        if extended:
            state.progress.finished = False
            if rt.dist.is_main:
                run.write_preset(preset_to_toml(p, header=f"resolved preset of {run.path}"))
        trainer = Trainer(p, rt, data, state, criterion, run, cb, rows)
        trainer.teacher = teacher
        plan = trainer.plan
        epochs, pr = 0 if plan.budget else plan.epochs, state.progress
        start = RunStart(
            run, epochs, plan.iters_per_epoch, pr.epoch, resumed is not None, pr.iter, p.train.log_every, p, data.info
        )
        cb.on_train_start(start)
        steps = plan.total_steps
        warmup = warmup_warning(p.schedule, steps, "train.epochs/train.iters") if steps is not None else None
        distilling = teacher.describe() if teacher is not None else ""
        texts = [stats.describe(), *recipe, auto, *data.messages, *reports, distilling]
        for text in [*texts, *(e.describe() for e in extended), warmup]:
            if text:
                cb.on_message(text)
        if resumed is not None and trainer.done:
            cb.on_message(f"{run.path} already finished")

        try:
            if not trainer.done:
                trainer.estimate_reserve()
            while not trainer.done:
                row = trainer.train_one_epoch()
                improved = trainer.validate(row)
                trainer.save(row, improved)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:
            raise trainer.interrupted() from None
        finally:
            stop_workers(data.train_loader, data.val_loader)

        ddp.cleanup(rt.dist)
        end, last = clock(), trainer.last
        if rt.dist.is_main:
            cb.on_message(trainer.pacer.ledger.summary(end, plan.budget, end - trainer.pacer.t_run))
            cb.on_message("evaluating best weights for the report...")  # RunReport's on_train_end: seconds to minutes
        result = TrainResult(run.path, int(last.get("epoch", 0)), state.progress.best_row, last, end - t_start)
        result.timing = trainer.pacer.ledger.shares(end)
        cb.on_train_end(result)
        return result
