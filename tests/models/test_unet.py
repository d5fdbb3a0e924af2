"""U-Net decoder: one up block per finer stride, widths halving from 2 x decoder_channels, logits at stride 2 (at
stride 1 with full_res)."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread

from segcli.models.blocks import SCSE, DecoderOpts, FullResLevel
from segcli.models.unet import UNet, UpBlock

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_one_block_per_skip_with_halving_widths() -> None:
    net = UNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=64)
    assert net.skips == [0, 1, 2, 3]  # strides 2, 4, 8, 16 below the stride-32 feature
    assert [b.convs[-1][0].out_channels for b in net.blocks] == [128, 64, 32, 16]
    assert net.head[-1].in_channels == 16


def test_widths_have_a_floor_of_16() -> None:
    net = UNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    assert [b.convs[-1][0].out_channels for b in net.blocks] == [32, 16, 16, 16]


def test_dilated_encoder_collapses_stages_of_equal_stride() -> None:
    net = UNet(NUM_CLASSES, backbone="test_resnet", output_stride=8, decoder_channels=16)
    assert net.encoder.reductions == [2, 4, 8, 8, 8]
    assert net.skips == [0, 1]  # no skip from the stride-8 stages the deepest one already covers
    assert len(net.blocks) == 2
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, NUM_CLASSES, 64, 64)


def test_logits_come_at_the_finest_skip_stride() -> None:
    net = UNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    with torch.no_grad():
        logits, aux = net.decode(net.encoder(torch.randn(1, 3, 64, 96)))
    assert aux == [] and logits.shape == (1, NUM_CLASSES, 32, 48)


def test_up_block_resizes_to_any_skip_size_and_attends_when_asked() -> None:
    block = UpBlock(8, 4, 6, DecoderOpts(attention="scse")).eval()
    assert isinstance(block.att_in, SCSE) and isinstance(block.att_out, SCSE)
    with torch.no_grad():
        y = block(torch.randn(1, 8, 3, 5), torch.randn(1, 4, 7, 9))
    assert y.shape == (1, 6, 7, 9)
    assert isinstance(UpBlock(8, 4, 6, DecoderOpts()).att_in, torch.nn.Identity)


def test_full_res_adds_a_level_at_the_input_resolution() -> None:
    net = UNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, full_res=True).eval()
    seen = []
    net.head.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[-2:]))
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, NUM_CLASSES, 64, 96)
    assert seen == [(64, 96)]  # the classifier runs at stride 1, not on the stride-2 features
    assert net.full.stem[0][0].in_channels == 3 and net.full.up.convs[-1][0].out_channels == FullResLevel.WIDTH


def test_full_res_off_keeps_the_weights_of_the_plain_unet() -> None:
    plain = UNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    assert plain.full is None
    keys = set(plain.state_dict())
    full = set(UNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, full_res=True).state_dict())
    assert keys < full and all(k.startswith("full.") for k in full - keys)


def test_full_res_takes_n_channels_and_its_level_learns() -> None:
    net = UNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, full_res=True, in_channels=4)
    net(torch.randn(2, 4, 64, 64)).logsumexp(1).mean().backward()
    assert net.full.stem[0][0].in_channels == 4
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.full.parameters())
