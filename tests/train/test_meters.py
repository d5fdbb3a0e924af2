"""The loss meter: losses summed on the device and read back in windows, the first non-finite one named."""

from __future__ import annotations

import math

import pytest
import torch

from segcli.train.meters import LossMeter, ValLoss
from segcli.train.state import Progress


def test_loss_meter_sum_does_not_depend_on_when_it_is_read() -> None:
    losses = [torch.tensor(v, dtype=torch.float32) for v in (0.1, 2.7, 1e-3, 0.33, 1.9, 0.05)]
    totals = []
    for read_at in ({5}, {0, 2, 5}, {0, 1, 2, 3, 4, 5}):
        meter, progress = LossMeter(torch.device("cpu"), 0), Progress()
        for i, loss in enumerate(losses):
            meter.add(loss, i)
            if i in read_at:
                assert meter.read(progress) is None
        totals.append(progress.epoch_loss)
    assert totals[0] == totals[1] == totals[2] == sum(float(v) for v in losses)


def test_loss_meter_names_the_first_non_finite_iteration() -> None:
    meter, progress = LossMeter(torch.device("cpu"), 0), Progress()
    for i, v in enumerate([0.5, 0.4, float("inf"), float("nan"), 0.3]):
        meter.add(torch.tensor(v), i)
    assert meter.read(progress) == (2, float("inf"))
    assert progress.epoch_loss == 0.0  # nothing of a broken window is kept


def test_every_iteration_is_known_after_the_reads_and_taken_once() -> None:
    meter, progress = LossMeter(torch.device("cpu"), 0), Progress()
    values = [float(i) / 7 for i in range(40)]  # more than the buffer's first size: it grows
    for i, v in enumerate(values[:30]):
        meter.add(torch.tensor(v), i)
    assert meter.read(progress) is None  # e.g. before a validation inside the epoch: nothing taken yet
    for i, v in enumerate(values[30:], 30):
        meter.add(torch.tensor(v), i)
    assert meter.read(progress) is None
    taken = meter.take()
    assert taken == pytest.approx(values) and meter.shown == pytest.approx(sum(values) / 40)
    assert meter.take() == () and meter.shown == pytest.approx(sum(values) / 40)  # kept until the next read


def test_validation_loss_is_the_mean_over_images() -> None:
    meter = ValLoss(torch.nn.CrossEntropyLoss(ignore_index=255), torch.device("cpu"))
    logits = torch.zeros(3, 4, 4)  # uniform over 3 classes: log(3) per pixel
    meter(logits, torch.zeros(4, 4, dtype=torch.uint8))
    meter(logits, torch.full((4, 4), 2))
    assert meter.mean() == pytest.approx(math.log(3))
    assert math.isnan(ValLoss(torch.nn.CrossEntropyLoss(), torch.device("cpu")).mean())
