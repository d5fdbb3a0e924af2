"""Optimisers, parameter groups and learning-rate schedules (segcli/train/optim.py)."""

from __future__ import annotations

import pytest

from segcli.config.schema import OptimConfig, ScheduleConfig
from segcli.models import build_model
from segcli.train.optim import build_optimizer, lr_factor, param_groups


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
    for name in ("sgd", "adam", "adamw", "padam"):
        opt = build_optimizer(model, OptimConfig(name=name, nesterov=True))
        assert len(opt.param_groups) == 4


def test_scale_lr_with_batch_is_off_by_default_and_linear_or_sqrt_when_asked() -> None:
    from segcli.config.load import load_preset
    from segcli.train.optim import batch_lr_scale

    p = load_preset("quickstart", []).preset
    assert batch_lr_scale(p.optim, 64) == 1.0
    linear = load_preset("quickstart", ["optim.scale_lr_with_batch=linear", "optim.lr_batch_size=16"]).preset
    assert batch_lr_scale(linear.optim, 64) == 4.0
    root = load_preset("quickstart", ["optim.scale_lr_with_batch=sqrt", "optim.lr_batch_size=16"]).preset
    assert batch_lr_scale(root.optim, 64) == 2.0


def _group_of(groups: list[dict], param) -> str:  # noqa: ANN001
    return next(g["name"] for g in groups if any(p is param for p in g["params"]))


def test_head_lr_mult_on_a_decoder_over_a_timm_encoder_is_everything_outside_the_encoder() -> None:
    model = build_model("pspnet", 3, backbone="test_resnet", decoder_channels=16, aux_stages=(3,))
    groups = param_groups(model, OptimConfig(lr=0.01, head_lr_mult=10.0, backbone_lr_mult=0.5))
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}  # no plain decoder left
    assert by_name["head"]["lr"] == pytest.approx(0.1) and by_name["head"]["base_lr"] == pytest.approx(0.1)
    assert by_name["backbone"]["lr"] == pytest.approx(0.005)
    net = model.net
    assert _group_of(groups, net.head[-1].weight) == "head"  # classifier
    assert _group_of(groups, net.aux_heads.heads[0][-1].weight) == "head"  # mmseg's auxiliary_head too
    assert _group_of(groups, next(net.encoder.parameters())) == "backbone"
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_head_lr_mult_on_bisenetv1_is_coincheungs_fusion_and_output_heads() -> None:
    model = build_model("bisenetv1", 3, backbone="test_resnet", decoder_channels=16)
    groups = param_groups(model, OptimConfig(lr=0.01, head_lr_mult=10.0))
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["head"] == pytest.approx(0.1) and lrs["decoder"] == pytest.approx(0.01)
    net = model.net
    for p in (net.ffm.conv[0].weight, net.head[-1].weight, net.aux16[-1].weight, net.aux32[0][0].weight):
        assert _group_of(groups, p) == "head"
    for p in (net.spatial[0][0].weight, net.arm32.conv[0].weight, net.refine16[0].weight):  # paths: base lr
        assert _group_of(groups, p) == "decoder"
    assert _group_of(groups, net.ffm.conv[1].weight) == "head_no_decay"  # BatchNorm: no decay, still 10x


@pytest.mark.parametrize(
    ("name", "head", "body"),
    [("ddrnet23_slim", "aux_head", "layer1"), ("bisenetv2", "boosters", "detail"), ("enet", "classifier", "initial")],
)
def test_head_lr_mult_on_networks_with_their_own_backbone(name: str, head: str, body: str) -> None:
    model = build_model(name, 3)
    groups = param_groups(model, OptimConfig(lr=0.01, head_lr_mult=10.0))
    assert {g["name"] for g in groups} <= {"decoder", "decoder_no_decay", "head", "head_no_decay"}
    assert all(_group_of(groups, p).startswith("head") for p in getattr(model.net, head).parameters())
    assert all(_group_of(groups, p).startswith("decoder") for p in getattr(model.net, body).parameters())


def test_head_lr_mult_of_one_keeps_the_four_groups() -> None:
    model = build_model("bisenetv1", 3, backbone="test_resnet", decoder_channels=16)
    names = {g["name"] for g in param_groups(model, OptimConfig(head_lr_mult=1.0))}
    assert names == {"backbone", "backbone_no_decay", "decoder", "decoder_no_decay"}


def test_warmup_fraction_ramps_over_the_run() -> None:
    from segcli.train.optim import lr_factor

    cfg = ScheduleConfig(name="constant", warmup_fraction=0.1, warmup_factor=0.0)
    assert lr_factor(cfg, 0, 0.0, 1.0) == 0.0
    assert lr_factor(cfg, 5, 0.05, 1.0) == pytest.approx(0.5)
    assert lr_factor(cfg, 50, 0.5, 1.0) == 1.0
