"""Necks of the FPN family (segcli/models/necks.py) and the models built on them (fpn, panet, bifpn).

Shapes, the fast normalised fusion, parameter counts at the papers' configurations, the wiring against the
references (smp's FPN top-down path; the node list of google/automl's bifpn_config; PANet's equations), the
``fpn`` model unchanged by the move of its top-down path into the neck, and what each model rejects.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from model_helpers import channels_last_output, compiled_output, one_thread

from segcli.errors import PresetError
from segcli.models import MODELS, build_model, model_options
from segcli.models.necks import (
    NECKS,
    BiFPN,
    BiFPNLayer,
    FastFusion,
    PathAggregation,
    TopDown,
    build_neck,
    neck_problems,
)

IN_CHS = [8, 16, 24, 32]


_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _feats(sizes: list[tuple[int, int]], chs: list[int] = IN_CHS, n: int = 2, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, h, w, generator=g) for c, (h, w) in zip(chs, sizes)]


def _randomise(m: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (fusion weights included, some negative) and BN statistics, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.running_mean.copy_(torch.randn(b.num_features, generator=g) * 0.1)
                b.running_var.copy_(torch.rand(b.num_features, generator=g) + 0.5)
    return m.eval()


# Encoder features of a 361 x 479 image on a ResNet (strides 4..32, each size the ceiling of half the last).
ODD = [(91, 120), (46, 60), (23, 30), (12, 15)]


@pytest.mark.parametrize("name", list(NECKS))
def test_every_neck_returns_as_many_maps_at_their_sizes_and_one_width(name: str) -> None:
    neck = build_neck(name, IN_CHS, 12, [4, 8, 16, 32])
    out = neck(_feats(ODD))
    assert [tuple(o.shape) for o in out] == [(2, 12, h, w) for h, w in ODD]
    # a dilated encoder (output stride 8): the last three levels share a size, nothing is resampled between them
    same = [(20, 24), (10, 12), (10, 12), (10, 12)]
    out = build_neck(name, IN_CHS, 12, [4, 8, 8, 8])(_feats(same))
    assert [tuple(o.shape) for o in out] == [(2, 12, h, w) for h, w in same]


def test_fast_normalised_weights_are_non_negative_and_sum_to_one() -> None:
    fusion = FastFusion(3)
    assert torch.equal(fusion.weight.detach(), torch.ones(3))  # the reference starts every weight at 1
    with torch.no_grad():
        fusion.weight.copy_(torch.tensor([2.0, -1.0, 0.5]))
    w = fusion.normalised()
    assert (w >= 0).all() and w[1] == 0  # ReLU: a negative raw weight switches its input off
    assert w.sum().item() == pytest.approx(1.0, abs=1e-4)  # sum(w) / (sum(w) + 1e-4)
    assert torch.allclose(w, torch.tensor([2.0, 0.0, 0.5]) / (2.5 + 1e-4))
    xs = [torch.randn(1, 4, 5, 5) for _ in range(3)]
    assert torch.allclose(fusion(xs), w[0] * xs[0] + w[2] * xs[2])
    # every node of a BiFPN layer fuses this way, whatever its raw weights became in training
    layer = _randomise(BiFPNLayer(IN_CHS, 12))
    for node in [*layer.td, *layer.bu]:
        w = node.fuse.normalised()
        assert (w >= 0).all() and (w.sum().item() == pytest.approx(1.0, abs=1e-3) or w.sum() == 0)


def test_panet_bottom_up_parameter_count_at_the_paper_configuration() -> None:
    """PANet (and mmdetection's PAFPN on a ResNet-50) at 256 channels over the four levels N2..N5: the bottom-up
    path is three blocks of two 3x3 256->256 convs (mmdetection: downsample_convs + pafpn_convs). Weights:
    6 * 3 * 3 * 256 * 256 = 3,538,944. mmdetection's default adds a bias per conv (+6 * 256 = 3,540,480); ours
    is conv-BN-ReLU, so BN's scale and shift instead (+6 * 512 = 3,542,016): 1,536 more, 0.04%."""
    with torch.device("meta"):
        neck = PathAggregation([256, 512, 1024, 2048], 256)
    bottom_up = _count(neck) - _count(neck.top_down)
    assert bottom_up == 6 * 3 * 3 * 256 * 256 + 6 * 2 * 256 == 3_542_016
    assert abs(bottom_up - 3_540_480) / 3_540_480 < 0.001
    # its top-down path: FPN's 1x1 lateral convs with bias (mmdetection's lateral_convs), 3840*256 + 4*256
    assert _count(neck.top_down) == 984_064


def test_bifpn_layer_parameter_count_at_efficientdet_d0() -> None:
    """EfficientDet-D0: 64 channels, levels P3..P7 (C3..C5 of EfficientNet-B0 are 40, 112 and 320 wide; P6 and
    P7 are made 64 wide before the BiFPN), 3 layers. automl's layer list (bifpn_config, FNode, OpAfterCombine,
    ResampleFeatureMap): 8 nodes, each a SeparableConv2D 3x3 (depthwise 9*64, pointwise 64*64 + 64 bias) and a BN
    (2*64): 4,864 each, plus the fast-fusion weights 4*2 (top-down) + 3*3 + 2 (bottom-up) = 19, so one layer
    is 8 * 4,864 + 19 = 38,931. The first layer also resamples each input that is not 64 wide, once in every node
    that takes it: 1x1 conv with bias + BN: C5 twice (2 * 20,672), C4 twice (2 * 7,360), C3 once (2,752) = 58,816,
    so 97,747 for it, and 175,609 for the three. (effdet 0.4.1's BiFpn, rwightman's port of automl, gives
    97,747 / 38,931 / 38,931 per cell with redundant_bias=True, TF's layout, and equal outputs with the same
    weights: checked once by hand, effdet is not a dependency.)"""
    with torch.device("meta"):
        later = BiFPNLayer([64] * 5, 64)
        first = BiFPNLayer([40, 112, 320, 64, 64], 64)
        whole = BiFPN([40, 112, 320, 64, 64], 64, repeats=3)
    assert _count(later) == 8 * (9 * 64 + 64 * 64 + 64 + 2 * 64) + 19 == 38_931
    assert _count(first) - _count(later) == 2 * 20_672 + 2 * 7_360 + 2_752 == 58_816
    assert _count(first) == 97_747 and _count(whole) == 97_747 + 2 * 38_931 == 175_609


def _automl_nodes(levels: int) -> list[tuple[int, list[int]]]:
    """google/automl's bifpn_config (efficientdet/keras/fpn_configs.py) with levels numbered from 0: node ids
    0..levels-1 are the inputs, each new node gets the next id; (level, input ids) per node, in order."""
    ids = {lvl: [lvl] for lvl in range(levels)}
    nodes, nxt = [], levels
    for lvl in range(levels - 2, -1, -1):  # top-down
        nodes.append((lvl, [ids[lvl][-1], ids[lvl + 1][-1]]))
        ids[lvl].append(nxt)
        nxt += 1
    for lvl in range(1, levels):  # bottom-up
        nodes.append((lvl, [*ids[lvl], ids[lvl - 1][-1]]))
        ids[lvl].append(nxt)
        nxt += 1
    return nodes


def test_bifpn_layer_wires_its_nodes_as_automl_bifpn_config() -> None:
    """Run the layer's own modules in the order and with the inputs of automl's node list, each input resampled
    as ResampleFeatureMap does (the 1x1 projection first, then nearest upsampling or 3x3/2 max pooling), and
    compare with the layer's forward: same inputs per node, in the same order (each has its own weight)."""
    layer = _randomise(BiFPNLayer(IN_CHS, 12))
    levels = len(IN_CHS)
    sizes = [(15, 17), (8, 9), (4, 5), (2, 3)]
    feats = _feats(sizes)
    with torch.no_grad():
        nodes, level_of = list(feats), list(range(levels))
        for k, (lvl, inputs) in enumerate(_automl_nodes(levels)):
            top_down = k < levels - 1
            xs = []
            for i in inputs:
                x = nodes[i]
                if i < levels:  # an input of the layer: its own projection in this node
                    proj = (layer.td_in[lvl] if i == lvl else layer.top_in) if top_down else layer.bu_in[lvl - 1]
                    x = proj(x)
                if level_of[i] > lvl:
                    x = F.interpolate(x, size=sizes[lvl], mode="nearest")
                elif level_of[i] < lvl:
                    x = F.max_pool2d(x, 3, 2, 1)
                xs.append(x)
            nodes.append((layer.td[lvl] if top_down else layer.bu[lvl - 1])(xs))
            level_of.append(lvl)
        expected = [nodes[max(i for i, lv in enumerate(level_of) if lv == lvl)] for lvl in range(levels)]
        got = layer(feats)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, expected))


