"""DDRNet-23-slim: its own dual-resolution backbone, DAPPM, one built-in auxiliary head."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, n_params, one_thread
from model_helpers import cfg as _cfg
from model_helpers import image as _image

from segcli.core.factory import model_from_preset
from segcli.models import MODELS
from segcli.models.base import head_parameters
from segcli.models.ddrnet import DAPPM, BasicBlock, Bottleneck, DDRNet23Slim

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_parameter_count_is_the_papers_5_7_million() -> None:
    assert 5.6e6 < n_params(DDRNet23Slim(19, builtin_aux=False)) < 5.8e6


def test_builtin_aux_can_be_switched_off() -> None:
    model = model_from_preset(_cfg("ddrnet23_slim", builtin_aux=False), NUM_CLASSES).train()
    assert isinstance(model(_image(64, 64)), torch.Tensor)


def test_one_aux_output_in_training_and_none_in_eval() -> None:
    net = DDRNet23Slim(NUM_CLASSES, decoder_channels=16).train()
    out = net(torch.randn(2, 3, 64, 64))
    assert set(out) == {"out", "aux"} and len(out["aux"]) == 1 == MODELS.info("ddrnet23_slim").builtin_aux
    assert out["aux"][0].shape == (2, NUM_CLASSES, 64, 64)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, NUM_CLASSES, 64, 64)


def test_head_parameters_are_the_two_heads() -> None:
    net = DDRNet23Slim(NUM_CLASSES, decoder_channels=16)
    head = {id(p) for p in head_parameters(net)}
    assert head == {id(p) for m in (net.head, net.aux_head) for p in m.parameters()}
    assert DDRNet23Slim.input_multiple == 64


def test_blocks_and_dappm_shapes() -> None:
    x = torch.randn(1, 8, 16, 16)
    assert BasicBlock(8, 16, 2).eval()(x).shape == (1, 16, 8, 8)
    assert isinstance(BasicBlock(8, 8).short, torch.nn.Identity)
    assert Bottleneck(8, 8).eval()(x).shape == (1, 16, 16, 16)  # expansion 2
    dappm = DAPPM(8, 4, 6).eval()
    with torch.no_grad():
        assert dappm(torch.randn(1, 8, 2, 4)).shape == (1, 6, 2, 4)  # pooled scales larger than the map still work
