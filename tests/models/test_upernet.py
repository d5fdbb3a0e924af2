"""UPerNet: PPM on the deepest feature, a top-down FPN over the others, all levels fused at stride 4."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread

from segcli.models.upernet import UPerNet

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_layout_on_the_last_four_features() -> None:
    net = UPerNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    assert net.use == [1, 2, 3, 4]
    assert len(net.laterals) == len(net.fpn_convs) == 3
    assert net.ppm.out_channels == net.encoder.channels[-1] + 4 * 16
    assert net.fuse[0].in_channels == 4 * 16


def test_logits_come_at_stride_4() -> None:
    net = UPerNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        logits, aux = net.decode(net.encoder(x))
        assert aux == [] and logits.shape == (1, NUM_CLASSES, 16, 24)
        assert net(x).shape == (1, NUM_CLASSES, 64, 96)


def test_every_level_reaches_the_logits() -> None:
    net = UPerNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).train()
    net(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(lat[0].weight.grad.abs().sum() > 0 for lat in net.laterals)
    assert net.ppm_conv[0].weight.grad.abs().sum() > 0
