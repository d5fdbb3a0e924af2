"""Decoder building blocks: conv units, SCSE, the decoder options, resizing, ASPP and PPM."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread
from model_helpers import cfg as _cfg
from model_helpers import image as _image

from segcli.core.factory import model_from_preset
from segcli.models.blocks import (
    ASPP,
    PPM,
    SCSE,
    ConvBNReLU,
    DecoderOpts,
    PoolBranch,
    SeparableConvBNReLU,
    aspp_rates,
    resize,
)

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_conv_units_keep_the_size_at_any_dilation() -> None:
    x = torch.randn(1, 4, 9, 11)
    unit = ConvBNReLU(4, 6, 3, dilation=3).eval()
    assert unit(x).shape == (1, 6, 9, 11) and not unit[0].bias
    assert len(ConvBNReLU(4, 6, act=False)) == 2
    assert ConvBNReLU(4, 6, 3, stride=2).eval()(x).shape == (1, 6, 5, 6)
    sep = SeparableConvBNReLU(4, 6, 3, dilation=2).eval()
    assert sep(x).shape == (1, 6, 9, 11) and sep[0].groups == 4
    assert _count(SeparableConvBNReLU(64, 64)) < _count(ConvBNReLU(64, 64)) / 5


def test_scse_weights_lie_between_nothing_and_twice_the_input() -> None:
    x = torch.rand(2, 8, 5, 5) + 0.1
    y = SCSE(8).eval()(x)
    assert y.shape == x.shape and (y > 0).all() and (y < 2 * x).all()
    assert SCSE(8).cse[1].out_channels == 4  # floor of 4 channels in the squeeze


def test_decoder_opts() -> None:
    plain, fancy = DecoderOpts(), DecoderOpts(separable=True, attention="scse", dropout=0.0)
    assert isinstance(plain.conv(4, 4), ConvBNReLU) and isinstance(fancy.conv(4, 4), SeparableConvBNReLU)
    assert isinstance(fancy.conv(4, 4, k=1), ConvBNReLU)  # 1x1 convs stay plain
    assert isinstance(fancy.attend(8), SCSE) and isinstance(plain.attend(8), torch.nn.Identity)
    assert isinstance(fancy.drop(), torch.nn.Identity) and plain.drop().p == 0.1


def test_resize() -> None:
    x = torch.randn(1, 2, 4, 4)
    assert resize(x, (4, 4)) is x
    assert resize(x, (8, 6)).shape == (1, 2, 8, 6)
    near = resize(x, (8, 8), mode="nearest")
    assert torch.equal(near[..., ::2, ::2], x)


def test_aspp_ppm_and_pool_branch() -> None:
    assert aspp_rates(16) == (6, 12, 18) and aspp_rates(8) == (12, 24, 36) and aspp_rates(32) == (3, 6, 9)
    aspp = ASPP(8, 6, (1, 2, 3), DecoderOpts()).eval()
    assert len(aspp.branches) == 5 and aspp(torch.randn(1, 8, 7, 7)).shape == (1, 6, 7, 7)
    ppm = PPM(8, 2).eval()
    assert ppm.out_channels == 16 and ppm(torch.randn(1, 8, 7, 7)).shape == (1, 16, 7, 7)
    glob = PoolBranch(8, 4, 1).train()  # no BatchNorm on the 1x1 branch: batch 1 trains
    assert glob(torch.randn(1, 8, 5, 5)).shape == (1, 4, 5, 5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in glob.modules())


@pytest.mark.parametrize("name", ["unet", "deeplabv3plus", "fpn"])
def test_scse_and_separable_options(name: str) -> None:
    plain = model_from_preset(_cfg(name), NUM_CLASSES)
    fancy = model_from_preset(_cfg(name, attention="scse", separable=True), NUM_CLASSES)
    assert not any(isinstance(m, (SCSE, SeparableConvBNReLU)) for m in plain.modules())
    assert any(isinstance(m, SCSE) for m in fancy.modules())
    assert any(isinstance(m, SeparableConvBNReLU) for m in fancy.modules())
    n_plain = sum(p.numel() for p in plain.parameters())
    n_sep = sum(p.numel() for p in model_from_preset(_cfg(name, separable=True), NUM_CLASSES).parameters())
    assert n_sep < n_plain
    fancy.eval()
    with torch.no_grad():
        assert fancy(_image(72, 88, n=1)).shape == (1, NUM_CLASSES, 72, 88)