def _cbr(unit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """conv → BN (eval) → ReLU of a ConvBNReLU, written out."""
    conv, bn = unit[0], unit[1]
    y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding)
    return F.relu(F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))


def test_panet_follows_the_paper_bottom_up_path() -> None:
    """N2 = P2; N_{i+1} = conv3x3(conv3x3_stride2(N_i) + P_{i+1}), each step from N_i after its conv (the paper's
    Fig. 2; mmdetection's loop feeds the sum before it), on top of FPN's top-down P_i."""
    neck = _randomise(PathAggregation(IN_CHS, 12))
    feats = _feats(ODD)
    with torch.no_grad():
        p = neck.top_down(feats)
        n = [p[0]]
        for i in range(3):
            n.append(_cbr(neck.fuse[i], _cbr(neck.down[i], n[-1]) + p[i + 1]))
        got = neck(feats)
    assert torch.equal(got[0], p[0])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, n))


def test_fpn_neck_equals_smp_fpn_top_down_path() -> None:
    """segmentation-models-pytorch's FPNDecoder builds the same top-down path (p5 = 1x1 conv of C5, then per level
    2x nearest upsampling plus a 1x1 skip conv with bias): with its weights our neck gives its P2..P5. (smp's
    "PAN" is the Pyramid Attention Network, not PANet, and smp has no BiFPN: nothing there to compare them with.)"""
    fpn_decoder = pytest.importorskip("segmentation_models_pytorch.decoders.fpn.decoder")
    torch.manual_seed(0)
    smp = fpn_decoder.FPNDecoder([3, 4, *IN_CHS], encoder_depth=5, pyramid_channels=12).eval()
    neck = TopDown(IN_CHS, 12).eval()
    with torch.no_grad():
        for ours, theirs in zip(neck, [smp.p2.skip_conv, smp.p3.skip_conv, smp.p4.skip_conv, smp.p5]):
            ours.load_state_dict(theirs.state_dict())
        c2, c3, c4, c5 = feats = _feats([(16, 24), (8, 12), (4, 6), (2, 3)])
        p5 = smp.p5(c5)
        p4 = smp.p4(p5, c4)
        p3 = smp.p3(p4, c3)
        p2 = smp.p2(p3, c2)
        got = neck(feats)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, [p2, p3, p4, p5]))


