"""torchvision backbones as encoders, tapped where torchvision's segmentation models tap them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import one_thread

from segcli.errors import PresetError
from segcli.models.tv_encoder import TV_BACKBONES, TorchvisionEncoder, is_torchvision_backbone

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)
NAME = "torchvision:mobilenet_v3_large"


def test_is_torchvision_backbone() -> None:
    assert is_torchvision_backbone(NAME) and "mobilenet_v3_large" in TV_BACKBONES
    assert not is_torchvision_backbone("mobilenet_v3_large") and not is_torchvision_backbone("torchvision:resnet9")


@pytest.mark.parametrize(("stride", "reductions"), [(16, [2, 4, 8, 16, 16]), (32, [2, 4, 8, 16, 32])])
def test_taps_and_strides(stride: int, reductions: list[int]) -> None:
    enc = TorchvisionEncoder(NAME, output_stride=stride).eval()
    assert enc.reductions == reductions
    assert enc.channels == [16, 24, 40, 80, 960]  # the first block of every stride, then the last layer
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == enc.channels and feats[-1].shape[-1] == 96 // reductions[-1]


def test_refusals() -> None:
    with pytest.raises(PresetError, match=r"'torchvision:resnet9': torchvision backbones available: mobilenet_v3"):
        TorchvisionEncoder("torchvision:resnet9")
    with pytest.raises(PresetError, match="model.pretrained downloads only timm weights"):
        TorchvisionEncoder(NAME, pretrained=True)
    with pytest.raises(PresetError, match=f"model.output_stride = 8: backbone '{NAME}' supports 16 or 32"):
        TorchvisionEncoder(NAME, output_stride=8)


def test_torchvision_classifier_weights_load_from_a_file(tmp_path: Path) -> None:
    import torchvision.models as tvm

    torch.manual_seed(0)
    features = tvm.mobilenet_v3_large(weights=None, dilated=True).features
    torch.save(features.state_dict(), tmp_path / "mnv3.pth")
    enc = TorchvisionEncoder(NAME, pretrained_file=str(tmp_path / "mnv3.pth"), output_stride=16).eval()
    assert enc.load_report.startswith("loaded ") and "mnv3.pth" in enc.load_report
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(enc(x)[-1], features.eval()(x))


def test_the_stem_takes_n_channels() -> None:
    enc = TorchvisionEncoder("torchvision:mobilenet_v3_large", in_chans=4)
    rgb = TorchvisionEncoder("torchvision:mobilenet_v3_large")
    assert enc.body[0][0].in_channels == 4 and enc.channels == rgb.channels and enc.reductions == rgb.reductions
    with torch.no_grad():
        assert [f.shape[1] for f in enc(torch.rand(1, 4, 64, 64))] == enc.channels
