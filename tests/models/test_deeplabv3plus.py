"""DeepLabV3+: ASPP at stride 16 fused at stride 4 with a 48-channel projection of the low-level feature."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread

from segcli.models.deeplabv3plus import DeepLabV3Plus

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_low_level_feature_is_the_first_at_stride_4_projected_to_48() -> None:
    net = DeepLabV3Plus(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    assert net.encoder.reductions[net.low] == 4 and net.low == 1
    assert net.project[0].in_channels == net.encoder.channels[1] and net.project[0].out_channels == 48
    assert net.fuse[0][0].in_channels == 16 + 48
    assert net.encoder.reductions[-1] == 16  # the default output stride


def test_logits_come_at_stride_4() -> None:
    net = DeepLabV3Plus(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    with torch.no_grad():
        logits, aux = net.decode(net.encoder(torch.randn(1, 3, 64, 96)))
    assert aux == [] and logits.shape == (1, NUM_CLASSES, 16, 24)


def test_aspp_rates_follow_the_output_stride() -> None:
    net = DeepLabV3Plus(NUM_CLASSES, backbone="test_resnet", output_stride=8, decoder_channels=16)
    assert [b[0].dilation[0] for b in net.aspp.branches[1:4]] == [12, 24, 36]
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, NUM_CLASSES, 64, 64)
