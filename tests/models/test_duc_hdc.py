"""DUC-HDC: the HDC dilation rates against the official network, no gridding, the DUC head's size and layout,
any input size, gradients, channels_last / torch.compile, clear errors for what it cannot build."""

from __future__ import annotations

import pytest
import torch
from model_helpers import channels_last_output, compiled_output, one_thread

from segcli.errors import PresetError
from segcli.models import MODELS
from segcli.models.duc_hdc import DUC, HDC_RES4, stage_convs

NUM_CLASSES = 3


_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def _build(num_classes: int = NUM_CLASSES, **kw) -> torch.nn.Module:
    kw.setdefault("backbone", "test_resnet")
    torch.manual_seed(0)
    return MODELS.get("duc_hdc")(num_classes, **kw)


def _rates(net: torch.nn.Module) -> list[list[int]]:
    """The dilation of every 3x3 conv of layer3 and layer4, read from the built modules (not from hdc_rates)."""
    out = []
    for name in ("layer3", "layer4"):
        convs = stage_convs(net.encoder.body.get_submodule(name))
        assert all(c.padding == c.dilation and c.stride == (1, 1) for c in convs)
        out.append([c.dilation[0] for c in convs])
    return out


# The official network, TuSimple-DUC tusimple_duc/networks/resnet.py get_resnet_hdc(): dilate of res4a, res4b1 ..
# res4b22 and res5a, res5b, res5c (one 3x3 conv per bottleneck block).
REFERENCE_RES4 = [2, 2, 5, 9, 1, 2, 5, 9, 1, 2, 5, 9, 1, 2, 5, 9, 1, 2, 5, 9, 1, 2, 5]
REFERENCE_RES5 = [5, 9, 17]


def test_registration() -> None:
    info = MODELS.info("duc_hdc")
    assert info.strides == (8,) and info.timm_encoder and "separable" in info.rejects
    assert "Understanding Convolution" in info.paper and "TuSimple-DUC" in info.reference


def test_resnet101_has_the_paper_hdc_cycle() -> None:
    """res4 cycles 1, 2, 5, 9 and res5 5, 9, 17: the reference's rates but for res4a's, 1 here (timm's ResNet
    strides in that block's 3x3 conv, the reference's in its 1x1 conv: see the module docstring)."""
    with torch.device("meta"):
        net = _build(19, backbone="resnet101")
    assert net.encoder.reductions[-1] == 8
    res4, res5 = _rates(net)
    assert res4 == [1, 2, 5, 9] * 5 + [1, 2, 5] and res5 == [5, 9, 17]
    assert res4[1:] == REFERENCE_RES4[1:] and res5 == REFERENCE_RES5
    assert net.hdc_rates == [res4, res5]


def test_basic_blocks_cycle_over_their_two_convs() -> None:
    with torch.device("meta"):
        net = _build(backbone="resnet18")
    assert _rates(net) == [[1, 2, 5, 9], [5, 9, 17, 5]]
    assert _rates(_build()) == [[1], [5, 9]]  # test_resnet: one Bottleneck in layer3, one BasicBlock in layer4


def _offsets(rates: list[int]) -> set[int]:
    """1-D input offsets (in feature pixels) that reach one output pixel through stacked 3x3 convs."""
    reach = {0}
    for r in rates:
        reach = {o + d for o in reach for d in (-r, 0, r)}
    return reach


def _holes(rates: list[int]) -> list[int]:
    reach = _offsets(rates)
    return [o for o in range(min(reach), max(reach) + 1) if o not in reach]


def test_no_gridding_where_plain_dilation_has_it() -> None:
    """The paper's gridding issue: stacked rates with a common factor skip input pixels. The HDC stack of the
    dilated stages reaches every offset of its receptive field; the same stages at the DeepLab-v2 rates the paper
    starts from (2 throughout res4, 4 throughout res5) reach only every other one."""
    with torch.device("meta"):
        hdc = _build(19, backbone="resnet101")
    hdc_chain = sum(_rates(hdc), [])
    assert not _holes(hdc_chain) and max(_offsets(hdc_chain)) == sum(hdc_chain)
    deeplab_chain = [2] * len(REFERENCE_RES4) + [4] * len(REFERENCE_RES5)
    assert _holes(deeplab_chain) == [o for o in range(-sum(deeplab_chain), sum(deeplab_chain)) if o % 2]
    assert not _holes(sum(_rates(_build(backbone="resnet18")), []))
    # The paper's design rule for one group of rates with kernel K = 3: M_n = r_n,
    # M_i = max(M_{i+1} - 2 r_i, M_{i+1} - 2 (M_{i+1} - r_i), r_i), and M_2 <= K.
    m = HDC_RES4[-1]
    for r in reversed(HDC_RES4[1:-1]):
        m = max(m - 2 * r, m - 2 * (m - r), r)
    assert m <= 3


def _reference_resnet101_hdc_params() -> int:
    """Parameters of TuSimple-DUC's get_resnet_hdc(), counted from its layer list: convs without bias, every
    BatchNorm with gamma and beta. Stem: 3x3 convs 3→64 (stride 2), 64→64, 64→128; then bottlenecks
    (reduce 1x1, 3x3, increase 1x1, projection 1x1 on the first block) of widths 64/256 x3, 128/512 x4,
    256/1024 x23, 512/2048 x3, res2 taking the stem's 128 channels."""
    stem = 3 * 64 * 9 + 64 * 64 * 9 + 64 * 128 * 9 + 2 * (64 + 64 + 128)
    total, cin = stem, 128
    for mid, out, blocks in [(64, 256, 3), (128, 512, 4), (256, 1024, 23), (512, 2048, 3)]:
        for b in range(blocks):
            total += cin * mid + mid * mid * 9 + mid * out + 2 * (mid + mid + out)
            if b == 0:
                total += cin * out + 2 * out
            cin = out
    return total


