"""GCN: the kernel-size rule, the GCN / BR / deconvolution layout, the parameter count of the reference
implementation at ResNet-50/101 + 21 classes, any input size, gradients, channels_last / torch.compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from model_helpers import channels_last_output, compiled_output

from segcli.models import MODELS, build_model
from segcli.models.gcn import GCN, BoundaryRefine, Deconv, GlobalConv, gcn_kernel

NUM_CLASSES = 3
BACKBONE = "test_resnet"


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def reference_parameters(backbone: int, classes: int = 21, k: int = 15) -> int:
    """yassouali/pytorch-segmentation models/gcn.py, ``GCN(classes, backbone='resnet50'|'resnet101',
    use_deconv=True, num_filters=k)``, counted from its layer list:

    * the torchvision ResNet without its fc layer (``backbone``);
    * ``GCN_Block`` on layer1-4 (256, 512, 1024, 2048 channels): four biased convolutions, k x 1 and 1 x k from
      the input to the classes, then 1 x k and k x 1 classes to classes;
    * nine ``BR_Block``: two biased 3x3 convolutions classes to classes, and two BatchNorm2d it declares but
      never calls in ``forward`` (2 parameters per channel each);
    * five ``ConvTranspose2d(classes, classes, 3, bias=False)`` and the ``final_conv`` 1x1 with bias.
    """
    c = classes
    gcn = sum(2 * (cin * c * k + c) + 2 * (c * c * k + c) for cin in (256, 512, 1024, 2048))
    br = 2 * (9 * c * c + c) + 2 * (2 * c)
    return backbone + gcn + 9 * br + 5 * 9 * c * c + (c * c + c)


# torchvision resnet50 / resnet101 without fc (timm's features_only encoders count the same)
RESNET50, RESNET101 = 23_508_032, 42_500_160


def test_kernel_rule() -> None:
    """k = 15 (the paper's VOC choice, its 512 x 512 inputs giving a 16 x 16 top-most map) on every stage unless the
    stage's map at 512 x 512 would be smaller: then the largest odd k not above its side."""
    assert [gcn_kernel(r) for r in (4, 8, 16, 32)] == [15] * 4
    assert gcn_kernel(64) == 7 and gcn_kernel(128) == 3 and gcn_kernel(1024) == 1
    # the paper's Cityscapes setting: 800 x 800 crops, a 25 x 25 top-most map, k = 25
    assert gcn_kernel(32, kernel_size=25, input_side=800) == 25
    net = GCN(NUM_CLASSES, backbone=BACKBONE)
    assert net.kernels == [15] * 4 and [net.encoder.reductions[i] for i in net.use] == [4, 8, 16, 32]
    assert GCN(NUM_CLASSES, backbone=BACKBONE, kernel_size=7).kernels == [7] * 4


def test_layout() -> None:
    net = GCN(NUM_CLASSES, backbone=BACKBONE)
    chs = [net.encoder.channels[i] for i in net.use]
    for gcn, cin, k in zip(net.gcns, chs, net.kernels):
        assert isinstance(gcn, GlobalConv)
        left, right = list(gcn.left), list(gcn.right)
        assert [m.kernel_size for m in left] == [(k, 1), (1, k)] and [m.kernel_size for m in right] == [(1, k), (k, 1)]
        # straight to score maps: the GCN's output channels are the classes (as in the paper)
        assert left[0].in_channels == right[0].in_channels == cin
        assert all(m.out_channels == NUM_CLASSES for m in left + right)
        # no BN or ReLU inside a GCN block (the paper's choice)
        assert all(isinstance(m, nn.Conv2d) for m in gcn.modules() if m is not gcn and not isinstance(m, nn.Sequential))
    # BR after each GCN, after each of the three sums, after each of the two final upsamplings: 9 in all
    assert sum(isinstance(m, BoundaryRefine) for m in net.modules()) == 9
    # a 2x deconvolution per octave: 32 -> 16 -> 8 -> 4 -> 2 -> 1
    assert sum(isinstance(m, Deconv) for m in net.modules()) == 5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules() if m not in set(net.encoder.modules()))


