"""SegFormer's all-MLP decoder: linear layers on the last four stages, concatenated at stride 4."""

from __future__ import annotations

import pytest
import torch
from model_helpers import image as _image
from model_helpers import one_thread

from segcli.config.schema import ModelConfig
from segcli.core.factory import model_from_preset
from segcli.models.segformer import SegFormerHead

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_one_linear_layer_per_stage_of_stride_4_and_more() -> None:
    net = SegFormerHead(3, backbone="test_resnet", decoder_channels=16)
    assert net.use == [1, 2, 3, 4]
    assert [lin.in_channels for lin in net.linears] == net.encoder.channels[1:]
    assert all(lin.kernel_size == (1, 1) and lin.out_channels == 16 for lin in net.linears)
    assert net.fuse[0].in_channels == 4 * 16 and net.fuse[0].kernel_size == (1, 1)


def test_logits_come_at_stride_4() -> None:
    net = SegFormerHead(3, backbone="test_resnet", decoder_channels=16).eval()
    with torch.no_grad():
        logits, aux = net.decode(net.encoder(torch.randn(1, 3, 64, 96)))
    assert aux == [] and logits.shape == (1, 3, 16, 24)


def test_segformer_b0_layout_on_pvt_v2_b0() -> None:
    model = model_from_preset(ModelConfig(name="segformer", backbone="pvt_v2_b0", decoder_channels=256), 19).eval()
    assert model.net.encoder.reductions == [4, 8, 16, 32]
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    assert 3.5 < n_params < 4.0  # SegFormer-B0 is about 3.7 M parameters
    with torch.no_grad():
        assert model(_image(72, 88, n=1)).shape == (1, 19, 72, 88)
