"""Time-budgeted training: validation and save shares, the end within 2% of the budget, warmup warnings,
all from the trainer's own accounting under a fake clock (validation and saving made to cost fake time)."""

from __future__ import annotations

import re

import pytest
from conftest import FakeClock

from segcli.config.schema import ScheduleConfig
from segcli.train.budget import BudgetPolicy, Ledger, subsample_indices, warmup_warning
from segcli.train.trainer import train


class CostlyClock(FakeClock):
    """One fake second per iteration, ``per_image`` fake seconds per validated image and ``per_save`` per commit."""

    def __init__(self, per_image: float, per_save: float) -> None:
        super().__init__()
        self.per_image, self.per_save = per_image, per_save
        self.validated: list[int] = []


class SlowingClock(CostlyClock):
    """A machine that gets loaded: from ``at`` fake seconds into the run, steps, validated images and commits all
    take ``factor`` times as long (two other jobs started)."""

    def __init__(self, per_image: float, per_save: float, at: float, factor: float = 3.0) -> None:
        super().__init__(per_image, per_save)
        self.at, self.factor, self.base = self.now + at, factor, (per_image, per_save)

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        slow = self.factor if self.now >= self.at else 1.0
        self.now += slow
        self.per_image, self.per_save = self.base[0] * slow, self.base[1] * slow


