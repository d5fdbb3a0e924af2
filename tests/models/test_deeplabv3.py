"""DeepLabV3: ASPP on a dilated encoder; torchvision's DeepLabV3-ResNet50 layout with its pool BN folded."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, n_params, one_thread

from segcli.models import MODELS
from segcli.models.blocks import PoolBranch
from segcli.models.deeplabv3 import DeepLabV3

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_parameters_are_torchvisions_deeplabv3_resnet50_with_the_pool_bn_folded() -> None:
    from torchvision.models.segmentation import deeplabv3_resnet50

    with torch.device("meta"):
        tv = deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False, num_classes=5)
        ours = MODELS.get("deeplabv3")(5, backbone="resnet50", output_stride=8, decoder_channels=256)
    # torchvision's image-pool branch: conv + BatchNorm (2 x 256); segcli's: a biased conv (256)
    assert n_params(ours) == n_params(tv) - 2 * 256 + 256
    assert n_params(ours.encoder) == n_params(tv.backbone)


@pytest.mark.parametrize(("stride", "rates"), [(0, (6, 12, 18)), (8, (12, 24, 36))])
def test_default_stride_16_and_aspp_rates_scale_with_the_stride(stride: int, rates: tuple[int, ...]) -> None:
    net = DeepLabV3(NUM_CLASSES, backbone="test_resnet", output_stride=stride, decoder_channels=16)
    assert net.encoder.reductions[-1] == (stride or 16)
    dilated = [b for b in net.aspp.branches if not isinstance(b, PoolBranch) and b[0].kernel_size == (3, 3)]
    assert tuple(b[0].dilation[0] for b in dilated) == rates
    assert len(net.aspp.branches) == 5  # 1x1, three dilated 3x3, image pool


def test_forward_at_batch_one_in_training_mode() -> None:
    """The image-pool branch has no BatchNorm, so a single image trains."""
    net = DeepLabV3(NUM_CLASSES, backbone="test_resnet", decoder_channels=16).train()
    out = net(torch.randn(1, 3, 48, 48))
    assert isinstance(out, torch.Tensor) and out.shape == (1, NUM_CLASSES, 48, 48)
    out.sum().backward()
    assert net.aspp.branches[-1][1][0].weight.grad is not None
