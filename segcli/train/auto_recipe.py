"""``train.auto``: choose crop, batch, lr and schedule for a time budget from measured step times.

The time analogue of ultralytics' AutoBatch (which sizes the batch for memory): before training, time a
few optimiser steps of the real model on random inputs at candidate crop sizes and batch sizes, then
apply :func:`choose`. The rule (docs/budget.md has the measurements behind it):

1. **The most pixels per second, in enough steps.** A short run is limited by the number of optimiser
   steps: the budget, less the probe, must give at least :data:`MIN_STEPS` steps. The budget fixes the
   time, so among the probed (crop, batch) pairs whose step time allows that many, the one that moves the
   most pixels per second (``batch * crop^2 / step time``) trains on the most data. Pairs within
   :data:`THROUGHPUT_SLACK` of the best count as equal (the probe times one step each); among those the
   larger crop wins (context), then the smaller batch: at the same pixels per second it makes more
   optimiser steps (FPN on 11-class street scenes at 10 minutes, where a CPU moves about as many pixels at
   batch 4 as at 16: batch 8 scored 0.817 mIoU against batch 16's 0.800; docs/budget.md). On a GPU, where
   larger batches move more pixels per second, the larger batch is the faster one and is taken. Each side
   of a crop stops at the training images' median size on that side (:func:`crop_shape`): beyond it a crop
   holds only padding, which costs step time and trains nothing (192x256 street scenes in 256x256 crops: a
   quarter of each step was padding).
2. **Nothing fits.** When even the cheapest pair gives fewer steps, take the cheapest (most steps).
3. **lr** follows the batch by the square-root rule from the preset's ``optim.lr`` at its
   ``data.batch_size`` (Adam-family optimisers), never above :data:`MAX_LR_SCALE` times it.
4. **Schedule**: the preset's (poly by default) over the budget, with a warmup of
   :data:`WARMUP_FRACTION` of the run (``schedule.warmup_fraction``) and no warmup in iterations.

The probe is capped at :data:`PROBE_SHARE` of the budget, and its time comes off the budget, so
``train.time_budget`` still bounds the whole command.

Before the probe, the rules named in ``train.auto_rules`` fit the recipe to the training labels'
statistics (:class:`~segcli.data.stats.LabelStats`, :func:`fit_to_data`), each decision logged as one
``recipe: ...`` line:

* ``thin``: when the foreground's median object width is at most :data:`THIN_WIDTH_PX` pixels (membranes,
  vessels, cracks), rescaling changes what is learned: a downscaled 3 px line is 2 px or gone, an upscaled one
  is wider than any test image shows it. So the scale jitter is off (``augment.scale = [1, 1]``), crops are
  taken at the images' native resolution (``augment.resize_to`` empty), and where the model has the option its
  logits come out at stride 1 (``model.full_res``: U-Net's original first level, FPN's up blocks), not 2 or 4.
  Measured on U-Net and FPN, membranes and the small-foreground set, at 2 and 10 minutes (docs/budget.md).
* ``rare``: when there are more than two classes and some hold under :data:`RARE_SHARE` of the labelled pixels
  (poles, signs and bicycles in street scenes), a Dice term (:data:`RARE_TERM`) goes next to cross-entropy: it
  averages each class's overlap, so a class of 0.05 % of the pixels counts as much as the road (Lovász-softmax
  does the same for IoU, and measured worse: its sort costs a third of the steps), and the preset's
  ``optim.lr`` is multiplied by :data:`RARE_LR_FACTOR` (budget_scratch: 2e-3 to 3e-3; measured on the two
  many-class sets, where it gained on both, and not on binary data, where the larger rate lost). It leaves
  binary data alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

from segcli.config.schema import LossConfig, Preset, format_duration
from segcli.data.stats import LabelStats

__all__ = [
    "MIN_STEPS",
    "THROUGHPUT_SLACK",
    "THIN_WIDTH_PX",
    "AutoChoice",
    "Probe",
    "apply_choice",
    "candidate_crops",
    "choose",
    "crop_shape",
    "fit_to_data",
    "probe_step_times",
]

MIN_STEPS = 300  # a budgeted run should take at least this many optimiser steps (docs/budget.md)
THROUGHPUT_SLACK = 0.05  # pairs within this share of the best pixels per second count as equally fast
PROBE_SHARE = 0.05  # the probe spends at most this share of the budget
WARMUP_FRACTION = 0.03
MAX_LR_SCALE = 2.0
CROPS = (128, 160, 192, 256, 320, 384, 512)
THIN_WIDTH_PX = 8.0  # train.auto_rules "thin": a median foreground object width at most this (ISBI membranes: 5 px)
RARE_SHARE = 0.01  # train.auto_rules "rare": a class under this share of the labelled pixels (manyclass: 5 of 11)
RARE_TERM = "dice"  # the region term the rare rule adds (docs/budget.md: Dice measured well ahead of Lovasz)
RARE_LR_FACTOR = 1.5  # the rare rule's multiplier of optim.lr (docs/budget.md: the base learning rate)
REGION_TERMS = ("dice", "lovasz", "jaccard", "tversky")  # a loss.terms already holding one needs no Dice added
BATCHES = (4, 8, 16)


@dataclass(frozen=True)
class Probe:
    """One measured candidate: seconds per optimiser step at ``batch`` crops of ``crop`` x ``crop`` pixels."""

    crop: int
    batch: int
    seconds: float
    note: str = ""  # how it was measured when not directly
    shape: tuple[int, int] = ()  # (height, width) when the images cap a side of the crop below ``crop``

    @property
    def size(self) -> tuple[int, int]:
        """The crop's (height, width)."""
        return self.shape or (self.crop, self.crop)

    @property
    def pixels(self) -> int:
        return self.batch * self.size[0] * self.size[1]

    @property
    def rate(self) -> float:
        """Pixels per second (the measure :func:`choose` ranks by)."""
        return self.pixels / max(self.seconds, 1e-9)


