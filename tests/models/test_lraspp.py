"""LR-ASPP: a gated 1x1 branch on the deepest feature plus a classifier on the last stride-8 feature."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, n_params, one_thread

from segcli.models import MODELS
from segcli.models.lraspp import LRASPP

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_parameters_are_torchvisions_lraspp_mobilenet_v3_large_plus_the_gate_bias() -> None:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    with torch.device("meta"):
        tv = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
        ours = MODELS.get("lraspp")(5, backbone="torchvision:mobilenet_v3_large", decoder_channels=128)
    assert n_params(ours) == n_params(tv) + 128  # the gate's 1x1 conv has a bias, torchvision's none
    assert n_params(ours.encoder) == n_params(tv.backbone)
    assert ours.encoder.reductions[-1] == 16 and ours.encoder.reductions[ours.low] == 8


def test_low_level_classifier_reads_the_last_stride_8_feature() -> None:
    net = LRASPP(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    red = net.encoder.reductions
    assert red[net.low] == 8 and all(r > 8 for r in red[net.low + 1 :])
    assert net.cls_low.in_channels == net.encoder.channels[net.low]
    with torch.no_grad():
        feats = net.encoder(torch.randn(1, 3, 64, 64))
        logits, aux = net.decode(feats)
    assert aux == [] and logits.shape[-2:] == feats[net.low].shape[-2:] == (8, 8)


def test_logits_are_the_sum_of_the_gated_high_branch_and_the_low_classifier() -> None:
    net = LRASPP(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, dropout=0.0).eval()
    with torch.no_grad():
        feats = net.encoder(torch.randn(1, 3, 64, 64))
        full = net.decode(feats)[0]
        torch.nn.init.zeros_(net.cls_high.weight)
        torch.nn.init.zeros_(net.cls_high.bias)
        assert torch.allclose(net.decode(feats)[0], net.cls_low(feats[net.low]))
        assert not torch.allclose(full, net.cls_low(feats[net.low]))
