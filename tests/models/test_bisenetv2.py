"""BiSeNet V2: its own detail and semantic branches, bilateral guided aggregation, four boosters."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread

from segcli.models.base import head_parameters
from segcli.models.bisenetv2 import (
    BilateralGuidedAggregation,
    BiSeNetV2,
    ContextEmbedding,
    GatherExpand,
    StemBlock,
)

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_branch_strides() -> None:
    net = BiSeNetV2(NUM_CLASSES, decoder_channels=16).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert net.detail(x).shape == (1, 128, 8, 12)
        s2 = net.stem(x)
        s5 = net.s5(net.s4(net.s3(s2)))
    assert s2.shape == (1, 16, 16, 24) and s5.shape == (1, 128, 2, 3)


def test_four_boosters_in_training_none_when_switched_off() -> None:
    net = BiSeNetV2(NUM_CLASSES, decoder_channels=16).train()
    out = net(torch.randn(2, 3, 64, 64))
    assert len(out["aux"]) == 4 and all(a.shape == (2, NUM_CLASSES, 64, 64) for a in out["aux"])
    off = BiSeNetV2(NUM_CLASSES, decoder_channels=16, builtin_aux=False)
    assert not hasattr(off, "boosters") and isinstance(off.train()(torch.randn(2, 3, 64, 64)), torch.Tensor)
    head = {id(p) for p in head_parameters(net)}
    assert head == {id(p) for m in (net.head, net.boosters) for p in m.parameters()}


def test_head_width_is_four_times_decoder_channels() -> None:
    assert BiSeNetV2(NUM_CLASSES, decoder_channels=16).head[0][0].out_channels == 64


def test_blocks() -> None:
    x = torch.randn(1, 16, 8, 8)
    assert StemBlock(16).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 16, 8, 8)
    assert GatherExpand(16, 32, 2).eval()(x).shape == (1, 32, 4, 4)
    same = GatherExpand(16, 16).eval()
    assert isinstance(same.shortcut, torch.nn.Identity) and same(x).shape == x.shape
    assert ContextEmbedding(16).eval()(x).shape == x.shape
    bga = BilateralGuidedAggregation(16).eval()
    assert bga(torch.randn(1, 16, 16, 16), torch.randn(1, 16, 4, 4)).shape == (1, 16, 16, 16)