@dataclass(frozen=True)
class AutoChoice:
    crop: int
    batch: int
    lr: float
    steps: int  # expected optimiser steps in the budget
    why: str
    probes: tuple[Probe, ...]
    recipe: tuple[str, ...] = ()  # the ``recipe: ...`` lines of the data rules (:func:`fit_to_data`)
    shape: tuple[int, int] = ()  # the crop's (height, width) when the images cap a side below ``crop``

    @property
    def size(self) -> tuple[int, int]:
        return self.shape or (self.crop, self.crop)

    def describe(self) -> str:
        table = ", ".join(
            f"{_px(q.size)} x{q.batch}: {q.seconds:.3f}s/step{f' ({q.note})' if q.note else ''}" for q in self.probes
        )
        return (
            f"auto recipe: augment.crop_size=[{self.size[0]},{self.size[1]}] data.batch_size={self.batch} "
            f"optim.lr={self.lr:.3g}, poly schedule over the budget with {WARMUP_FRACTION:.0%} warmup; about "
            f"{self.steps} steps. Why: {self.why}. Probed: {table}"
        )


def _px(size: tuple[int, int]) -> str:
    return f"{size[0]}px" if size[0] == size[1] else f"{size[0]}x{size[1]}px"


def crop_shape(crop: int, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """A ``crop`` x ``crop`` crop with each side stopped at the images' (height, width): no side of pure padding."""
    if not image_size:
        return crop, crop
    return min(crop, image_size[0]), min(crop, image_size[1])


def candidate_crops(max_side: int, preset_crop: int) -> list[int]:
    """Crop sizes worth probing: the candidates up to the preset's crop and the training images' size."""
    limit = max(min(max_side, preset_crop), CROPS[0])
    return [c for c in CROPS if c <= limit] or [CROPS[0]]


def choose(probes: Iterable[Probe], seconds: float, base_lr: float, base_batch: int) -> AutoChoice:
    """The rule above, on measured (or, in tests, given) step times for a training time of ``seconds``."""
    probes = tuple(probes)
    if not probes:
        raise ValueError("no probe measurements")
    fits = [q for q in probes if seconds / max(q.seconds, 1e-9) >= MIN_STEPS]
    if fits:
        fastest = max(q.rate for q in fits)
        near = [q for q in fits if q.rate >= (1 - THROUGHPUT_SLACK) * fastest]
        best = max(near, key=lambda q: (q.size[0] * q.size[1], -q.batch))
        area = f"{best.crop}^2" if not best.shape else f"{best.size[0]}x{best.size[1]}"
        why = (
            f"the most pixels per second ({best.rate / 1e6:.2f} M/s; within {THROUGHPUT_SLACK:.0%} of the fastest "
            f"pair, the largest crop, then the smallest batch: more steps) that still gives at least {MIN_STEPS} "
            f"steps in {seconds:.0f}s, at batch {best.batch} x {area}"
        )
    else:
        best = min(probes, key=lambda q: (q.seconds, -q.pixels))
        why = f"no probed size gives {MIN_STEPS} steps in {seconds:.0f}s; the cheapest step gives the most steps"
    scale = min(math.sqrt(best.batch / base_batch), MAX_LR_SCALE)
    steps = int(seconds / max(best.seconds, 1e-9))
    return AutoChoice(best.crop, best.batch, base_lr * scale, steps, why, probes, shape=best.shape)


def fit_to_data(p: Preset, stats: LabelStats) -> tuple[Preset, list[str]]:
    """The rules of ``train.auto_rules`` applied to ``p`` from the training labels' ``stats``; one
    ``recipe: ...`` line per rule saying whether it fired, why, and the keys it set."""
    lines = []
    if not p.train.auto_rules:
        return p, ["recipe: train.auto_rules is empty: no rule fits the recipe to the data"]
    if "thin" in p.train.auto_rules:
        p, line = _thin_rule(p, stats)
        lines.append(line)
    if "rare" in p.train.auto_rules:
        p, line = _rare_rule(p, stats)
        lines.append(line)
    return p, lines


def _with_region_term(loss: LossConfig, term: str) -> tuple[LossConfig, str | None]:
    """``loss`` with ``term`` (a region loss) next to its terms, and what was set; unchanged (None) when it
    already has a region term."""
    from segcli.losses.registry import loss_options

    if any(t in REGION_TERMS for t in loss.terms):
        return loss, None
    weights = (*loss.term_weights, 1.0) if loss.term_weights else ()
    tables = dict(loss.tables)
    tables.setdefault(term, loss_options(term)())
    loss = replace(loss, terms=(*loss.terms, term), term_weights=weights, tables=tuple(sorted(tables.items())))
    return loss, "loss.terms=[" + ",".join(f'"{t}"' for t in loss.terms) + "] (a region term)"


def _rare_rule(p: Preset, stats: LabelStats) -> tuple[Preset, str]:
    """``rare``: a region term next to CE and :data:`RARE_LR_FACTOR` times the lr when some of many classes hold
    under :data:`RARE_SHARE` of the pixels."""
    rare = [(c, s) for c, s in zip(stats.classes, stats.pixel_share) if s < RARE_SHARE]
    if stats.binary or not rare:
        why = "two classes" if stats.binary else f"no class under {RARE_SHARE:.0%} of the pixels"
        return p, f"recipe: no rare classes ({why}): unchanged"
    loss, set_ = _with_region_term(p.loss, RARE_TERM)
    names = ", ".join(f"{c} {s:.2%}" for c, s in sorted(rare, key=lambda x: x[1]))
    lr = p.optim.lr * RARE_LR_FACTOR
    what = (set_ or "the preset already has a region term") + f", optim.lr={lr:.3g} ({RARE_LR_FACTOR:g}x)"
    line = f"recipe: rare classes ({names} < {RARE_SHARE:.0%} of the pixels) -> {what}"
    return replace(p, loss=loss, optim=replace(p.optim, lr=lr)), line


def _thin_rule(p: Preset, stats: LabelStats) -> tuple[Preset, str]:
    """``thin``: no rescaling jitter, native-resolution crops and logits at stride 1 (where the model can), for
    objects a few pixels wide."""
    from segcli.models import model_options

    width = stats.median_width
    if width is None or width > THIN_WIDTH_PX:
        seen = "no foreground pixel read" if width is None else f"median object width {width:.1f} px"
        return p, f"recipe: not thin structures ({seen}; the rule needs <= {THIN_WIDTH_PX:g} px): unchanged"
    a, m, set_ = p.augment, p.model, []
    if a.scale and a.scale != (1.0, 1.0):
        a = replace(a, scale=(1.0, 1.0))
        set_.append("augment.scale=[1,1] (no rescaling)")
    if a.resize_to:
        a = replace(a, resize_to=())
        set_.append("augment.resize_to=[] (crops at native resolution)")
    if not m.full_res and "full_res" in (model_options(m.name) or ()):
        m = replace(m, full_res=True)
        set_.append("model.full_res=true (logits at stride 1)")
    what = ", ".join(set_) if set_ else "the preset already fits (no rescaling, native crops, logits at stride 1)"
    line = f"recipe: thin structures (median object width {width:.1f} px <= {THIN_WIDTH_PX:g} px) -> {what}"
    return replace(p, augment=a, model=m), line


def apply_choice(p: Preset, choice: AutoChoice, budget: float) -> Preset:
    """The preset with the chosen crop, batch, lr and warmup, and the budget left after the probe."""
    seconds = max(budget, 1.0)
    return replace(
        p,
        augment=replace(p.augment, crop_size=choice.size),
        data=replace(p.data, batch_size=choice.batch),
        optim=replace(p.optim, lr=choice.lr, scale_lr_with_batch="none"),
        schedule=replace(p.schedule, warmup_iters=0, warmup_fraction=WARMUP_FRACTION),
        train=replace(p.train, time_budget=format_duration(seconds), auto=False),
    )


def probe_step_times(
    step: Callable[[int, int], Callable[[], None]],
    crops: list[int],
    budget: float,
    clock: Callable[[], float],
    batches: tuple[int, ...] = BATCHES,
    repeats: int = 1,
) -> list[Probe]:
    """Time ``repeats`` steps (after one warm-up step) of ``step(crop, batch)`` for each candidate; a
    candidate whose warm-up step alone is too slow for :data:`MIN_STEPS` is recorded at that time.

    A scout step at batch 1 comes first and ends the probe when even the smallest candidate is hopeless.
    Crops go smallest first at the smallest batch; a crop whose step is already too slow for
    :data:`MIN_STEPS` steps ends the crop sweep (larger ones are slower still). Larger batches are then
    tried at the fitting crops, largest crop first. Stops when the probe has used :data:`PROBE_SHARE` of the budget.
    """
    t_start, found = clock(), []
    cap = PROBE_SHARE * budget

    def timed(crop: int, batch: int) -> Probe | None:
        if clock() - t_start > cap:
            return None
        run = step(crop, batch)
        t0 = clock()
        run()  # warm-up: allocations, kernel selection
        first = clock() - t0
        if budget / max(first, 1e-9) < MIN_STEPS:  # too slow even counting the warm-up as a step: no need to
            q = Probe(crop, batch, first)  # time it again (on a slow machine each probe step is precious)
        else:
            times = [first]
            for _ in range(repeats):
                t0 = clock()
                run()
                times.append(clock() - t0)
            q = Probe(crop, batch, min(times))  # the fastest step (the warm-up's one-time costs only raise it)
        found.append(q)
        return q

    # a scout step at batch 1 first: on a machine where even the smallest candidate cannot give MIN_STEPS
    # (at least half of batch-size times the batch-1 step), probing further would only eat the budget
    run = step(crops[0], 1)
    t0 = clock()
    run()
    t1 = clock()
    run()
    one = min(t1 - t0, clock() - t1)  # the faster of two: one step slowed by a busy machine does not decide
    if budget / max(one * batches[0] / 2, 1e-9) < MIN_STEPS:
        return [Probe(crops[0], batches[0], one * batches[0], note=f"{batches[0]} x the batch-1 step")]
    fitting = []
    for crop in crops:
        q = timed(crop, batches[0])
        if q is None or budget / max(q.seconds, 1e-9) < MIN_STEPS:
            break
        fitting.append(crop)
    for crop in reversed(fitting):
        for batch in batches[1:]:
            q = timed(crop, batch)
            if q is None or budget / max(q.seconds, 1e-9) < MIN_STEPS:
                break
    return found


def model_step(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    num_classes: int,
    device: torch.device,
    amp: str,
    channels_last: bool,
    image_size: tuple[int, int] | None = None,
) -> Callable[[int, int], Callable[[], None]]:
    """``step(crop, batch)`` → a function doing one training step of ``model`` on random data of that shape
    (the crop's sides stopped at ``image_size``: :func:`crop_shape`)."""
    from segcli.core.runtime import autocast

    def make(crop: int, batch: int) -> Callable[[], None]:
        h, w = crop_shape(crop, image_size)
        images = torch.randn(batch, 3, h, w, device=device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        masks = torch.randint(0, num_classes, (batch, h, w), device=device)

        def run() -> None:
            with autocast(device, amp):
                out = model(images)
                out = out["out"] if isinstance(out, dict) else out
                loss = criterion(out, masks)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        return run

    return make


def _capped(q: Probe, image_size: tuple[int, int] | None) -> Probe:
    shape = crop_shape(q.crop, image_size)
    return q if shape == (q.crop, q.crop) else replace(q, shape=shape)


def auto_preset(
    p: Preset, device: torch.device, amp: str, clock: Callable[[], float], stats: LabelStats | None = None
) -> tuple[Preset, AutoChoice]:
    """Fit the preset to the labels' ``stats`` (``train.auto_rules``), probe its model on this device and return
    the preset with the auto recipe applied (its ``train.time_budget`` less the probe's time) and the choice
    (for the log)."""
    import cv2

    from segcli.core.factory import loss_from_preset, model_from_preset
    from segcli.data.format import DatasetIndex
    from segcli.train.optim import build_optimizer

    t0 = clock()
    recipe: list[str] = []
    if stats is not None:
        p, recipe = fit_to_data(p, stats)
    budget = p.train.time_budget_seconds or 0.0
    index = DatasetIndex.scan(p.data.root, [p.data.train_split])
    # crops up to the images' own size: a larger crop only trains on upscaled pixels (the scale jitter
    # still zooms inside the crop), and costs steps (shapes, 128 px images: 192 px crops gave 0.65x the steps);
    # each side on its own (crop_shape): a 256 px crop of 192x256 images is 192x256. The label statistics
    # already know the median size; only without them is the first training image read for it.
    size: tuple[int, int] | None = None
    if stats is not None and stats.masks_read:
        size = stats.size
    elif pairs := index.pairs(p.data.train_split):
        image = cv2.imread(str(pairs[0][0]), cv2.IMREAD_UNCHANGED)
        size = (image.shape[0], image.shape[1]) if image is not None else None
    crops = candidate_crops(max(size) if size else max(p.augment.crop_size), max(max(p.augment.crop_size), 256))
    num_classes = index.info.num_classes
    model = model_from_preset(p.model, num_classes).to(device).train()
    if p.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = loss_from_preset(p.loss, num_classes, index.info.ignore_index, None).to(device)
    optimizer = build_optimizer(model, p.optim)
    rng = torch.get_rng_state()
    step = model_step(model, criterion, optimizer, num_classes, device, amp, p.train.channels_last, size)
    probes = [_capped(q, size) for q in probe_step_times(step, crops, budget, clock)]
    torch.set_rng_state(rng)
    del model, optimizer
    left = budget - (clock() - t0)
    choice = replace(choose(probes, left, p.optim.lr, p.data.batch_size), recipe=tuple(recipe))
    return apply_choice(p, choice, left), choice
