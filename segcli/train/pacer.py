"""What is due now in a training run: a log point, a validation, a checkpoint, the end.

One object answers for the whole run from the iteration counter, the clock and, under a time budget, the
shares of it that validation and saving may take (:class:`~segcli.train.budget.BudgetPolicy`). The trainer
asks after every step (:meth:`Pacer.after_step`) and at each epoch's end (:meth:`Pacer.validate_at_epoch_end`,
:meth:`Pacer.save_at_epoch_end`), does what it is told and reports what it did (:meth:`Pacer.validated`,
:meth:`Pacer.saved`); it keeps no flags of its own.

Rules, in one place:

* **Log points** every ``train.log_every`` iterations and at the first and last iteration of a (resumed) epoch:
  the loss is read off the device there (so the progress line at an epoch's end is exact), and under a budget
  with DDP the ranks agree there whether time is up.
* **Stop** when the plan's optimiser steps are done, or under a budget when the time left, less the reserve for
  the final validation and save, is under half a step (so the run ends nearer its budget than one more step
  would take it). The reserve is re-estimated as the run goes: each cost (the full split's validation from the
  last periodic one, the save from the last save) is kept with the step time it was measured at and scaled by
  the step time now (the median of the last :data:`RECENT_STEPS`), so a machine that gets loaded halfway makes
  the final validation and save dearer in the estimate as it does on the clock.
* **Validation** every ``train.val_every`` epochs, or every ``train.val_every_iters`` iterations (then inside
  an epoch, at the next optimiser step), and at the end; under a budget a due one is skipped while it would
  take validation past its share of the time so far, and the end validates the full split.
* **Checkpoints** at every epoch's end (under a budget: when the clock allows, or on a new best, or at the
  end), every ``train.save_every`` iterations inside an epoch at least ``train.save_min_seconds`` apart, under a
  budget also by the clock at log points; a position is savable only right after an optimiser step.

Under DDP rank 0 decides every share question and the other ranks follow (a broadcast); the stop by the
clock and the minimum spacing of saves are agreed (any rank says so, all do), so ranks step together; under a
budget the lr schedule's position is rank 0's, broadcast every ``log_every`` steps, so ranks keep equal weights. The
pacer reads the trainer's clock (passed in), so tests drive it with a fake one.
"""

from __future__ import annotations

import contextlib
import statistics
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from segcli.config.schema import ScheduleConfig, TrainConfig
from segcli.core import distributed as ddp
from segcli.train.budget import BudgetPolicy, Ledger, warmup_warning

__all__ = ["Due", "Pacer", "Plan", "all_agree"]

RECENT_STEPS = 8  # the step time now: the median of this many last steps (one slow step does not move it)
BASELINE_STEPS = 3  # a cost's step time: the median of this many steps after it was measured


