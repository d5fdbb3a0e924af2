"""SFNet and SFNet-Lite (segcli/models/sfnet.py): parameter counts against the reference's layer list, the
output contract at odd sizes, deep supervision, gradients, channels_last and torch.compile.

Reference: https://github.com/lxtGH/SFSegNets, network/sfnet_resnet.py (``DeepR18_SF_deeply``: SFNet-R18;
``DeepR18_SFV2_deeply_dsn_FA_Atten``: SFNet-Lite-R18), network/nn/operators.py and network/resnet_d.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from model_helpers import one_thread

from segcli.errors import PresetError
from segcli.models import MODELS, build_model
from segcli.models.flow import FlowAlign, GatedDualFlowAlign

NUM_CLASSES = 3


_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def _tiny(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, backbone="test_resnet", decoder_channels=16, **kw)


def _image(h: int, w: int, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(h + w)) * 255


# ------------------------------------------------------------------ the reference's layer list, counted by hand
def conv(cin: int, cout: int, k: int, bias: bool = False) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def basic_block(cin: int, planes: int) -> int:
    """BasicBlock: two 3x3 conv-BN, plus a 1x1 conv-BN shortcut when the width changes."""
    shortcut = conv(cin, planes, 1) + bn(planes) if cin != planes else 0
    return conv(cin, planes, 3) + bn(planes) + conv(planes, planes, 3) + bn(planes) + shortcut


def resnet18_body(inplanes: int) -> int:
    """layer1..layer4 of a ResNet-18 whose stem gives ``inplanes`` channels (stride-2 blocks change width)."""
    total, cin = 0, inplanes
    for planes in (64, 128, 256, 512):
        total += basic_block(cin, planes) + basic_block(planes, planes)
        cin = planes
    return total


# network/resnet_d.py resnet18: deep stem 3x3 convs 3→64→64→128 (BN after each), inplanes 128; fc unused.
REF_BACKBONE = conv(3, 64, 3) + bn(64) + conv(64, 64, 3) + bn(64) + conv(64, 128, 3) + bn(128) + resnet18_body(128)
# timm resnet18 (features_only): 7x7 stem 3→64 + BN, inplanes 64.
TIMM_BACKBONE = conv(3, 64, 7) + bn(64) + resnet18_body(64)
STEM_DIFFERENCE = REF_BACKBONE - TIMM_BACKBONE  # the only layers where ours differs from the reference


def ppm(cin: int, d: int, bins: int = 4) -> int:
    """PSPModule(cin, out_features=d): per bin 1x1 conv + BN; bottleneck 1x1 conv + BN over cin + bins * d."""
    return bins * (conv(cin, d, 1) + bn(d)) + conv(cin + bins * d, d, 1) + bn(d)


def fpn_in(cin: int, d: int) -> int:
    return conv(cin, d, 1, bias=True) + bn(d)


def conv_last(cin: int, d: int, nc: int) -> int:
    return conv(cin, d, 3) + bn(d) + conv(d, nc, 1, bias=True)


def sfnet_r18_head(nc: int, d: int = 128) -> int:
    """UperNetAlignHead(512, fpn_inplanes=[64, 128, 256, 512], fpn_dim=128), fpn_dsn off (the 12.87 M model)."""
    laterals = sum(fpn_in(c, d) for c in (64, 128, 256))
    fpn_out = 3 * (conv(d, d, 3) + bn(d))
    fams = 3 * (2 * conv(d, d // 2, 1) + conv(d, 2, 3))  # AlignedModule: down_h, down_l, flow_make
    return ppm(512, d) + laterals + fpn_out + fams + conv_last(4 * d, d, nc)


def sfnet_lite_r18_head(nc: int, d: int = 128) -> tuple[int, int]:
    """UperNetAlignHeadV2(512, fpn_inplanes=[64, 256, 512], fpn_dim=128, fpn_dsn=True, "spatial_atten"):
    (parameters as built, parameters its forward uses). It builds a lateral for all three inputs but uses the
    first two, and a deep-supervision head it never calls."""
    gdfam = 2 * conv(d, d // 2, 1) + conv(d, 4, 3) + conv(4, 1, 3)  # down_h, down_l, flow_make, flow_gate
    used = ppm(512, d) + fpn_in(64, d) + fpn_in(256, d) + gdfam + conv_last(2 * d, d, nc)
    unused = fpn_in(512, d) + conv(d, d, 3, bias=True) + bn(d) + conv(d, nc, 1, bias=True)
    return used + unused, used


def _counts(name: str) -> tuple[int, int]:
    """(whole network, outside the encoder) of ``name`` on timm resnet18 at 19 classes, no aux heads."""
    net = MODELS.get(name)(19, backbone="resnet18", builtin_aux=False)
    encoder = sum(p.numel() for p in net.encoder.parameters())
    assert encoder == TIMM_BACKBONE == 11_176_512
    total = sum(p.numel() for p in net.parameters())
    return total, total - encoder


def test_reference_backbone_count() -> None:
    """The deep-stem ResNet-18 has 148,480 parameters more than timm's (stem 112,832 vs 9,536, and layer1's
    first block takes 128 channels through a 1x1 shortcut)."""
    assert REF_BACKBONE == 11_324_992 and STEM_DIFFERENCE == 148_480


def test_sfnet_r18_parameter_count_matches_the_reference() -> None:
    """SFNet-R18 at 19 classes: the reference's layer list gives 12,869,715 parameters, the 12.87 M quoted for
    SFNet-R18. Ours: the decoder exactly the reference head (1,544,723); the whole
    network 12,721,235, the reference minus its deep stem (documented in segcli/models/sfnet.py; -1.15 %)."""
    ref = REF_BACKBONE + sfnet_r18_head(19)
    assert ref == 12_869_715 and round(ref / 1e6, 2) == 12.87
    total, decoder = _counts("sfnet")
    assert decoder == sfnet_r18_head(19) == 1_544_723
    assert total == ref - STEM_DIFFERENCE == 12_721_235


def test_sfnet_lite_r18_parameter_count_matches_the_reference() -> None:
    """SFNet-Lite-R18 at 19 classes: the reference module holds 12,296,074 parameters, of which its forward
    uses 12,079,863 (216,211 sit in a stride-32 lateral and a deep-supervision head that forward never calls;
    segcli does not build them). Ours: decoder = the used reference head (754,871); whole network 11,931,383,
    the used reference count minus its deep stem."""
    built, used = sfnet_lite_r18_head(19)
    assert REF_BACKBONE + built == 12_296_074 and REF_BACKBONE + used == 12_079_863
    total, decoder = _counts("sfnet_lite")
    assert decoder == used == 754_871
    assert total == REF_BACKBONE + used - STEM_DIFFERENCE == 11_931_383


def test_aux_heads_are_the_reference_dsn_heads() -> None:
    """fpn_dsn: one head per top-down step, 3x3 conv (bias dropped: BN follows) → BN → ReLU → dropout → 1x1."""
    with_aux = MODELS.get("sfnet")(19, backbone="resnet18")
    without = MODELS.get("sfnet")(19, backbone="resnet18", builtin_aux=False)
    extra = sum(p.numel() for p in with_aux.parameters()) - sum(p.numel() for p in without.parameters())
    assert extra == 3 * (conv(128, 128, 3) + bn(128) + conv(128, 19, 1, bias=True))


def test_flow_modules_where_the_papers_put_them() -> None:
    sf, lite = _tiny("sfnet").net, _tiny("sfnet_lite").net
    assert sum(isinstance(m, FlowAlign) for m in sf.modules()) == 3
    assert sum(isinstance(m, GatedDualFlowAlign) for m in lite.modules()) == 1
    assert not any(isinstance(m, FlowAlign) for m in lite.modules())
    red = lite.encoder.reductions
    assert (red[lite.fine], red[lite.mid], red[lite.top]) == (4, 16, 32)


# ------------------------------------------------------------------ output contract
@pytest.mark.parametrize("name", ["sfnet", "sfnet_lite"])
def test_odd_input_size_gives_input_sized_logits(name: str) -> None:
    model = _tiny(name).eval()
    with torch.no_grad():
        assert model(_image(361, 479, n=1)).shape == (1, NUM_CLASSES, 361, 479)


def test_sfnet_trains_with_three_deep_supervision_outputs() -> None:
    model = _tiny("sfnet").train()
    out = model(_image(72, 88))
    assert set(out) == {"out", "aux"} and len(out["aux"]) == 3 == MODELS.info("sfnet").builtin_aux
    assert all(a.shape == (2, NUM_CLASSES, 72, 88) for a in [out["out"], *out["aux"]])
    assert isinstance(_tiny("sfnet", builtin_aux=False).train()(_image(72, 88)), torch.Tensor)
    assert isinstance(_tiny("sfnet_lite").train()(_image(72, 88)), torch.Tensor)
    assert MODELS.info("sfnet_lite").builtin_aux == 0


@pytest.mark.parametrize("name", ["sfnet", "sfnet_lite"])
def test_gradient_reaches_every_parameter(name: str) -> None:
    model = _tiny(name).train()
    out = model(_image(64, 96))
    outputs = [out["out"], *out["aux"]] if isinstance(out, dict) else [out]
    target = torch.randint(0, NUM_CLASSES, (2, 64, 96), generator=torch.Generator().manual_seed(0))
    sum(nn.functional.cross_entropy(o, target) for o in outputs).backward()
    params = dict(model.named_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params.values())
    # every decoder weight moves; inside the encoder, timm zero-initialises the last BN of each residual
    # branch, which holds back the gradient of the layers before it at initialisation only
    still = [n for n, p in params.items() if ".encoder." not in n and not p.grad.abs().sum() > 0]
    assert not still


@pytest.mark.parametrize("name", ["sfnet", "sfnet_lite"])
def test_channels_last_matches(name: str) -> None:
    model = _tiny(name).eval()
    x = _image(72, 88, n=1)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, ref, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sfnet", "sfnet_lite"])
def test_torch_compile_runs(name: str) -> None:
    """One graph (fullgraph: no Python fallback around the warp or the pooling) through AOTAutograd. The default
    inductor backend also ran by hand (CPU, same outputs): 1-3 minutes of C++ builds on a 2-core machine."""
    model = _tiny(name).eval()
    x = _image(64, 96, n=1)
    with torch.no_grad():
        got = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
        assert torch.allclose(got, model(x), atol=1e-4)


def test_deep_supervision_needs_four_levels() -> None:
    """test_vit gives three maps, all at stride 16: sfnet's three aux heads need four levels (a clear error
    naming the switch); without them, and for sfnet_lite, three maps are enough."""
    with pytest.raises(PresetError, match="four feature maps.*gives 3: set model.builtin_aux = false"):
        build_model("sfnet", NUM_CLASSES, backbone="test_vit")
    build_model("sfnet", NUM_CLASSES, backbone="test_vit", builtin_aux=False, decoder_channels=8)
    build_model("sfnet_lite", NUM_CLASSES, backbone="test_vit", decoder_channels=8)
