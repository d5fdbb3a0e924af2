"""The FCN head, the classifier head and the auxiliary heads on encoder stages."""

from __future__ import annotations

import pytest
import torch

from segcli.errors import PresetError
from segcli.models import build_model
from segcli.models.blocks import SCSE, DecoderOpts
from segcli.models.heads import AuxHeads, ClassifierHead, FCNHead, resolve_stages


def test_fcn_head_width_and_dropout() -> None:
    head = FCNHead(256, 5)
    assert head[0][0].out_channels == 64 and head[1].p == 0.1 and head[2].out_channels == 5
    assert FCNHead(64, 5)[0][0].out_channels == 32  # floor of 32
    assert FCNHead(64, 5, mid=8, dropout=0.0)[0][0].out_channels == 8
    assert isinstance(FCNHead(64, 5, dropout=0.0)[1], torch.nn.Identity)


def test_classifier_head_follows_the_options() -> None:
    head = ClassifierHead(16, 3, DecoderOpts(attention="scse", dropout=0.2))
    assert isinstance(head[0], SCSE) and head[1].p == 0.2 and head[2].kernel_size == (1, 1)
    assert head.eval()(torch.randn(1, 16, 4, 4)).shape == (1, 3, 4, 4)


def test_classifier_xavier_start_is_smps_segmentation_head() -> None:
    """``init="xavier"``: smp's ``initialize_head`` on a 1x1 conv of the same shape, draw for draw; the default
    start stays PyTorch's (uniform within 1/sqrt(fan_in), a bias that is not zero)."""
    smp_init = pytest.importorskip("segmentation_models_pytorch.base.initialization")
    torch.manual_seed(0)
    ours = ClassifierHead(16, 3, DecoderOpts(dropout=0.1), init="xavier")[2]
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(16, 3, 1)
    smp_init.initialize_head(theirs)
    assert torch.equal(ours.weight, theirs.weight)
    assert torch.equal(ours.bias, torch.zeros(3))
    torch.manual_seed(0)
    default = ClassifierHead(16, 3, DecoderOpts())[2]
    torch.manual_seed(0)
    assert torch.equal(default.weight, torch.nn.Conv2d(16, 3, 1).weight) and default.bias.any()


def test_unet_classifier_starts_as_smps_and_fpns_does_not() -> None:
    """U-Net's classifier sits on its narrowest map (16 channels with full_res): smp's start; FPN's keeps PyTorch's."""
    unet = build_model("unet", 3, backbone="resnet18", decoder_channels=32, full_res=True).net.head[-1]
    fpn = build_model("fpn", 3, backbone="resnet18", decoder_channels=32).net.head[-1]
    assert unet.in_channels == 16 and not unet.bias.any()
    assert unet.weight.abs().max() > 1 / 16**0.5  # past PyTorch's bound; Xavier's is sqrt(6 / 19) = 0.56
    assert fpn.bias.any() and fpn.weight.abs().max() <= 1 / fpn.in_channels**0.5


def test_resolve_stages() -> None:
    assert resolve_stages((0, -1, 2), 5, "b") == [0, 4, 2]
    assert resolve_stages((), 5, "b") == []
    with pytest.raises(PresetError, match=r"aux_stages contains -6, but backbone 'b' has 5 feature stages \(.*0..4"):
        resolve_stages((-6,), 5, "b")
    with pytest.raises(PresetError, match="aux_stages contains 5"):
        resolve_stages((5,), 5, "b")


def test_aux_heads_read_their_stages() -> None:
    heads = AuxHeads([8, 16, 32], [2, 0], 3).eval()
    assert len(heads) == 2
    feats = [torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)]
    with torch.no_grad():
        out = heads(feats)
    assert [o.shape for o in out] == [(1, 3, 4, 4), (1, 3, 16, 16)]