def patch_costs(monkeypatch: pytest.MonkeyPatch, clock: CostlyClock) -> None:
    import segcli.train.trainer as trainer

    real_confusion, real_with, real_commit = trainer.confusion_over_loader, trainer.confusion_with, trainer.commit

    def confusion(model, loader, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        clock.validated.append(len(loader.dataset))
        clock.now += clock.per_image * len(loader.dataset)
        return real_confusion(model, loader, *args, **kwargs)

    def confusion_with(model, batches, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen = []  # the model's validation reads batches from a generator: count the images as they pass

        def counted():  # noqa: ANN202
            for images, masks in batches:
                seen.append(len(masks))
                yield images, masks

        out = real_with(model, counted(), *args, **kwargs)
        clock.validated.append(sum(seen))
        clock.now += clock.per_image * sum(seen)
        return out

    def commit(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        clock.now += clock.per_save
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(trainer, "clock", clock)
    monkeypatch.setattr(trainer, "confusion_over_loader", confusion)
    monkeypatch.setattr(trainer, "confusion_with", confusion_with)
    monkeypatch.setattr(trainer, "commit", commit)


def shares(log: str) -> dict[str, float]:
    line = next(x for x in log.splitlines() if "time shares of" in x)
    found = {
        "validation": re.search(r"validation ([\d.]+)%", line),
        "saving": re.search(r"saving ([\d.]+)%", line),
        "training": re.search(r"training steps ([\d.]+)%", line),
        "data_wait": re.search(r"data wait ([\d.]+)%", line),
        "ended": re.search(r"the run ended at ([\d.]+)% of it", line),
    }
    return {k: float(m.group(1)) for k, m in found.items() if m}


def test_budgeted_run_holds_validation_and_saving_shares(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0.1 fake s per val image: validating all 8 images every 4-iteration epoch (val_every=1) would take
    # 0.8 s per 4 s of training, 20% of the budget; every checkpoint costs 1 fake s (one per epoch: 25%)
    clock = CostlyClock(per_image=0.1, per_save=1.0)
    patch_costs(monkeypatch, clock)
    over = [o for o in tiny_overrides if not o.startswith("train.epochs")]
    over += ["train.time_budget=200s", "train.val_every=1", "train.save_min_seconds=30", "train.plots=false"]
    result = train("quickstart", over, callbacks=[clock])
    log = (result.run_dir / "log.txt").read_text()
    s = shares(log)
    assert s["validation"] <= 3.0, log
    assert s["saving"] <= 2.0, log
    assert abs(s["ended"] - 100.0) <= 2.0, log
    assert s["training"] > 90.0
    # the trainer's own accounting agrees with the log
    t = result.timing
    assert t["validation"] / 200 <= 0.03 and t["saving"] / 200 <= 0.02
    # periodic validations ran on the fixed subsample, several times; the last one on the full split (8 images)
    assert clock.validated[-1] == 8
    periodic = clock.validated[1:-1]  # the first is the reserve estimate
    assert len(periodic) >= 3
    assert "time budget 200s: validation every so often on" in log
    # the final save: the weights and the metrics of every epoch, the last row validated on the full split
    rows = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) - 1 == result.epochs and "mIoU" in result.last
    assert (result.run_dir / "weights" / "last.safetensors").is_file()


def test_a_slowing_machine_still_ends_within_its_bound(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reported: with two other jobs on the machine a 60 s budget ran 76.6 s. Here steps, validation and saves all
    get 3x slower halfway through a 100 s budget: the reserve for the final validation and save, measured on the
    quiet half, is re-estimated from the step time now, so the run still ends within max(2% of the budget, one
    step) of it, and validation (periodic and final) stays under its 3% cap."""
    clock = SlowingClock(per_image=0.02, per_save=3.0, at=50.0)
    patch_costs(monkeypatch, clock)
    over = [o for o in tiny_overrides if not o.startswith("train.epochs")]
    over += ["train.time_budget=100s", "train.val_every=1", "train.save_min_seconds=30", "train.plots=false"]
    result = train("quickstart", over, callbacks=[clock])
    log = (result.run_dir / "log.txt").read_text()
    s = shares(log)
    bound = max(2.0, 3.0 / 100 * 100)  # percent of the budget: 2%, or one (slow, 3 s) step
    assert abs(s["ended"] - 100.0) <= bound, log
    assert s["validation"] <= 3.0, log
    assert clock.validated[-1] == 8 and clock.per_image == pytest.approx(0.06)  # the final validation ran slow


def test_long_warmup_warns_naming_the_keys(tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # epochs mode: 2 epochs x 4 iterations = 8 steps, warmup 5 iterations
    over = [o for o in tiny_overrides if not o.startswith("schedule.warmup_iters")]
    result = train("quickstart", [*over, "schedule.warmup_iters=5", "train.plots=false"])
    log = (result.run_dir / "log.txt").read_text()
    assert "schedule.warmup_iters = 5 is 62% of the run" in log
    assert "schedule.warmup_fraction" in log
    # budget mode: the length in steps is known after 20 steps (1 fake second each: 40 s = about 40 steps)
    clock = FakeClock()
    monkeypatch.setattr("segcli.train.trainer.clock", clock)
    over = [o for o in over if not o.startswith("train.epochs")]
    budgeted = [*over, "train.time_budget=40s", "schedule.warmup_iters=50", "train.plots=false"]
    result = train("quickstart", budgeted, callbacks=[clock])
    log = (result.run_dir / "log.txt").read_text()
    assert re.search(r"schedule.warmup_iters = 50 is \d+% of the run \(train.time_budget", log), log
    # a fraction of the run instead: no warning
    fine = [*over, "train.time_budget=40s", "schedule.warmup_iters=0", "schedule.warmup_fraction=0.05"]
    result = train("quickstart", [*fine, "train.plots=false"], callbacks=[clock])
    assert "warmup_iters" not in (result.run_dir / "log.txt").read_text().split("start:")[-1].split("\n", 1)[1]


def test_policy_sizes_the_subsample_from_the_measured_cost() -> None:
    # 1000 s budget, 2.5% for periodic validation = 25 s, 10 validations = 2.5 s each at 0.05 s/image = 50 images
    policy = BudgetPolicy(1000.0, 500, 0.05, 1.0, 60.0, min_images=4)
    assert policy.subsample == 50
    assert policy.final_reserve == pytest.approx(500 * 0.05 + 1.0)
    ledger = Ledger(start=0.0)
    assert not policy.may_validate(ledger, elapsed=50.0)  # 2.5 s now would be 5% of 50 s
    assert policy.may_validate(ledger, elapsed=100.0)
    ledger.add_val(2.5)
    assert not policy.may_validate(ledger, elapsed=150.0) and policy.may_validate(ledger, elapsed=200.0)
    assert not policy.may_save(ledger, elapsed=1000.0, since_last=59.0)  # save_min_seconds
    assert policy.may_save(ledger, elapsed=1000.0, since_last=60.0)
    assert policy.may_save(ledger, elapsed=1000.0, since_last=1.0, best=True)  # a new best needs only the share
    ledger.add_save(15.0)
    assert not policy.may_save(ledger, elapsed=1000.0, since_last=600.0)  # 15 + 15 s > 1.5% of 1000 s
    # a slow model: never fewer images than one eval batch (or the split)
    assert BudgetPolicy(60.0, 500, 10.0, 1.0, 60.0, min_images=4).subsample == 4
    assert BudgetPolicy(60.0, 2, 10.0, 1.0, 60.0, min_images=4).subsample == 2
    assert subsample_indices(10, 4) == [0, 2, 5, 7] and subsample_indices(3, 5) == [0, 1, 2]


def test_periodic_validations_leave_room_for_the_final_one_under_the_cap() -> None:
    """Reported: a 60 s budget with val_every=1 spent 3.2% validating (cap 3%): the periodic ones took their 2.5%
    share and the final full split came on top. A periodic validation now also fits with the final one in 3%."""
    policy = BudgetPolicy(100.0, val_images=100, val_per_image=0.01, save_estimate=0.0, save_min_seconds=0)
    ledger = Ledger(0.0, val=1.9, last_val=0.25)
    assert policy.may_validate(ledger, elapsed=90.0)  # 2.15 s <= 2.5% of 90 s, and no final counted
    assert policy.may_validate(ledger, elapsed=90.0, final=0.8)  # 2.15 + 0.8 <= 3 s
    assert not policy.may_validate(ledger, elapsed=90.0, final=1.0)  # 2.15 + 1.0 > 3% of the budget


def test_warmup_warning_rule() -> None:
    assert warmup_warning(ScheduleConfig(warmup_iters=26), 100, "x") is not None
    assert warmup_warning(ScheduleConfig(warmup_iters=25), 100, "x") is None
    assert warmup_warning(ScheduleConfig(name="onecycle", warmup_iters=500), 100, "x") is None


def test_a_reserve_over_a_quarter_of_the_budget_is_named() -> None:
    assert "warning: that is 50% of the budget" in BudgetPolicy(100.0, 50, 1.0, 0.0, 60.0).describe()
    assert "warning" not in BudgetPolicy(100.0, 5, 1.0, 0.0, 60.0).describe()
