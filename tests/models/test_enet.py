"""ENet: its own tiny encoder-decoder with max-unpooling; inputs must be multiples of 8."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, n_params, one_thread
from model_helpers import cfg as _cfg
from model_helpers import image as _image

from segcli.core.factory import model_from_preset
from segcli.errors import UserError
from segcli.models import MODELS, model_options
from segcli.models.blocks import SCSE
from segcli.models.enet import Bottleneck, DownBottleneck, ENet, InitialBlock, UpBottleneck

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_parameter_count_is_the_papers_0_37_million() -> None:
    assert 0.34e6 < n_params(ENet(19)) < 0.38e6


def test_enet_names_the_padded_size() -> None:
    model = model_from_preset(_cfg("enet"), NUM_CLASSES).eval()
    with pytest.raises(UserError, match="divisible by 8.*56x72"):
        model(_image(50, 70, n=1))


def test_blocks_keep_or_change_the_resolution_as_their_role_says() -> None:
    x = torch.randn(1, 3, 32, 48)
    y = InitialBlock().eval()(x)
    assert y.shape == (1, 16, 16, 24)  # 13 conv channels + the 3 pooled image channels
    down = DownBottleneck(16, 64, 0.0).eval()
    z, idx = down(y)
    assert z.shape == (1, 64, 8, 12) and idx.shape == (1, 16, 8, 12)
    assert Bottleneck(64, "asymmetric").eval()(z).shape == z.shape
    assert Bottleneck(64, "dilated", 4).eval()(z).shape == z.shape
    up = UpBottleneck(64, 16, 0.0).eval()
    assert up(z, idx).shape == (1, 16, 16, 24)


def test_options_and_attention() -> None:
    assert model_options("enet") == {"attention", "dropout", "in_channels"}
    assert "separable" in MODELS.info("enet").rejects and not MODELS.info("enet").timm_encoder
    assert isinstance(ENet(NUM_CLASSES, attention="scse").att, SCSE)
    assert isinstance(ENet(NUM_CLASSES).att, torch.nn.Identity)


def test_train_mode_returns_logits_only() -> None:
    net = ENet(NUM_CLASSES).train()
    out = net(torch.randn(2, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, NUM_CLASSES, 32, 32)