@dataclass(frozen=True)
class Plan:
    """How long the run is: a number of epochs, of optimiser steps, or a time budget."""

    iters_per_epoch: int
    epochs: int
    total_steps: int | None
    budget: float | None

    @classmethod
    def of(cls, t: TrainConfig, batches: int) -> Plan:
        steps_per_epoch = -(-batches // t.accumulate)
        budget = t.time_budget_seconds
        if budget is not None:
            return cls(batches, 10**9, None, budget)
        if t.iters:
            return cls(batches, -(-t.iters // steps_per_epoch), t.iters, None)
        return cls(batches, t.epochs, steps_per_epoch * t.epochs, None)

    def fraction(self, step: int, seconds: float, reserve: float) -> float:
        """Training progress in [0, 1]: by the clock under a budget, less the ``reserve`` kept for the
        final validation and save."""
        if self.budget is not None:
            return seconds / max(self.budget - reserve, 1e-9)
        return step / max(self.total_steps or 1, 1)


@dataclass(frozen=True)
class Due:
    """What to do after a step."""

    validate: bool = False
    save: bool = False
    stop: bool = False


def all_agree(flag: bool, dist: ddp.DistInfo, device: torch.device) -> bool:
    """True on every rank when any rank says so (keeps DDP ranks stepping together)."""
    if not dist.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)  # NCCL reduces device tensors only
    ddp.all_reduce_sum(t, dist)
    return bool(t.item() > 0)


class Pacer:
    """The run's schedule of periodic work (see the module docstring)."""

    def __init__(
        self,
        t: TrainConfig,
        plan: Plan,
        progress: Any,  # segcli.train.state.Progress: step, epoch, iter, reserve, elapsed, finished
        dist: ddp.DistInfo,
        device: torch.device,
        clock: Callable[[], float],
    ) -> None:
        self.t, self.plan, self.pr, self.dist, self.device, self.clock = t, plan, progress, dist, device, clock
        self.ledger = Ledger(clock())  # where this process's time goes (written to the log at the end)
        self.policy: BudgetPolicy | None = None  # the shares under a time budget (set by budget_measured)
        self.t_run = clock() - progress.elapsed  # the run's start, resumed time included
        self.t_save = clock()  # the last save (train.save_min_seconds counts from it)
        self.save_seconds = 0.0  # the longest save so far (a budget keeps room for the final one)
        self.step_seconds = 0.0  # the last step's length (the stop by the clock is within half a step)
        self.savable = False  # the trainer says so right after an optimiser step; a save there is consistent
        self._validated_at: tuple[int, int] | None = None  # (epoch, iter) of the last validation
        self._val_waiting = self._save_waiting = False  # due inside an epoch, waiting for an optimiser step
        self._warmup_checked = plan.budget is None  # under a budget the run's length in steps is known later
        self._recent: deque[float] = deque(maxlen=RECENT_STEPS)  # the last steps' lengths
        # the final validation's / save's cost: (seconds, the step time it was measured at (0: not known yet),
        # the step count when it was measured)
        self._costs: dict[str, tuple[float, float, int]] = {}
        self._steps = 0  # steps (iterations) done by this process
        self._lr_reserve = 0.0  # the largest reserve estimated so far (the lr schedule's: it never moves back)
        self._agreed: tuple[int, float, float] | None = None  # DDP + budget: (step, fraction, per step) of rank 0

    # ------------------------------------------------------------------ the clock and the counter

    def global_iter(self, it: int) -> int:
        """Iterations since the run began when iteration ``it`` (0-based) of the current epoch ends."""
        return self.pr.epoch * self.plan.iters_per_epoch + it + 1

    def fraction(self) -> float:
        """Training progress in [0, 1] (the lr schedule's position): under a budget against the largest reserve
        estimated so far, so a re-estimate never moves the schedule back. Under DDP with a budget it is the
        agreed one (:meth:`_agreed_fraction`): every rank's lr must be the same, or their weights drift apart."""
        if self.plan.budget is not None and self.dist.enabled:
            return self._agreed_fraction()
        return self._own_fraction()

    def _own_fraction(self) -> float:
        return min(self.plan.fraction(self.pr.step, self.clock() - self.t_run, self._budget_reserve()), 1.0)

    def _budget_reserve(self) -> float:
        return max(self.pr.reserve + self.save_seconds, self._lr_reserve)

    def _agreed_fraction(self) -> float:
        """Rank 0's fraction and its progress per optimiser step (its step time now over the training time),
        broadcast every ``train.log_every`` steps and carried forward by the step count in between: every rank
        computes the same number at the same step, with one broadcast per ``log_every`` steps."""
        step = self.pr.step
        if self._agreed is None or step - self._agreed[0] >= self.t.log_every:
            rate = self.step_now / max(self.plan.budget - self._budget_reserve(), 1e-9)
            fraction, rate = ddp.broadcast_object((self._own_fraction(), rate), self.dist)
            self._agreed = (step, fraction, rate)
        at, fraction, rate = self._agreed
        return min(fraction + (step - at) * rate, 1.0)

    @property
    def step_now(self) -> float:
        """The step time now: the median of the last :data:`RECENT_STEPS` steps (the last step before that)."""
        return statistics.median(self._recent) if self._recent else self.step_seconds

    def _measured(self, what: str, seconds: float) -> None:
        """Record the cost of the final ``val`` (full split) or ``save``, measured now. Its step time is read
        from the :data:`BASELINE_STEPS` steps that follow (the load it was measured under goes on into them; the
        steps before may predate a change of load)."""
        self._costs[what] = (seconds, 0.0, self._steps)

    def _cost_now(self, what: str, default: float) -> float:
        """A recorded cost scaled by how much slower (or faster) steps are now than when it was measured."""
        seconds, step, at = self._costs.get(what, (default, 0.0, 0))
        if step <= 0.0:
            if self._steps - at < BASELINE_STEPS:
                return seconds  # measured under the load of now
            step = statistics.median(list(self._recent)[-BASELINE_STEPS:])
            self._costs[what] = (seconds, step, at)
        return seconds * self.step_now / max(step, 1e-9)

    def reserve_now(self) -> float:
        """Seconds the final validation (full split), the final save and (with ``train.average``) the comparison
        of the averaged and trained weights on the val subsample will take at the step time now."""
        val = self._cost_now("val", self.pr.reserve) + self._cost_now("save", self.save_seconds)
        return val + self._cost_now("pick", 0.0)  # train.average: scoring both weights on the subsample at the end

    def is_log_point(self, it: int, first: int) -> bool:
        """Iteration ``it`` is a log point (every ``log_every``, the epoch's ``first`` and its last iteration)."""
        last = it + 1 == self.plan.iters_per_epoch
        return self.global_iter(it) % self.t.log_every == 0 or it == first or last

    @property
    def done(self) -> bool:
        """Nothing is left to train: finished, or the plan's epochs (and steps) are done."""
        pr, plan = self.pr, self.plan
        # an iters run extended after a cut-short last epoch has epochs left to run within the same epoch count
        steps_done = plan.total_steps is None or pr.step >= plan.total_steps
        return pr.finished or (pr.epoch >= plan.epochs and steps_done)

    # ------------------------------------------------------------------ after each step

    def after_step(self, it: int, stepped: bool, step_seconds: float) -> Due:
        """What iteration ``it`` of the epoch (just done; ``stepped``: it ended with an optimiser step) calls for."""
        self.step_seconds = step_seconds
        self._recent.append(step_seconds)
        self._steps += 1
        if self.plan.budget is not None:
            self._lr_reserve = max(self._lr_reserve, self.reserve_now())
        g = self.global_iter(it)
        if self._out_of_steps_or_time(g):
            return Due(stop=True)
        if it + 1 >= self.plan.iters_per_epoch:
            return Due()  # the epoch's end decides (validate_at_epoch_end, save_at_epoch_end)
        t = self.t
        self._val_waiting = self._val_waiting or bool(t.val_every_iters and g % t.val_every_iters == 0)
        self._save_waiting = self._save_waiting or bool(t.save_every and g % t.save_every == 0)
        self._save_waiting = self._save_waiting or (self.policy is not None and g % t.log_every == 0)
        if not stepped:
            return Due()
        validate = self._val_waiting and self._allows("val")
        self._val_waiting = False
        if self.policy is not None:
            save = self._save_waiting and self._allows("save")
            self._save_waiting = False
        else:
            save = self._save_waiting and all_agree(
                self.clock() - self.t_save >= t.save_min_seconds, self.dist, self.device
            )
        return Due(validate=validate, save=save)

    def _out_of_steps_or_time(self, g: int) -> bool:
        """The step count is reached, or the time budget is spent (under DDP the ranks agree on it every
        ``log_every`` iterations, so they stop together without an all-reduce per iteration)."""
        if self.plan.total_steps is not None and self.pr.step >= self.plan.total_steps:
            return True
        if self.plan.budget is None:
            return False
        if not self.dist.enabled:
            return self._spent()
        return g % self.t.log_every == 0 and all_agree(self._spent(), self.dist, self.device)

    def _spent(self) -> bool:
        """The budget's training time is used up, or closer than half a step (the step time now): stopping now
        lands nearer the budget than one more step would, however long a step is. The final validation and
        save are reserved at their cost re-estimated now (:meth:`reserve_now`)."""
        left = self.plan.budget - (self.clock() - self.t_run) - self.reserve_now()
        return left <= 0.5 * max(self.step_now, self.step_seconds if len(self._recent) < 3 else 0.0)

    # ------------------------------------------------------------------ at the epoch's end

    def validate_at_epoch_end(self) -> bool:
        """Validate now (the epoch's end): every ``val_every`` epochs, when ``val_every_iters`` falls on (or
        waited for) the epoch's last iteration, and at the end; not twice at one position unless it is the
        final full-split validation of a budgeted run."""
        t, pr = self.t, self.pr
        if t.val_every_iters:
            due = self._val_waiting or self.global_iter(pr.iter - 1) % t.val_every_iters == 0
        else:
            due = (pr.epoch + 1) % t.val_every == 0
        self._val_waiting = False
        if due and not pr.finished and not self._allows("val"):
            due = False
        if not due and not pr.finished:
            return False
        return self._validated_at != (pr.epoch, pr.iter) or self.final_validation  # a best inside was saved then

    def save_at_epoch_end(self, improved: bool) -> bool:
        """Commit the epoch (metrics.csv, weights, state): always, but under a budget only when the clock
        allows, the model improved, or the run is finished."""
        return improved or self.pr.finished or self._allows("save")

    @property
    def final_validation(self) -> bool:
        """This validation is a budgeted run's last: the full split, not the subsample."""
        return self.policy is not None and self.pr.finished

    def keeps_best(self) -> bool:
        """A new best found now is saved (under a budget, a periodic one only when saving fits its share)."""
        if self.policy is None or self.final_validation or self._allows("best"):
            return True
        self.ledger.skipped_save += 1
        return False

    # ------------------------------------------------------------------ what the trainer did

    @contextlib.contextmanager
    def validating(self) -> Iterator[None]:
        """Around a validation: the position is not savable meanwhile (an interrupt there saves nothing)."""
        t0, was, final = self.clock(), self.savable, self.final_validation  # (early stopping may finish the run)
        self.savable = False
        try:
            yield
        finally:
            self.savable = was
        self._validated_at = (self.pr.epoch, self.pr.iter)
        seconds = self.clock() - t0
        self.ledger.add_val(seconds, final)
        if self.policy is not None and not final and self.policy.subsample:  # the full split at this cost
            self._measured("val", seconds / self.policy.subsample * self.policy.val_images)

    def saved(self, t0: float) -> None:
        """A commit that began at ``t0`` has ended (every rank waited for it)."""
        self._save_waiting, self.t_save = False, self.clock()
        self.save_seconds = max(self.save_seconds, self.t_save - t0)
        self.ledger.add_save(self.t_save - t0)
        self._measured("save", self.t_save - t0)

    def budget_measured(
        self, val_images: int, per_image: float, save_estimate: float, eval_batch: int, average: bool = False
    ) -> str:
        """Set the budget's shares from the measured cost of validation and of a save; returns their description.
        ``average``: the end also scores two sets of weights on the val subsample (``train.average``)."""
        assert self.plan.budget is not None
        self.policy = BudgetPolicy(
            self.plan.budget, val_images, per_image, save_estimate, self.t.save_min_seconds, min_images=eval_batch
        )
        self.save_seconds = max(self.save_seconds, save_estimate)  # the final save is reserved from the first step
        self._measured("val", max(per_image * val_images, self.pr.reserve))
        self._measured("save", self.save_seconds)
        if average:
            self._measured("pick", 2 * per_image * self.policy.subsample)
        return self.policy.describe()

    def warmup_warning(self, schedule: ScheduleConfig) -> str | None:
        """Under a budget, once 20 steps give a step time: a warning when warmup_iters is over a quarter of the
        run (once per run)."""
        if self._warmup_checked or self.pr.step < 20:
            return None
        self._warmup_checked = True
        expected = self.pr.step / max(self.fraction(), 1e-9)
        return warmup_warning(schedule, expected, "train.time_budget at the step time measured so far")

    def _allows(self, what: str) -> bool:
        """Under a time budget, whether a due periodic validation (``val``), checkpoint (``save``) or new best
        (``best``) fits its share of the time so far (rank 0 decides for all ranks); always True without one."""
        if self.policy is None:
            return True
        elapsed = self.clock() - self.ledger.start
        if what == "val":
            ok = self.policy.may_validate(self.ledger, elapsed, final=self._cost_now("val", self.pr.reserve))
        else:
            ok = self.policy.may_save(self.ledger, elapsed, self.clock() - self.t_save, best=what == "best")
        ok = bool(ddp.broadcast_object(ok, self.dist))
        if not ok and what == "val":
            self.ledger.skipped_val += 1
        return ok
