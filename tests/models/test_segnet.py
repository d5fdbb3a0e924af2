"""SegNet: the layer list and parameter count of the authors' Caffe model, unpooling by the encoder's indices,
any input size, gradients, channels_last / torch.compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from model_helpers import channels_last_output, compiled_output

from segcli.models import MODELS, build_model
from segcli.models.blocks import SCSE
from segcli.models.segnet import SegNet, unpool

NUM_CLASSES = 3

# The convolutions of https://github.com/alexgkendall/SegNet-Tutorial/blob/master/Models/segnet_train.prototxt in
# order, (input channels, num_output); every one is 3x3 with a bias, all but the last followed by a BN layer
# (scale and shift: 2 parameters per channel). The last, conv1_1_D, has num_output = the classes (11 there).
CAFFE_CONVS = [
    (3, 64), (64, 64),  # conv1_1, conv1_2
    (64, 128), (128, 128),  # conv2_*
    (128, 256), (256, 256), (256, 256),  # conv3_*
    (256, 512), (512, 512), (512, 512),  # conv4_*
    (512, 512), (512, 512), (512, 512),  # conv5_*
    (512, 512), (512, 512), (512, 512),  # conv5_3_D, conv5_2_D, conv5_1_D
    (512, 512), (512, 512), (512, 256),  # conv4_3_D, conv4_2_D, conv4_1_D
    (256, 256), (256, 256), (256, 128),  # conv3_3_D, conv3_2_D, conv3_1_D
    (128, 128), (128, 64),  # conv2_2_D, conv2_1_D
    (64, 64),  # conv1_2_D
]  # fmt: skip


def caffe_parameters(num_classes: int) -> int:
    """The Caffe model's learnable parameters: conv weights + biases + BN scale/shift, plus conv1_1_D."""
    body = sum(9 * cin * cout + cout + 2 * cout for cin, cout in CAFFE_CONVS)
    return body + 9 * 64 * num_classes + num_classes


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _convs(net: nn.Module) -> list[nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


def test_layer_list_is_the_caffe_models() -> None:
    with torch.device("meta"):
        net = SegNet(11, dropout=0.0)
    convs = _convs(net)
    assert [(c.in_channels, c.out_channels) for c in convs] == [*CAFFE_CONVS, (64, 11)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    # a BN after each of the 25 body convolutions, none after the classifier
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == len(CAFFE_CONVS)
    assert [len(b) for b in net.encoder] == [2, 2, 3, 3, 3] and [len(s) for s in net.decoder] == [3, 3, 3, 2, 1]


def test_parameter_count_equals_the_caffe_model_less_its_redundant_biases() -> None:
    # From the layer list above: 29,449,355 parameters at 11 classes (CamVid), 29,455,125 at 21 (VOC).
    assert caffe_parameters(11) == 29_449_355 and caffe_parameters(21) == 29_455_125
    # segcli drops the 25 conv biases that BN cancels: 64*2 + 128*2 + 256*3 + 512*6 (encoder)
    # + 512*5 + 256*3 + 128*2 + 64*2 (decoder) = 7,936 fewer.
    biases = sum(cout for _, cout in CAFFE_CONVS)
    assert biases == 7_936
    for classes in (11, 12, 21):
        with torch.device("meta"):
            net = SegNet(classes, dropout=0.0)
        assert _count(net) == caffe_parameters(classes) - biases
        assert abs(_count(net) / caffe_parameters(classes) - 1) < 0.001
    # yassouali/pytorch-segmentation models/segnet.py (torchvision VGG16-BN mirrored) counts 29,492,181 at
    # 21 classes: one more 64 -> 64 conv-BN-ReLU in its last decoder stage than the Caffe model (36,992 + biases).
    assert abs(caffe_parameters(21) - biases - 29_492_181) / 29_492_181 < 0.01


def test_unpooling_puts_each_value_back_at_its_argmax() -> None:
    """Odd sizes too: the pools round up (Caffe), and unpooling restores the size before the pool."""
    for h, w in [(8, 8), (9, 13), (1, 1), (5, 2)]:
        x = torch.rand(2, 3, h, w) + 0.1  # positive: the zeros unpooling leaves never win a window below
        pooled, idx = F.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)
        assert pooled.shape[-2:] == (-(-h // 2), -(-w // 2))
        up = unpool(pooled, idx, (h, w))
        assert torch.equal(up, F.max_unpool2d(pooled, idx, 2, 2, output_size=(h, w)))
        # every 2x2 window keeps its maximum in place and zeros elsewhere
        assert torch.equal(F.max_pool2d(up, 2, 2, ceil_mode=True), pooled)
        assert int((up != 0).sum()) == pooled.numel()


def test_decoder_uses_the_encoders_indices() -> None:
    """The first decoder stage sees the deepest features unpooled to where the fifth pool found them."""
    torch.manual_seed(0)
    net = SegNet(NUM_CLASSES, dropout=0.0).eval()
    seen = {}
    net.decoder[0].register_forward_hook(lambda m, args, out: seen.setdefault("in", args[0]))
    net.encoder[4].register_forward_hook(lambda m, args, out: seen.setdefault("conv5", out))
    with torch.no_grad():
        net(torch.randn(1, 3, 64, 96))
    conv5, unpooled = seen["conv5"], seen["in"]
    pooled, idx = F.max_pool2d(conv5, 2, 2, ceil_mode=True, return_indices=True)
    assert unpooled.shape == conv5.shape
    assert torch.equal(unpooled, F.max_unpool2d(pooled, idx, 2, 2, output_size=conv5.shape[-2:]))


@pytest.mark.parametrize("size", [(361, 479), (360, 480), (33, 47), (1, 1), (5, 7)])
def test_any_input_size_gives_input_sized_logits(size: tuple[int, int]) -> None:
    with torch.device("meta"):  # shapes only: a 361x479 forward pass of the full network needs no compute here
        net = MODELS.get("segnet")(NUM_CLASSES).eval()
        assert net(torch.empty(2, 3, *size)).shape == (2, NUM_CLASSES, *size)


def test_odd_size_forward_on_cpu() -> None:
    net = build_model("segnet", NUM_CLASSES).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 45, 61) * 255)
    assert y.shape == (1, NUM_CLASSES, 45, 61) and torch.isfinite(y).all()


def test_gradient_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    net = build_model("segnet", NUM_CLASSES, attention="scse").train()
    x = torch.rand(2, 3, 40, 56) * 255
    out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, NUM_CLASSES, 40, 56)  # no aux outputs
    F.cross_entropy(out, torch.randint(0, NUM_CLASSES, (2, 40, 56))).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_options() -> None:
    info = MODELS.info("segnet")
    assert not info.timm_encoder and {"separable", "decoder_channels"} <= set(info.rejects)
    assert info.paper.startswith("Badrinarayanan") and "segnet_train.prototxt" in info.reference
    with torch.device("meta"):
        plain = SegNet(NUM_CLASSES, dropout=0.0)
        fancy = SegNet(NUM_CLASSES, attention="scse", dropout=0.2)
    assert not any(isinstance(m, (nn.Dropout2d, SCSE)) for m in plain.modules())
    assert isinstance(fancy.classifier[0], SCSE) and fancy.classifier[1].p == 0.2
    assert SegNet.head_modules == ("decoder", "classifier")


def test_channels_last_matches() -> None:
    torch.manual_seed(0)
    net = SegNet(NUM_CLASSES).eval()
    x = torch.randn(1, 3, 37, 53)
    ref, got = channels_last_output(net, x)
    assert torch.allclose(got, ref, atol=1e-4)


@pytest.mark.slow
def test_torch_compile_runs() -> None:
    torch.manual_seed(0)
    net = SegNet(NUM_CLASSES).eval()
    x = torch.randn(1, 3, 35, 50)
    ref, got = compiled_output(net, x)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-4)
