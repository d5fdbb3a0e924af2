"""train.average: the weights averaged over the run's last part (segcli/train/ema.py TailAverage)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from segcli.train.ema import TAIL_EMA_DECAY, ModelEMA, TailAverage


def _set(model: nn.Module, value: float) -> nn.Module:
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def test_swa_is_the_plain_mean_of_the_weights_from_its_start() -> None:
    model = _set(nn.Linear(2, 1, bias=False), 100.0)
    avg = TailAverage("swa", start=0.5)
    avg.update(model, 0.4)  # before the start: nothing kept
    assert avg.module is None and avg.models == 0
    for value, fraction in [(1.0, 0.5), (2.0, 0.6), (6.0, 0.9)]:
        avg.update(_set(model, value), fraction)
    assert avg.models == 3
    assert torch.allclose(avg.module.weight, torch.full((1, 2), 3.0))  # (1 + 2 + 6) / 3
    assert "swa" in avg.describe() and "last 50% of the run (3 steps)" in avg.describe()


def test_ema_tail_starts_from_the_weights_at_its_start() -> None:
    model = _set(nn.Linear(2, 1, bias=False), 1.0)
    avg = TailAverage("ema", start=0.0)
    avg.update(model, 0.0)
    avg.update(_set(model, 2.0), 0.1)
    d = min(TAIL_EMA_DECAY, 2 / 11)  # ModelEMA's warm-up of the decay
    assert torch.allclose(avg.module.weight, torch.full((1, 2), d * 1.0 + (1 - d) * 2.0))


def test_uniform_model_ema_averages_buffers_and_copies_counters() -> None:
    model = nn.BatchNorm1d(2)
    ema = ModelEMA(model, 0.5, uniform=True)
    with torch.no_grad():
        model.running_mean.fill_(4.0)
    model.num_batches_tracked.fill_(7)
    ema.update(model)
    assert torch.allclose(ema.module.running_mean, torch.full((2,), 2.0))  # (0 + 4) / 2
    assert int(ema.module.num_batches_tracked) == 7


def test_state_round_trip_before_and_after_the_start() -> None:
    model = _set(nn.Linear(2, 1, bias=False), 1.0)
    avg = TailAverage("swa", start=0.2)
    other = TailAverage("swa", start=0.2)
    other.load_state_dict(avg.state_dict(), model)
    assert other.module is None
    avg.update(model, 0.3)
    avg.update(_set(model, 3.0), 0.4)
    other.load_state_dict(avg.state_dict(), model)
    assert other.models == 2 and torch.equal(other.module.weight, avg.module.weight)
    other.update(_set(model, 5.0), 0.5)
    assert torch.allclose(other.module.weight, torch.full((1, 2), 3.0))  # (1 + 3 + 5) / 3: still uniform


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not ema or swa"):
        TailAverage("none", 0.5)
