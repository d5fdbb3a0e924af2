"""FPN: a neck over the last four stride >= 4 features, half-width smoothing, merged at stride 4."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread

from segcli.errors import PresetError
from segcli.models.fpn import FPN
from segcli.models.necks import TopDown

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_uses_the_last_four_features_of_stride_4_and_more() -> None:
    net = FPN(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    assert net.encoder.reductions == [2, 4, 8, 16, 32]
    assert net.use == [1, 2, 3, 4]  # the stride-2 stem is left out
    assert net.neck_attr == "laterals" and isinstance(net.laterals, TopDown)
    assert [s[0].out_channels for s in net.smooth] == [8] * 4  # half of decoder_channels
    assert net.head[-1].in_channels == 8


def test_logits_come_at_stride_4_before_the_upsampling() -> None:
    net = FPN(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        logits, aux = net.decode(net.encoder(x))
        assert aux == [] and logits.shape == (1, NUM_CLASSES, 16, 24)
        assert net(x).shape == (1, NUM_CLASSES, 64, 96)


def test_smoothing_width_has_a_floor_of_8() -> None:
    net = FPN(NUM_CLASSES, backbone="test_resnet", decoder_channels=8)
    assert [s[0].out_channels for s in net.smooth] == [8] * 4


def test_neck_option_picks_the_neck_and_names_it_neck() -> None:
    net = FPN(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, neck="panet")
    assert net.neck_kind == "panet" and net.neck_attr == "neck" and not hasattr(net, "laterals")
    with pytest.raises(PresetError, match="model.neck = 'pan'"):
        FPN(NUM_CLASSES, backbone="test_resnet", neck="pan")
    with pytest.raises(TypeError, match="FPN got unexpected keyword arguments necks"):
        FPN(NUM_CLASSES, backbone="test_resnet", necks="fpn")


def test_full_res_classifies_at_the_input_resolution_through_the_stride_2_features() -> None:
    net = FPN(NUM_CLASSES, backbone="test_resnet", decoder_channels=64, full_res=True).eval()
    assert net.fine == [0]  # the stride-2 stem feature, the only one finer than the pyramid's stride 4
    assert [b.convs[-1][0].out_channels for b in net.fine_blocks] == [16]  # half of the 32-wide sum, at least 16
    seen = []
    net.head.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, NUM_CLASSES, 64, 96) and seen == [(64, 96)]  # the classifier runs at stride 1
    plain = set(FPN(NUM_CLASSES, backbone="test_resnet", decoder_channels=64).state_dict())
    extra = set(net.state_dict()) - plain
    assert plain < set(net.state_dict()) and all(k.startswith(("fine_blocks.", "full.")) for k in extra)


def test_full_res_levels_learn_and_take_n_channels() -> None:
    net = FPN(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, full_res=True, in_channels=4)
    net(torch.randn(2, 4, 64, 64)).logsumexp(1).mean().backward()
    assert net.full.stem[0][0].in_channels == 4
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in [*net.full.parameters(), *net.fine_blocks.parameters()]
    )
