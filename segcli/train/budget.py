"""How a time-budgeted run spends its clock: validation and checkpoint pacing, and the time ledger.

Under ``train.time_budget`` the trainer asks this module, not the epoch counter, when to validate and
when to save, so that the overheads stay small shares of the budget whatever ``val_every``/``save_every``
say (a tiny dataset with ``val_every = 1`` would otherwise validate and checkpoint every few seconds):

* **Validation** runs on a fixed, evenly spaced subsample of the val split, sized from the measured
  seconds per image so that about :data:`TARGET_VALIDATIONS` of them fit in :data:`VAL_SHARE` of the budget;
  a due validation is skipped while the time already spent validating plus one more would exceed
  ``VAL_SHARE`` of the time elapsed (so the share holds at every moment, not only at the end), or the
  periodic ones and the final one together past :data:`VAL_CAP` of the budget. The full split is validated
  once, at the end, in time reserved before the first step and re-estimated as the run goes (the pacer).
* **Checkpoints** follow the clock: at most one every ``train.save_min_seconds``, and only while the
  time spent saving plus one more save stays within :data:`SAVE_SHARE` of the time elapsed. The final
  save is reserved up front with the final validation (its cost is measured before the first step by
  serialising the state in memory).

The :class:`Ledger` adds up where the time went (training steps, data wait, validation, saving) and
writes it to the run log at the end, in every mode. This module does no timing itself: the trainer
passes in seconds read from its own clock, so tests drive it with a fake one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from segcli.config.schema import ScheduleConfig

__all__ = [
    "SAVE_SHARE",
    "TARGET_VALIDATIONS",
    "VAL_CAP",
    "VAL_SHARE",
    "BudgetPolicy",
    "Ledger",
    "estimate_save_seconds",
    "subsample_indices",
    "warmup_warning",
]

VAL_SHARE = 0.025  # periodic validation: at most this share of the time elapsed
VAL_CAP = 0.03  # the stated cap: periodic validations and the final one together, as a share of the budget
SAVE_SHARE = 0.015  # periodic checkpoints: at most this share (with the final save, under 2%)
TARGET_VALIDATIONS = 10  # the subsample is sized so that about this many validations fit in VAL_SHARE
SAVE_MARGIN = 1.5  # the in-memory serialisation time times this = the estimated save (disk and fsync on top)


def subsample_indices(n: int, k: int) -> list[int]:
    """``k`` indices evenly spaced over ``range(n)`` (the same every validation, so curves are comparable)."""
    k = max(0, min(k, n))
    return [int(i * n / k) for i in range(k)] if k else []


def estimate_save_seconds(tensors: dict[str, torch.Tensor], clock: Callable[[], float]) -> float:
    """Time serialising ``tensors`` (model, optimiser state...) into memory, times :data:`SAVE_MARGIN`: the
    cost of one checkpoint, before any was written, so the final save can be reserved from the first step."""
    t0 = clock()
    torch.save(tensors, io.BytesIO())
    return (clock() - t0) * SAVE_MARGIN


@dataclass
class BudgetPolicy:
    """Validation and save pacing of one budgeted run (see the module docstring)."""

    budget: float  # seconds
    val_images: int  # images in the (this rank's) val split
    val_per_image: float  # measured seconds per validated image (model and EMA)
    save_estimate: float  # estimated seconds per checkpoint
    save_min_seconds: float  # train.save_min_seconds
    min_images: int = 1  # the smallest subsample (one eval batch)
    val_share: float = VAL_SHARE
    save_share: float = SAVE_SHARE
    subsample: int = field(init=False)

    def __post_init__(self) -> None:
        per_validation = self.val_share * self.budget / TARGET_VALIDATIONS
        k = int(per_validation / max(self.val_per_image, 1e-9))
        self.subsample = max(min(self.val_images, self.min_images), min(self.val_images, k))

    @property
    def final_reserve(self) -> float:
        """Seconds kept for the final full-split validation and the final save."""
        return self.val_per_image * self.val_images + self.save_estimate

    def val_cost(self, ledger: Ledger) -> float:
        """Expected seconds of one periodic validation: the last one measured, else the estimate."""
        return ledger.last_val or self.val_per_image * self.subsample

    def may_validate(self, ledger: Ledger, elapsed: float, final: float = 0.0) -> bool:
        """A periodic validation now keeps validation within ``val_share`` of the time elapsed and, with the final
        full-split validation (``final`` seconds, as estimated now), within :data:`VAL_CAP` of the budget."""
        cost = ledger.val + self.val_cost(ledger)
        return cost <= self.val_share * elapsed and cost + final <= VAL_CAP * self.budget

    def may_save(self, ledger: Ledger, elapsed: float, since_last: float, best: bool = False) -> bool:
        """A periodic checkpoint now is ``save_min_seconds`` after the last (not required for a new best) and
        keeps saving within ``save_share`` of the time elapsed."""
        cost = max(ledger.last_save, self.save_estimate)
        spaced = best or since_last >= self.save_min_seconds
        return spaced and ledger.save + cost <= self.save_share * elapsed

    def describe(self) -> str:
        return (
            f"time budget {self.budget:.0f}s: validation every so often on {self.subsample} of {self.val_images} "
            f"val images (measured {self.val_per_image * 1000:.1f} ms/image; held under {self.val_share:.1%} of "
            f"the time), the full split once at the end; checkpoints at least {self.save_min_seconds:g}s apart and "
            f"under {self.save_share:.1%} of the time (estimated {self.save_estimate:.2f}s each); "
            f"{self.final_reserve:.1f}s reserved for the final validation and save"
        ) + self.reserve_warning()

    def reserve_warning(self) -> str:
        """A note when the final validation and save take over a quarter of the budget (a big val split)."""
        share = self.final_reserve / max(self.budget, 1e-9)
        if share <= 0.25:
            return ""
        return (
            f"; warning: that is {share:.0%} of the budget, left out of training: a smaller val split "
            "(data.val_split) or a longer train.time_budget trains more"
        )


@dataclass
class Ledger:
    """Where a run's time went: sums of seconds per activity, from the trainer's clock."""

    start: float  # the clock when the run's loop began (after setup)
    wait: float = 0.0  # waiting for the data loader
    val: float = 0.0  # periodic validations
    val_final: float = 0.0  # the final (full-split) validation under a budget
    save: float = 0.0  # every checkpoint commit
    probe: float = 0.0  # estimates before the first step (reserve, save cost)
    n_val: int = 0
    n_save: int = 0
    skipped_val: int = 0  # due by val_every/val_every_iters but skipped to hold the share
    skipped_save: int = 0  # a new best not written (its weights are gone by the next allowed save)
    last_val: float = 0.0
    last_save: float = 0.0

    def add_val(self, seconds: float, final: bool = False) -> None:
        self.n_val += 1
        if final:
            self.val_final += seconds
        else:
            self.val += seconds
            self.last_val = seconds

    def add_save(self, seconds: float) -> None:
        self.n_save, self.save, self.last_save = self.n_save + 1, self.save + seconds, seconds

    def shares(self, end: float) -> dict[str, float]:
        """Seconds per activity and the total; ``train`` = the rest (forward, backward, optimiser, logging)."""
        total = max(end - self.start, 1e-9)
        validation = self.val + self.val_final
        other = self.wait + validation + self.save + self.probe
        return {
            "total": total,
            "train": max(total - other, 0.0),
            "data_wait": self.wait,
            "validation": validation,
            "validation_final": self.val_final,
            "saving": self.save,
            "probe": self.probe,
        }

    def summary(self, end: float, budget: float | None, run_seconds: float | None = None) -> str:
        """The run log's closing line: each share of this process's time, and under a budget where the run
        (``run_seconds``, resumed time included) ended relative to it."""
        s = self.shares(end)
        total = s["total"]

        def pct(x: float) -> str:
            return f"{x / total:.1%}"

        text = (
            f"time shares of {total:.1f}s: training steps {pct(s['train'])}, data wait {pct(s['data_wait'])}, "
            f"validation {pct(s['validation'])} ({self.n_val}x, final full split {pct(s['validation_final'])}), "
            f"saving {pct(s['saving'])} ({self.n_save}x), estimates {pct(s['probe'])}"
        )
        if self.skipped_val or self.skipped_save:
            text += f"; skipped to hold the shares: {self.skipped_val} validation(s), {self.skipped_save} save(s)"
        if budget:
            seconds = total if run_seconds is None else run_seconds
            text += f"; budget {budget:.1f}s, the run ended at {seconds / budget:.1%} of it ({seconds:.1f}s)"
        return text


def warmup_warning(schedule: ScheduleConfig, expected_steps: float, how: str) -> str | None:
    """A warning when ``schedule.warmup_iters`` is longer than a quarter of the run (``how`` says where the
    expected length comes from), naming the keys to change; None otherwise."""
    w = schedule.warmup_iters
    if schedule.name == "onecycle" or not w or expected_steps <= 0 or w <= expected_steps / 4:
        return None
    return (
        f"warning: schedule.warmup_iters = {w} is {w / expected_steps:.0%} of the run ({how}: about "
        f"{expected_steps:.0f} optimiser steps), so the peak optim.lr is reached late or never; set "
        "schedule.warmup_fraction (e.g. 0.05 = 5% of the run) and schedule.warmup_iters = 0"
    )
