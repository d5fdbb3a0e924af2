"""FCN: two 3x3 convs and a classifier on the deepest feature; torchvision's FCN-ResNet50 plus one conv unit."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, image, n_params, one_thread
from model_helpers import cfg as _cfg

from segcli.core.factory import model_from_preset
from segcli.models import MODELS
from segcli.models.blocks import ConvBNReLU
from segcli.models.fcn import FCN

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_parameters_are_torchvisions_fcn_resnet50_plus_the_second_conv_unit() -> None:
    from torchvision.models.segmentation import fcn_resnet50

    with torch.device("meta"):
        tv = fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False, num_classes=5)
        ours = MODELS.get("fcn")(5, backbone="resnet50", output_stride=8, decoder_channels=512)
    second_unit = 512 * 512 * 9 + 2 * 512  # 3x3 conv without bias + BatchNorm weight and bias
    assert n_params(ours) == n_params(tv) + second_unit
    assert n_params(ours.encoder) == n_params(tv.backbone)


def test_decoder_reads_only_the_deepest_feature_at_stride_32() -> None:
    net = FCN(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).eval()
    assert isinstance(net.convs[0], ConvBNReLU) and net.convs[0][0].in_channels == net.encoder.channels[-1]
    x = torch.randn(1, 3, 64, 96)
    feats = net.encoder(x)
    logits, aux = net.decode(feats)
    assert aux == [] and logits.shape == (1, NUM_CLASSES, 2, 3)  # stride 32, before the upsampling
    # the shallower features do not matter
    feats2 = [torch.zeros_like(f) for f in feats[:-1]] + [feats[-1]]
    with torch.no_grad():
        assert torch.equal(net.decode(feats2)[0], net.decode(feats)[0])
        assert net(x).shape == (1, NUM_CLASSES, 64, 96)


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="FCN got unexpected keyword arguments neck"):
        FCN(NUM_CLASSES, backbone="test_resnet", neck="fpn")


def test_dropout_option_reaches_the_classifier() -> None:
    model = model_from_preset(_cfg("fcn", dropout=0.3), NUM_CLASSES)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout2d)] == [0.3]
    model = model_from_preset(_cfg("fcn", dropout=0.0), NUM_CLASSES)
    assert not any(isinstance(m, torch.nn.Dropout2d) for m in model.modules())


def test_eval_output_is_deterministic_and_input_sized() -> None:
    model = model_from_preset(_cfg("fcn"), NUM_CLASSES).eval()
    x = image(40, 56, n=1)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert a.shape == (1, NUM_CLASSES, 40, 56) and torch.equal(a, b)
