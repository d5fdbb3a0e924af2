"""The pacer alone: every periodic decision of a run from a fake clock and a counter, no model or data."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from segcli.config.schema import TrainConfig
from segcli.core import distributed as ddp
from segcli.train.pacer import Due, Pacer, Plan
from segcli.train.state import Progress

CPU = torch.device("cpu")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(t: TrainConfig, batches: int = 10, clock: Clock | None = None, dist: ddp.DistInfo | None = None):
    clock = clock or Clock()
    pr = Progress()
    pacer = Pacer(t, Plan.of(t, batches), pr, dist or ddp.DistInfo(), CPU, clock)
    return pacer, pr, clock


def run_epoch(pacer: Pacer, pr: Progress, clock: Clock, accumulate: int = 1, seconds: float = 1.0) -> list[Due]:
    """One epoch of steps, one fake second each; the Due of every iteration (stops at a stop)."""
    dues = []
    n = pacer.plan.iters_per_epoch
    for it in range(pr.iter, n):
        stepped = (it + 1) % accumulate == 0 or it + 1 == n
        clock.now += seconds
        pr.step += stepped
        pr.iter = it + 1
        due = pacer.after_step(it, stepped, seconds)
        dues.append(due)
        if due.save:
            pacer.saved(clock.now)
        if due.stop:
            break
    return dues


def test_plan_lengths() -> None:
    t = TrainConfig(epochs=3, accumulate=2)
    assert Plan.of(t, 10) == Plan(10, 3, 15, None)
    assert Plan.of(replace(t, iters=12), 10) == Plan(10, 3, 12, None)
    budget = Plan.of(replace(t, time_budget="2m"), 10)
    assert budget.budget == 120.0 and budget.total_steps is None
    assert budget.fraction(0, 60.0, 20.0) == pytest.approx(0.6)


def test_log_points_every_log_every_and_at_the_epoch_start_and_end() -> None:
    pacer, pr, _ = make(TrainConfig(log_every=4), batches=10)
    assert [it for it in range(10) if pacer.is_log_point(it, first=0)] == [0, 3, 7, 9]
    pr.epoch = 1  # global iterations 11..20: 12, 16, 20 are log points, and the resumed epoch's first iteration
    assert [it for it in range(5, 10) if pacer.is_log_point(it, first=5)] == [5, 9]


def test_validation_inside_an_epoch_waits_for_the_optimiser_step() -> None:
    pacer, pr, clock = make(TrainConfig(val_every_iters=3, epochs=1), batches=10)
    dues = run_epoch(pacer, pr, clock, accumulate=2)
    # due at iterations 3, 6 and 9 (global); each waits for the next step (iterations 4, 6, 10->epoch end)
    assert [i + 1 for i, d in enumerate(dues) if d.validate] == [4, 6]
    assert not any(d.save or d.stop for d in dues)


def test_saves_inside_an_epoch_keep_their_minimum_spacing() -> None:
    pacer, pr, clock = make(TrainConfig(save_every=2, save_min_seconds=5.0, epochs=1), batches=12)
    dues = run_epoch(pacer, pr, clock)
    # due every 2 iterations, but at least 5 fake seconds after the last save (one second a step): the due save
    # waits for the spacing, then goes at the next step; the epoch's last iteration is left to the epoch's end
    assert [i + 1 for i, d in enumerate(dues) if d.save] == [5, 10]


def test_the_step_count_stops_the_run() -> None:
    pacer, pr, clock = make(TrainConfig(iters=7), batches=10)
    dues = run_epoch(pacer, pr, clock)
    assert len(dues) == 7 and dues[-1].stop


def test_a_budget_stops_within_half_a_step_of_its_end() -> None:
    pacer, pr, clock = make(TrainConfig(time_budget="30s", log_every=1), batches=1000)
    dues = run_epoch(pacer, pr, clock, seconds=1.0)
    assert dues[-1].stop and abs(len(dues) - 30) <= 1
    assert pacer.fraction() == pytest.approx(1.0, abs=1 / 30)


def test_a_budget_keeps_validation_within_its_share() -> None:
    t = TrainConfig(time_budget="1000s", val_every_iters=1, log_every=1000)
    pacer, pr, clock = make(t, batches=10_000)
    pacer.budget_measured(val_images=10, per_image=0.5, save_estimate=0.0, eval_batch=1)
    validated = 0
    for it in range(400):
        clock.now += 1.0
        pr.step += 1
        pr.iter = it + 1
        if pacer.after_step(it, True, 1.0).validate:
            with pacer.validating():
                clock.now += pacer.policy.val_cost(pacer.ledger)
            validated += 1
    elapsed = clock.now - pacer.ledger.start
    assert 0 < pacer.ledger.val <= pacer.policy.val_share * elapsed
    assert pacer.ledger.skipped_val > 300 and validated == pacer.ledger.n_val


def test_epoch_end_validates_every_val_every_epochs_and_not_twice_at_one_position() -> None:
    pacer, pr, clock = make(TrainConfig(val_every=2, epochs=4), batches=5)
    results = []
    for epoch in range(4):
        pr.epoch, pr.iter = epoch, 5
        pr.finished = epoch == 3
        results.append(pacer.validate_at_epoch_end())
    assert results == [False, True, False, True]
    with pacer.validating():  # the final validation ran at this position (epoch 4, iteration 5)
        pass
    assert not pacer.validate_at_epoch_end()


def test_a_validation_makes_the_position_unsavable_until_it_ends() -> None:
    pacer, _, _ = make(TrainConfig())
    pacer.savable = True
    with pacer.validating():
        assert not pacer.savable
    assert pacer.savable and pacer.ledger.n_val == 1


def test_ddp_ranks_agree_on_the_stop_at_log_points_and_follow_rank_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ranks simulated: the other rank ran out of time (all_reduce says 1), rank 0 decides shares."""
    reduced, broadcast = [], []

    def all_reduce_sum(t: torch.Tensor, info: ddp.DistInfo) -> torch.Tensor:
        reduced.append(float(t))
        t += 1.0  # the other rank says: stop
        return t

    def broadcast_object(obj, info):  # noqa: ANN001, ANN202
        broadcast.append(obj)
        return False  # rank 0 says: no validation now

    monkeypatch.setattr(ddp, "all_reduce_sum", all_reduce_sum)
    monkeypatch.setattr(ddp, "broadcast_object", broadcast_object)
    t = TrainConfig(time_budget="1000s", log_every=4, val_every_iters=1)
    pacer, pr, clock = make(t, batches=100, dist=ddp.DistInfo(rank=1, world_size=2))
    pacer.budget_measured(val_images=10, per_image=0.001, save_estimate=0.0, eval_batch=1)
    dues = run_epoch(pacer, pr, clock)
    assert len(dues) == 4 and dues[-1].stop  # agreed at the first log point, not before
    assert len(reduced) == 1
    assert not any(d.validate for d in dues[:-1]) and broadcast  # rank 0's "no" is followed


