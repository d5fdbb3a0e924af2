"""The training toolbox: schedules, parameter groups, accumulation, EMA, early stopping, budgets."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from segcli.config.schema import OptimConfig, ScheduleConfig, parse_duration
from segcli.engine.ema import ModelEMA
from segcli.engine.optim import build_optimizer, lr_factor, param_groups
from segcli.engine.trainer import train
from segcli.errors import PresetError
from segcli.models import build_model


def rows(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


@pytest.mark.parametrize("name", ["poly", "cosine", "onecycle", "step", "constant"])
def test_schedules_shape(name: str) -> None:
    cfg = ScheduleConfig(name=name, warmup_iters=10, warmup_factor=0.1, milestones=(0.5, 0.75), gamma=0.1)
    f = [lr_factor(cfg, s, s / 100, 1.0) for s in range(101)]
    if name == "onecycle":
        assert f[0] == pytest.approx(0.1) and max(f) == pytest.approx(1.0, abs=1e-2)
    else:
        assert f[0] == pytest.approx(0.1)  # linear warmup from warmup_factor
        assert f[5] == pytest.approx(0.1 + 0.9 * 0.5, rel=0.2)
    if name in ("poly", "cosine", "onecycle"):
        assert f[-1] == pytest.approx(0.0, abs=1e-9)  # fully annealed at the end
        assert all(a >= b - 1e-12 for a, b in zip(f[30:], f[31:]))  # monotone decay after the peak
    if name == "step":
        assert f[49] == pytest.approx(1.0) and f[50] == pytest.approx(0.1) and f[80] == pytest.approx(0.01)
    if name == "constant":
        assert f[50] == f[100] == 1.0


def test_poly_reaches_min_lr() -> None:
    cfg = ScheduleConfig(name="poly", min_lr=1e-4, power=1.0)
    assert lr_factor(cfg, 100, 1.0, 1e-2) * 1e-2 == pytest.approx(1e-4)
    assert lr_factor(cfg, 50, 0.5, 1e-2) * 1e-2 == pytest.approx(1e-4 + (1e-2 - 1e-4) * 0.5)


def test_param_groups_split_backbone_and_no_decay() -> None:
    model = build_model("fpn", 3, backbone="resnet18", decoder_channels=16)
    groups = param_groups(model, OptimConfig(lr=0.1, weight_decay=0.01, backbone_lr_mult=0.1))
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone", "backbone_no_decay", "decoder", "decoder_no_decay"}
    assert by_name["backbone"]["lr"] == pytest.approx(0.01) and by_name["decoder"]["lr"] == pytest.approx(0.1)
    assert by_name["decoder_no_decay"]["weight_decay"] == 0.0 and by_name["decoder"]["weight_decay"] == 0.01
    n_params = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups) == n_params
    bn = model.net.encoder.body.bn1.weight
    assert any(bn is p for p in by_name["backbone_no_decay"]["params"])
    for name in ("sgd", "adam", "adamw"):
        opt = build_optimizer(model, OptimConfig(name=name, nesterov=True))
        assert len(opt.param_groups) == 4


def test_ema_tracks_weights() -> None:
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = ModelEMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # effective decay min(0.5, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 1 - d))
    state = ema.state_dict()
    other = ModelEMA(model, 0.5)
    other.load_state_dict(state)
    assert other.updates == 1 and torch.equal(other.module.weight, ema.module.weight)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["15", "abc", "10x", "0s"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(PresetError, match="train.time_budget"):
        parse_duration(text)


@pytest.mark.slow
def test_iterations_accumulation_ema(tiny_overrides: list[str]) -> None:
    res = train("quickstart", [*tiny_overrides, "train.iters=5", "train.accumulate=2", "train.ema=0.9"])
    r = rows(res.run_dir)
    # 16 images / batch 4 = 4 batches = 2 optimiser steps per epoch → 3 epochs, the last one partial
    assert [int(x["iterations"]) for x in r] == [2, 4, 5]
    assert all(x["ema_mIoU"] for x in r)
    assert (res.run_dir / "weights" / "ema.safetensors").is_file()


def test_early_stopping(tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitored mIoU peaks at epoch 2; with patience 2 the run stops after epoch 4."""
    import segcli.engine.trainer as trainer

    scores = iter([0.5, 0.6, 0.55, 0.6, 0.9, 0.9, 0.9, 0.9])

    class FakeMatrix:
        def compute(self, absent: str = "nan", names: object = None) -> dict:
            return {"mIoU": next(scores), "pixel_accuracy": 0.9, "mean_accuracy": 0.8, "fwIoU": 0.8, "mean_dice": 0.7}

    monkeypatch.setattr(trainer, "confusion_over_loader", lambda *a, **k: FakeMatrix())
    res = train("quickstart", [*tiny_overrides, "train.epochs=8", "train.patience=2"])
    assert [float(x["mIoU"]) for x in rows(res.run_dir)] == [0.5, 0.6, 0.55, 0.6]  # 0.6 again is no improvement
    assert res.best["epoch"] == 2


@pytest.mark.slow
def test_time_budget_ends_annealed_with_validation(tiny_overrides: list[str]) -> None:
    res = train("quickstart", [*tiny_overrides, "train.time_budget=4s", "schedule.warmup_iters=0"])
    r = rows(res.run_dir)
    assert r and r[-1]["mIoU"] != ""
    assert float(r[-1]["lr"]) < 0.2 * 0.002  # annealed close to zero at the budget
    elapsed = torch.load(res.run_dir / "state.pt", weights_only=True)["elapsed"]
    assert 3.0 < elapsed < 8.0  # the run (training + final validation) ends near the 4 s budget
    assert not math.isnan(float(r[-1]["mIoU"]))
