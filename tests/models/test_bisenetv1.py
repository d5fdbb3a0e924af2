"""BiSeNet V1: spatial path + context path with ARMs on the stride-16/32 features, FFM, two aux heads."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread

from segcli.errors import PresetError
from segcli.models.base import head_parameters
from segcli.models.bisenetv1 import AttentionRefinement, BiSeNetV1, FeatureFusion

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_spatial_path_reaches_stride_8_and_the_context_path_taps_16_and_32() -> None:
    net = BiSeNetV1(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    assert net.encoder.reductions[net.i16] == 16 and net.encoder.reductions[-1] == 32
    with torch.no_grad():
        assert net.spatial(torch.randn(1, 3, 64, 96)).shape == (1, 16, 8, 12)


def test_two_aux_outputs_in_training_only_when_switched_on() -> None:
    net = BiSeNetV1(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).train()
    out = net(torch.randn(2, 3, 64, 64))
    assert len(out["aux"]) == 2 and all(a.shape == (2, NUM_CLASSES, 64, 64) for a in out["aux"])
    off = BiSeNetV1(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, builtin_aux=False).train()
    assert isinstance(off(torch.randn(2, 3, 64, 64)), torch.Tensor) and not hasattr(off, "aux16")


def test_head_parameters_are_the_fusion_and_output_heads() -> None:
    net = BiSeNetV1(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    head = {id(p) for p in head_parameters(net)}
    expected = {id(p) for m in (net.ffm, net.head, net.aux16, net.aux32) for p in m.parameters()}
    assert head == expected
    assert not head & {id(p) for p in net.spatial.parameters()}


def test_a_dilated_encoder_is_refused() -> None:
    with pytest.raises(PresetError, match="bisenetv1 needs backbone features at strides 16 and 32; 'test_resnet'"):
        BiSeNetV1(NUM_CLASSES, backbone="test_resnet", output_stride=8)


def test_arm_and_ffm_shapes() -> None:
    x = torch.randn(1, 8, 4, 4)
    assert AttentionRefinement(8, 6).eval()(x).shape == (1, 6, 4, 4)
    ffm = FeatureFusion(16, 12).eval()
    assert ffm(x, x).shape == (1, 12, 4, 4)
