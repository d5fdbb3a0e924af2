"""PSPNet: pyramid pooling (bins 1, 2, 3, 6) on a stride-8 encoder."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread

from segcli.models.blocks import PoolBranch
from segcli.models.pspnet import PSPNet

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_default_stride_8_and_the_ppm_layout() -> None:
    net = PSPNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    cin = net.encoder.channels[-1]
    assert net.encoder.reductions[-1] == 8
    assert [b[0].output_size for b in net.ppm.branches] == [1, 2, 3, 6]
    assert all(isinstance(b, PoolBranch) for b in net.ppm.branches)
    assert net.ppm.out_channels == cin + 4 * (cin // 4)
    assert net.conv[0].in_channels == net.ppm.out_channels


def test_logits_come_at_stride_8_and_upsample_to_the_input() -> None:
    net = PSPNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        logits, aux = net.decode(net.encoder(x))
        assert aux == [] and logits.shape == (1, NUM_CLASSES, 8, 12)
        assert net(x).shape == (1, NUM_CLASSES, 64, 96)


def test_stride_32_on_request() -> None:
    net = PSPNet(NUM_CLASSES, backbone="test_resnet", output_stride=32, decoder_channels=16)
    assert net.encoder.reductions[-1] == 32
