"""fpn_smp: segmentation_models.pytorch's FPN layout (GroupNorm towers, align_corners upsampling)."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, n_params, one_thread

from segcli.convert.maps.registry import get_map
from segcli.errors import PresetError
from segcli.models import MODELS
from segcli.models.fpn_smp import FPNSMP, ConvGNReLU

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_parameters_match_smp_fpn() -> None:
    import segmentation_models_pytorch as smp

    with torch.device("meta"):
        theirs = smp.FPN("tu-resnet18", encoder_weights=None, classes=5)
        ours = MODELS.get("fpn_smp")(5, backbone="resnet18", decoder_channels=256)
    assert n_params(ours) == n_params(theirs)
    assert n_params(ours.encoder) == n_params(theirs.encoder)


def test_smp_weights_through_the_key_map_give_smps_logits() -> None:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    theirs = smp.FPN(
        "tu-test_resnet",
        encoder_weights=None,
        classes=NUM_CLASSES,
        decoder_pyramid_channels=64,
        decoder_segmentation_channels=32,
    )
    ours = FPNSMP(NUM_CLASSES, backbone="test_resnet", decoder_channels=64).eval()
    sd, unmapped, _ = get_map("smp:fpn").apply(theirs.state_dict())
    assert unmapped == []
    missing, unexpected = ours.load_state_dict({k.removeprefix("net."): v for k, v in sd.items()}, strict=False)
    assert missing == [] and unexpected == []
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs.eval()(x), atol=1e-5)


def test_towers_have_3_2_1_1_units_and_groupnorm_falls_back_to_a_divisor() -> None:
    net = FPNSMP(NUM_CLASSES, backbone="test_resnet", decoder_channels=24)
    assert [len(t) for t in net.towers] == [3, 2, 1, 1]
    assert all(isinstance(u, ConvGNReLU) for t in net.towers for u in t)
    assert net.towers[0][0][1].num_groups == 4  # 12 segmentation channels: gcd(32, 12)
    assert net.classifier.in_channels == 12


def test_rejects_attention_and_separable() -> None:
    from segcli.config.load import load_preset

    with pytest.raises(PresetError, match="separable = true.*'fpn_smp' does not support it"):
        load_preset(None, ["model.name=fpn_smp", "model.separable=true"])
    assert {"attention", "separable"} <= set(MODELS.info("fpn_smp").rejects)


def test_odd_input_sizes_give_input_sized_logits() -> None:
    net = FPNSMP(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 50, 70)).shape == (1, NUM_CLASSES, 50, 70)
