"""bifpn: FPN whose neck is ``neck_repeats`` BiFPN layers."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, n_params, one_thread

from segcli.errors import PresetError
from segcli.models import MODELS
from segcli.models.bifpn import BiFPNNet
from segcli.models.fpn import FPN
from segcli.models.necks import DEFAULT_REPEATS, BiFPN

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_neck_is_bifpn_with_the_default_depth_and_each_layer_adds_parameters() -> None:
    net = BiFPNNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    assert isinstance(net, FPN) and isinstance(net.neck, BiFPN) and len(net.neck) == DEFAULT_REPEATS
    one = BiFPNNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, neck_repeats=1)
    two = BiFPNNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, neck_repeats=2)
    assert n_params(one) < n_params(two) < n_params(net)
    assert n_params(two) - n_params(one) == n_params(net) - n_params(two)  # identical layers after the first


def test_another_neck_or_no_layer_is_refused() -> None:
    with pytest.raises(PresetError, match="model.neck = 'panet': this model's neck is 'bifpn'"):
        BiFPNNet(NUM_CLASSES, backbone="test_resnet", neck="panet")
    with pytest.raises(PresetError, match="model.neck_repeats = 0"):
        BiFPNNet(NUM_CLASSES, backbone="test_resnet", neck_repeats=0)
    assert MODELS.info("bifpn").rejects == ("neck",)  # neck_repeats stays an option


def test_forward_in_eval_is_input_sized() -> None:
    net = BiFPNNet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, neck_repeats=1).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 96)).shape == (1, NUM_CLASSES, 64, 96)
