"""Optimisers, parameter groups and learning-rate schedules (segcli/engine/optim.py)."""

from __future__ import annotations

import pytest

from segcli.config.schema import OptimConfig, ScheduleConfig
from segcli.engine.optim import build_optimizer, lr_factor, param_groups
from segcli.models import build_model


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


def test_scale_lr_with_batch_is_off_by_default_and_linear_or_sqrt_when_asked() -> None:
    from segcli.config.load import load_preset
    from segcli.engine.optim import batch_lr_scale

    p = load_preset("quickstart", []).preset
    assert batch_lr_scale(p.optim, 64) == 1.0
    linear = load_preset("quickstart", ["optim.scale_lr_with_batch=linear", "optim.lr_batch_size=16"]).preset
    assert batch_lr_scale(linear.optim, 64) == 4.0
    root = load_preset("quickstart", ["optim.scale_lr_with_batch=sqrt", "optim.lr_batch_size=16"]).preset
    assert batch_lr_scale(root.optim, 64) == 2.0


def test_scale_lr_with_batch_needs_the_batch_the_lr_was_tuned_for() -> None:
    import pytest

    from segcli.config.load import load_preset
    from segcli.errors import PresetError

    with pytest.raises(PresetError, match="needs optim.lr_batch_size"):
        load_preset("quickstart", ["optim.scale_lr_with_batch=linear"])