def _duc_params(cin: int, classes: int, cell: int, branches: int = 4) -> int:
    """get_symbol_duc_hdc's head: ``aspp_num`` 3x3 convs (with bias) to cell_cap * label_num channels."""
    return branches * (cin * classes * cell * 9 + classes * cell)


def test_parameter_count_at_the_source_configuration() -> None:
    """ResNet-101, 19 Cityscapes classes, DUC at r = 8 (get_symbol_duc_hdc's default cell_cap = 64).

    Reference, from TuSimple-DUC's layer list: backbone 42,623,936 + DUC 4 x (2048*1216*9 + 1216) = 89,658,112,
    total 132,282,048. Ours: 132,158,272, fewer by 123,776 (0.09%): timm's resnet101 has the 7x7 stem
    (9,536 parameters against the reference's three-conv stem, 112,832) and res2 takes 64 channels, not 128
    (20,480 fewer in its first block's reduce and projection convs). The DUC head is the same size.
    The repository's training config (cell_width = 2: cell_cap 16) gives the released model's
    42,623,936 + 22,414,528 = 65,038,464 parameters (260 MB in float32, the ONNX model zoo's 248.6 MB file).
    """
    reference_backbone = _reference_resnet101_hdc_params()
    assert reference_backbone == 42_623_936
    reference = reference_backbone + _duc_params(2048, 19, 64)
    assert reference == 132_282_048
    with torch.device("meta"):
        net = _build(19, backbone="resnet101", dropout=0.0)
        released_head = DUC(2048, 19, upscale=4)
    ours = sum(p.numel() for p in net.parameters())
    assert ours == 132_158_272
    assert sum(p.numel() for p in net.duc.parameters()) == _duc_params(2048, 19, 64) == 89_658_112
    assert reference - ours == 123_776 and (reference - ours) / reference < 0.01
    assert reference_backbone + sum(p.numel() for p in released_head.parameters()) == 65_038_464


def test_duc_channel_order_is_the_reference_reshape() -> None:
    """The reference rearranges (label, cell row, cell column, h, w) → (label, h*r, w*r) as pixel_shuffle does,
    so its fc1_* weights load into DUC's branches unchanged."""
    k, r, h, w = 2, 4, 3, 5
    y = torch.arange(k * r * r * h * w, dtype=torch.float32).view(1, k * r * r, h, w)
    ref = y.view(k, r, r, h, w).permute(0, 3, 1, 4, 2).reshape(1, k, h * r, w * r)
    assert torch.equal(torch.nn.functional.pixel_shuffle(y, r), ref)


@pytest.mark.parametrize(("h", "w"), [(361, 479), (50, 70), (64, 64)])
def test_any_input_size_gives_input_sized_logits(h: int, w: int) -> None:
    net = _build().eval()
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        y = net(x)
        full = net.duc(net.pre(net.encoder(x)[-1]))
    assert y.shape == (1, NUM_CLASSES, h, w)
    assert full.shape[-2:] == (-(-h // 8) * 8, -(-w // 8) * 8)
    assert torch.equal(y, full[..., :h, :w])  # the top-left crop, no resampling


def test_gradient_reaches_every_parameter() -> None:
    net = _build(aux_stages=(3,)).train()
    for m in net.modules():  # timm zero-initialises each residual branch's last BN, which stops the gradient
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
    x = torch.randn(2, 3, 72, 88)
    out = net(x)
    assert out["out"].shape == (2, NUM_CLASSES, 72, 88) and out["aux"][0].shape == (2, NUM_CLASSES, 72, 88)
    target = torch.randint(0, NUM_CLASSES, (2, 72, 88))
    loss = sum(torch.nn.functional.cross_entropy(o, target) for o in [out["out"], *out["aux"]])
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_attention_and_dropout_options() -> None:
    net = _build(attention="scse", dropout=0.3)
    assert type(net.pre[0]).__name__ == "SCSE" and net.pre[1].p == 0.3
    assert isinstance(_build(dropout=0.0).pre[1], torch.nn.Identity)


def test_channels_last_matches() -> None:
    net = _build().eval()
    x = torch.randn(1, 3, 56, 72)
    ref, y = channels_last_output(net, x)
    assert torch.allclose(y, ref, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_runs() -> None:
    net = _build().eval()
    x = torch.randn(1, 3, 50, 70)
    ref, y = compiled_output(net, x)
    assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-4)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"backbone": "efficientnet_b0"}, r"'efficientnet_b0'.*InvertedResidual.*supported: timm's ResNet family"),
        ({"backbone": "pvt_v2_b0"}, r"output stride 8 only.*'pvt_v2_b0' gives 32"),
        ({"output_stride": 16}, r"output stride 8 only.*gives 16"),
        ({"separable": True}, r"separable = true.*'duc_hdc' does not support it"),
    ],
)
def test_what_it_cannot_build_is_a_preset_error(options: dict, pattern: str) -> None:
    with pytest.raises(PresetError, match=pattern):
        _build(**options)
