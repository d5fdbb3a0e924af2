"""panet: FPN whose neck is fixed to PANet's path aggregation."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, n_params, one_thread

from segcli.errors import PresetError
from segcli.models import MODELS
from segcli.models.fpn import FPN
from segcli.models.necks import PathAggregation
from segcli.models.panet import PANet

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_is_fpn_with_the_panet_neck_whatever_the_default_neck_says() -> None:
    net = PANet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    assert isinstance(net, FPN) and net.neck_kind == "panet" and isinstance(net.neck, PathAggregation)
    same = PANet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16, neck="panet")
    assert n_params(same) == n_params(net)
    plain = FPN(NUM_CLASSES, backbone="test_resnet", decoder_channels=16)
    assert n_params(net) > n_params(plain)  # the bottom-up path adds convolutions


def test_another_neck_is_refused() -> None:
    with pytest.raises(PresetError, match="model.neck = 'bifpn': this model's neck is 'panet'; remove model.neck"):
        PANet(NUM_CLASSES, backbone="test_resnet", neck="bifpn")
    assert "neck" in MODELS.info("panet").rejects


def test_forward_in_eval_is_input_sized() -> None:
    net = PANet(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, NUM_CLASSES, 64, 64)