# ------------------------------------------------------------------------------------------------ the fpn model
def test_fpn_is_unchanged_by_the_neck() -> None:
    """Today's fpn, measured with the code before necks existed: 11,596,563 parameters on resnet18 for 19 classes
    (encoder 11,176,512; laterals 960*128 + 4*128 = 123,392; smooth 4 * (9*128*64 + 2*64) = 295,424; classifier
    64*19 + 19 = 1,235), the same state-dict names (checkpoints load), the same outputs for a fixed seed."""
    with torch.device("meta"):
        model = build_model("fpn", 19, backbone="resnet18")
    assert _count(model) == 11_596_563
    assert _count(model.net) - _count(model.net.encoder) == 123_392 + 295_424 + 1_235
    torch.manual_seed(0)
    model = build_model("fpn", 3, backbone="test_resnet", decoder_channels=16).eval()
    names = [k for k in model.state_dict() if k.startswith("net.laterals.")]
    assert names == [f"net.laterals.{i}.{p}" for i in range(4) for p in ("weight", "bias")]
    assert not any(k.startswith("net.neck.") for k in model.state_dict())
    x = torch.rand(1, 3, 72, 88, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        y = model(x)
        # the decoder as it was written inline before the move, on the same weights
        net = model.net
        feats = [f for i, f in enumerate(net.encoder((x - model.mean) / model.std)) if i in net.use]
        p = net.laterals[-1](feats[-1])
        pyramid = [p]
        for lat, f in zip(reversed(list(net.laterals)[:-1]), reversed(feats[:-1])):
            p = lat(f) + F.interpolate(p, size=f.shape[-2:], mode="nearest")
            pyramid.insert(0, p)
        size = pyramid[0].shape[-2:]
        merged = sum(
            F.interpolate(s(q), size=size, mode="bilinear", align_corners=False) if q.shape[-2:] != size else s(q)
            for s, q in zip(net.smooth, pyramid)
        )
        before = F.interpolate(net.head(merged), size=(72, 88), mode="bilinear", align_corners=False)
    assert torch.equal(y, before)
    # the output of the code before the change for this seed and input (sum of the logits)
    assert y.double().sum().item() == pytest.approx(-9314.4907, rel=1e-4)


def test_fpn_takes_a_neck_and_the_named_models_fix_theirs() -> None:
    kw = {"backbone": "test_resnet", "decoder_channels": 16}
    assert {"neck", "neck_repeats"} <= model_options("fpn")
    fpn_panet = build_model("fpn", 3, neck="panet", **kw)
    assert isinstance(fpn_panet.net.neck, PathAggregation)
    assert _count(fpn_panet) == _count(build_model("panet", 3, **kw))
    assert len(build_model("fpn", 3, neck="bifpn", neck_repeats=2, **kw).net.neck) == 2
    assert len(build_model("bifpn", 3, **kw).net.neck) == 3  # EfficientDet-D0's depth by default
    assert len(build_model("bifpn", 3, neck_repeats=1, **kw).net.neck) == 1
    # panet and bifpn are fpn with their neck: a preset cannot ask them for another one
    assert MODELS.info("panet").rejects == ("neck", "neck_repeats") and MODELS.info("bifpn").rejects == ("neck",)
    with pytest.raises(PresetError, match="model.neck = 'bifpn'.*neck is 'panet'"):
        build_model("panet", 3, neck="bifpn", **kw)
    # models without the option reject a non-default neck when the preset loads (config validation)
    assert "neck" not in model_options("unet") and "neck" not in model_options("enet")


def test_neck_problems_name_the_key_and_the_valid_names() -> None:
    assert neck_problems("panet", 3) == [] and neck_problems("bifpn", 5) == []
    [(key, msg)] = neck_problems("bifnp", 3)
    assert key == "model.neck" and "'bifnp'" in msg and 'did you mean "bifpn"' in msg and "fpn, panet, bifpn" in msg
    [(key, msg)] = neck_problems("fpn", 2)
    assert key == "model.neck_repeats" and "only 'bifpn'" in msg
    with pytest.raises(PresetError, match="model.neck = 'pan'.*valid: fpn, panet, bifpn"):
        build_model("fpn", 3, backbone="test_resnet", neck="pan")


@pytest.mark.parametrize("name", ["panet", "bifpn"])
def test_odd_sizes_gradients_and_channels_last(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, backbone="test_resnet", decoder_channels=16).train()
    out = model(torch.rand(2, 3, 361, 479) * 255)
    assert out.shape == (2, 3, 361, 479)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    model.eval()
    x = torch.rand(1, 3, 72, 88) * 255
    ref, got = channels_last_output(model, x)
    assert torch.allclose(got, ref, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["panet", "bifpn"])
def test_torch_compile_runs(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, backbone="test_resnet", decoder_channels=16).eval()
    x = torch.rand(1, 3, 50, 70) * 255
    ref, got = compiled_output(model, x)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-4)