def test_a_slowing_machine_makes_the_reserve_dearer_and_the_stop_earlier() -> None:
    """Steps get 3x slower halfway: the final validation and save, measured on the quiet half, are re-estimated
    at the step time now, so the time left after the stop covers them and the run (stop + final validation +
    final save, at the slow rate) ends within max(2% of the budget, one step) of it."""
    t = TrainConfig(time_budget="300s", log_every=1000)
    pacer, pr, clock = make(t, batches=10_000)
    pacer.budget_measured(val_images=100, per_image=0.05, save_estimate=4.0, eval_batch=1)  # 5 s + 4 s
    assert pacer.reserve_now() == pytest.approx(9.0)
    it, slow = 0, 1.0
    while True:
        slow = 3.0 if clock.now - pacer.t_run >= 150 else 1.0
        clock.now += slow
        pr.step, pr.iter = pr.step + 1, it + 1
        if pacer.after_step(it, True, slow).stop:
            break
        if it == 40:  # a save measured on the quiet half: 4 s at 1 s a step
            t0 = clock.now
            clock.now += 4.0
            pacer.saved(t0)
        it += 1
    assert pacer.step_now == 3.0 and pacer.reserve_now() == pytest.approx(27.0)  # both 3x dearer now
    end = clock.now + 3 * 5.0 + 3 * 4.0 - pacer.t_run  # the final validation and save at the slow rate
    assert abs(end - 300) <= max(0.02 * 300, 3.0)
    assert pacer.fraction() <= 1.0  # the lr schedule's position never passes its end


def test_a_cost_measured_under_load_is_not_scaled_up_again() -> None:
    """A save measured just after the load began takes its step time from the steps after it: not 3x again."""
    pacer, pr, clock = make(TrainConfig(time_budget="1000s", log_every=1000), batches=10_000)
    pacer.budget_measured(val_images=10, per_image=0.1, save_estimate=1.0, eval_batch=1)
    for it in range(20):
        pacer.after_step(it, True, 1.0 if it < 10 else 3.0)
        if it == 10:
            pacer._measured("save", 3.0)  # measured right as the steps became 3x slower
    assert pacer.step_now == 3.0 and pacer._cost_now("save", 0.0) == pytest.approx(3.0)


def test_under_ddp_a_budget_run_takes_rank_0s_schedule_position(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ranks with clocks that disagree: the lr's position (fraction) is rank 0's on both, at every step,
    from one broadcast every log_every steps."""
    sent: list[object] = []

    def broadcast_object(obj, info):  # noqa: ANN001, ANN202
        if info.rank == 0:
            sent.append(obj)
        return sent[-1]  # rank 0 calls first at each step below

    monkeypatch.setattr(ddp, "broadcast_object", broadcast_object)
    monkeypatch.setattr(ddp, "all_reduce_sum", lambda t, info: t)  # the stop: neither rank's time is up
    t = TrainConfig(time_budget="100s", log_every=4)
    pacers = [make(t, batches=1000, dist=ddp.DistInfo(rank=r, world_size=2)) for r in (0, 1)]
    pacers[1][2].now += 3.0  # rank 1's clock is 3 s ahead and its steps are slower
    seen = []
    for step in range(10):
        fractions = []
        for (pacer, pr, clock), seconds in zip(pacers, (1.0, 1.5)):
            clock.now += seconds
            pr.step = step
            pacer.after_step(step, True, seconds)
            fractions.append(pacer.fraction())
        assert fractions[0] == fractions[1]
        seen.append(fractions[0])
    assert len(sent) == 3  # steps 0, 4 and 8
    assert seen == sorted(seen) and 0.0 < seen[-1] < 0.2  # it moves on between broadcasts, by rank 0's step time
    assert seen[5] == pytest.approx(seen[4] + 1.0 / 100, rel=1e-6)