@pytest.mark.parametrize(("backbone", "encoder"), [("resnet50", RESNET50), ("resnet101", RESNET101)])
def test_parameter_count_matches_the_reference(backbone: str, encoder: int) -> None:
    ref = reference_parameters(encoder)
    # 26,073,371 (ResNet-50) and 45,065,499 (ResNet-101) at 21 classes, k = 15, use_deconv=True
    assert ref == {"resnet50": 26_073_371, "resnet101": 45_065_499}[backbone]
    with torch.device("meta"):
        net = MODELS.get("gcn")(21, backbone=backbone)
    assert sum(p.numel() for p in net.encoder.parameters()) == encoder
    # The reference's own extras: 18 BatchNorm2d in BR blocks that forward never calls (9 x 4 x 21 = 756) and
    # its final 1x1 convolution (21 x 21 + 21 = 462), 1,218 parameters: the rest is equal, layer for layer.
    assert _count(net) == ref - 9 * 4 * 21 - (21 * 21 + 21)
    assert abs(_count(net) / ref - 1) < 0.01


def test_deconvolution_starts_as_linear_upsampling() -> None:
    up = Deconv(2)
    x = torch.randn(1, 2, 5, 7)
    with torch.no_grad():
        y = up(x)
    assert y.shape == (1, 2, 10, 14)
    assert torch.allclose(y[..., ::2, ::2], x)  # output 2i is input i
    assert torch.allclose(y[..., 1:-1:2, ::2], (x[..., :-1, :] + x[..., 1:, :]) / 2)  # 2i+1: mean of i and i+1
    assert torch.allclose(y[..., ::2, 1:-1:2], (x[..., :-1] + x[..., 1:]) / 2)


@pytest.mark.parametrize("size", [(361, 479), (64, 64), (33, 47), (5, 7)])
def test_any_input_size_gives_input_sized_logits(size: tuple[int, int]) -> None:
    net = build_model("gcn", NUM_CLASSES, backbone=BACKBONE).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, *size) * 255).shape == (1, NUM_CLASSES, *size)


@pytest.mark.parametrize(("backbone", "stride"), [("resnet18", 8), ("resnet18", 16), ("test_vit", 0)])
def test_dilated_and_patch_encoders(backbone: str, stride: int) -> None:
    """Equal strides (dilated stages, or a ViT's single stride) join without upsampling; the final upsampling
    brings the finest stride to the input."""
    net = GCN(NUM_CLASSES, backbone=backbone, output_stride=stride).eval()
    h, w = (64, 96) if backbone == "test_vit" else (50, 70)
    with torch.no_grad():
        assert net(torch.randn(1, 3, h, w)).shape == (1, NUM_CLASSES, h, w)


def test_gradient_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    net = GCN(NUM_CLASSES, backbone=BACKBONE, aux_stages=(3,)).train()
    for m in net.encoder.modules():  # timm zero-inits each block's last BN, which stops gradients at step 0
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
    x = torch.randn(2, 3, 40, 56)
    out = net(x)
    assert set(out) == {"out", "aux"} and out["out"].shape == out["aux"][0].shape == (2, NUM_CLASSES, 40, 56)
    target = torch.randint(0, NUM_CLASSES, (2, 40, 56))
    (F.cross_entropy(out["out"], target) + 0.4 * F.cross_entropy(out["aux"][0], target)).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_options() -> None:
    info = MODELS.info("gcn")
    assert info.timm_encoder and {"decoder_channels", "separable", "attention"} <= set(info.rejects)
    assert info.paper.startswith("Peng et al.") and "gcn.py" in info.reference


def test_channels_last_matches() -> None:
    torch.manual_seed(0)
    net = GCN(NUM_CLASSES, backbone=BACKBONE).eval()
    x = torch.randn(1, 3, 45, 61)
    ref, got = channels_last_output(net, x)
    assert torch.allclose(got, ref, atol=1e-4)


@pytest.mark.slow
def test_torch_compile_runs() -> None:
    torch.manual_seed(0)
    net = GCN(NUM_CLASSES, backbone=BACKBONE).eval()
    x = torch.randn(1, 3, 50, 70)
    ref, got = compiled_output(net, x)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-4)
