"""Bundled recipes against their sources: aux heads on the stages mmseg uses, networks with their own
backbone refusing backbone options, and the [meta] table every preset carries."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from segcli.config.load import list_presets, load_preset, preset_meta
from segcli.core.factory import model_from_preset

# (input channels, hidden width) of every auxiliary FCN head each recipe's source hangs, in output order.
# mmseg pspnet_r50-d8 / deeplabv3plus_r50-d8: auxiliary_head FCNHead in_index=2 (layer3), in_channels=1024,
# channels=256. BiSeNetV1 (mmseg bisenetv1_r18-d32 and CoinCheung): two FCN heads on the 128-channel context
# path, 64 wide. BiSeNetV2 (CoinCheung's SegmentHead boosters): on the semantic-branch stages 16/32/64/128,
# 128 wide. DDRNet-23-slim: one head on the 64-channel high-resolution branch, 64 wide.
AUX_HEADS = {
    "pspnet_r50_ade20k": [(1024, 256)],
    "deeplabv3plus_r50_voc_aug": [(1024, 256)],
    "bisenet_cityscapes": [(128, 64), (128, 64)],
    "bisenet_mmseg_cityscapes": [(128, 64), (128, 64)],
    "bisenet_r18_celebamask": [(128, 64), (128, 64)],
    "bisenetv2_cityscapes": [(16, 128), (32, 128), (64, 128), (128, 128)],
    "ddrnet23slim_cityscapes": [(64, 64)],
}


def _load(path):  # noqa: ANN001, ANN202 - a bundled preset without the files and downloads it names
    return load_preset(path, ["model.pretrained=false", "loss.class_weights=[]"]).preset


def _aux_heads(net: nn.Module) -> list[nn.Module]:
    """The auxiliary heads in the order the model returns their logits (built-in first, then encoder stages)."""
    heads: list[nn.Module] = []
    for name in ("aux16", "aux32", "aux_head"):
        if hasattr(net, name):
            heads.append(getattr(net, name))
    if hasattr(net, "boosters"):
        heads.extend(net.boosters)
    if getattr(net, "aux_heads", None) is not None:
        heads.extend(net.aux_heads.heads)
    return heads


def _in_and_width(head: nn.Module) -> tuple[int, int]:
    conv = next(m for m in head.modules() if isinstance(m, nn.Conv2d))
    return conv.in_channels, conv.out_channels


@pytest.mark.slow
@pytest.mark.parametrize("path", list_presets(), ids=lambda p: p.stem)
def test_aux_heads_sit_on_the_stage_the_source_uses(path) -> None:
    p = _load(path)
    model = model_from_preset(p.model, 19)
    heads = _aux_heads(model.net)
    if not heads:
        assert path.stem not in AUX_HEADS
        return
    assert path.stem in AUX_HEADS, f"{path.stem} has aux heads: record where its source hangs them"
    assert [_in_and_width(h) for h in heads] == AUX_HEADS[path.stem]
    if p.model.aux_stages:  # the stage is layer3 of the real backbone: 1024 channels at stride 8 (dilated)
        enc = model.net.encoder
        assert [enc.channels[i] for i in model.net.aux_heads.stages] == [1024]
        with torch.no_grad():
            out = model.train()(torch.rand(1, 3, 64, 64) * 255)
        assert len(out["aux"]) == len(heads)


def test_own_backbone_presets_state_that_they_train_from_scratch() -> None:
    for path in list_presets():
        p = _load(path)
        if p.model.name in ("ddrnet23_slim", "bisenetv2"):
            assert not p.model.pretrained and not p.model.pretrained_file
            assert "from scratch" in path.read_text().lower()


@pytest.mark.parametrize("path", list_presets(), ids=lambda p: p.stem)
def test_every_bundled_preset_has_a_meta_table(path) -> None:  # noqa: ANN001
    meta = preset_meta(path)
    assert meta == _load(path).meta  # the listing reads what the full load validates
    assert meta.source.strip(), "say where the recipe comes from"
    if meta.reported_miou:
        assert meta.protocol.strip() and 1.0 < meta.reported_miou <= 100.0  # a percentage, with how it was measured
    else:
        assert meta.notes.strip(), "no reported figure: say why in meta.notes"


def test_the_bisenet_presets_follow_one_source_each() -> None:
    coin = _load("bisenet_cityscapes")
    mm = _load("bisenet_mmseg_cityscapes")
    assert "CoinCheung" in coin.meta.source and "mmsegmentation" in mm.meta.source
    assert (coin.optim.lr, coin.optim.head_lr_mult, coin.train.iters, coin.data.batch_size) == (0.01, 10.0, 80000, 16)
    ohem = coin.loss.options_for("ohem")
    assert coin.loss.terms == ("ohem",) and (ohem.thresh, ohem.min_kept, ohem.min_kept_ratio) == (0.7, 1, 0.0625)
    assert coin.augment.resize_to == () and coin.augment.scale == (0.75, 2.0) and coin.augment.cat_max_ratio == 1.0
    assert (mm.optim.lr, mm.optim.head_lr_mult, mm.train.iters, mm.data.batch_size) == (0.025, 1.0, 160000, 16)
    assert (mm.schedule.warmup_iters, mm.schedule.warmup_factor, mm.schedule.min_lr) == (1000, 0.1, 1e-4)
    assert mm.loss.terms == ("ce",) and mm.augment.resize_to == (2048, 1024) and mm.augment.cat_max_ratio == 0.75
