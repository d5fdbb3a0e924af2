"""The key-map registry: auto-detection of the source format (parity on a real image through both sources),
sources no segcli model matches refused with the reason, and the shared value transforms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from convert_helpers import _compare, _randomise_norms, _real_image

from segcli.convert import ConvertOptions, TargetOptions, convert
from segcli.convert.maps import (
    MAPS,
    KeyMap,
    chain,
    detect,
    fold_bn,
    get_map,
    identity_conv_bn,
    register,
    zero_bias,
)
from segcli.core.checkpoint import build_from_weights
from segcli.errors import CheckpointError, UserError


def test_real_image_parity(tmp_path: Path, fixtures_dir: Path) -> None:
    import segmentation_models_pytorch as smp
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    cases = [
        (lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4), "", 8),
        (smp.FPN("tu-resnet18", encoder_weights=None, classes=4), "resnet18", 32),
    ]
    for i, (theirs, backbone, multiple) in enumerate(cases):
        theirs = _randomise_norms(theirs)
        src, out = tmp_path / f"{i}.pth", tmp_path / f"{i}.safetensors"
        torch.save(theirs.state_dict(), src)
        convert(src, out, target=TargetOptions(backbone=backbone or None))
        ours, _ = build_from_weights(out)
        diff, agree = _compare(theirs, ours, _real_image(fixtures_dir, multiple))
        print(f"{type(theirs).__name__} on color.jpg: max abs logit diff {diff:.2e}, argmax agreement {agree:.5f}")
        assert agree >= 0.999 and diff < 1e-4


def test_unsupported_sources_say_why(tmp_path: Path) -> None:
    import segmentation_models_pytorch as smp
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    for model, words in (
        (smp.Unet("tu-resnet18", encoder_weights=None, classes=2), "fifth decoder block"),
        (deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=2), "12/24/36"),
    ):
        src = tmp_path / "u.pth"
        torch.save(model.state_dict(), src)
        with pytest.raises(CheckpointError, match=words):
            convert(src, tmp_path / "u.safetensors")
    # a key the map does not know is an error unless dropped
    tv = pytest.importorskip("torchvision.models.segmentation").lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=2
    )
    sd = {**tv.state_dict(), "classifier.extra.weight": torch.zeros(1)}
    torch.save(sd, src)
    with pytest.raises(CheckpointError, match="classifier.extra.weight"):
        convert(src, tmp_path / "l.safetensors", ConvertOptions(source="torchvision:lraspp_mobilenet_v3_large"))
    assert convert(src, tmp_path / "l.safetensors", ConvertOptions(drop=[r"\.extra\."])).ok


def _map(**kw) -> KeyMap:  # noqa: ANN003
    return KeyMap(name="test:map", doc="a test map", **kw)


def test_apply_renames_with_the_first_matching_rule_drops_and_reports_the_rest() -> None:
    km = _map(
        rules=((r"backbone\.layer1\.", "enc.first."), (r"backbone\.", "enc."), (r"head\.", "dec.")), drop=(r"aux\.",)
    )
    sd = {k: torch.full((1,), float(i)) for i, k in enumerate(["backbone.layer1.w", "backbone.x", "aux.w", "other.w"])}
    out, unmapped, dropped = km.apply(sd)
    assert set(out) == {"enc.first.w", "enc.x"} and out["enc.x"].item() == 1.0
    assert unmapped == ["other.w"] and dropped == ["aux.w"]
    with pytest.raises(CheckpointError, match=r"map test:map: two keys become 'enc\.w'"):
        _map(rules=((r"a\.", "enc."), (r"b\.", "enc."))).apply({"a.w": torch.zeros(1), "b.w": torch.zeros(1)})


def test_the_transform_runs_only_when_every_key_is_mapped() -> None:
    calls: list[set[str]] = []

    def record(sd: dict) -> dict:
        calls.append(set(sd))
        return {**sd, "added": torch.zeros(1)}

    km = _map(rules=((r"x\.", "y."),), transform=record)
    out, unmapped, _ = km.apply({"x.w": torch.zeros(1)})
    assert set(out) == {"y.w", "added"} and unmapped == [] and calls == [{"y.w"}]
    out, unmapped, _ = km.apply({"x.w": torch.zeros(1), "z.w": torch.zeros(1)})
    assert "added" not in out and unmapped == ["z.w"] and len(calls) == 1


def test_matches_needs_every_signature_key_and_no_absent_one() -> None:
    km = _map(signature=("a", "b"), absent=("layer4.22",))
    assert km.matches({"a", "b", "c"})
    assert not km.matches({"a", "c"}) and not km.matches({"a", "b", "layer4.22"})
    assert not _map().matches({"a"})  # no signature: never auto-detected
    km = _map(classifier="head.weight")
    assert km.num_classes({"head.weight": torch.zeros(7, 3)}) == 7 and km.num_classes({}) is None


def test_detect_finds_one_map_none_or_names_the_ambiguous_ones() -> None:
    assert detect({"nothing.like.it": torch.zeros(1)}) is None
    keys = {"only.for.this.test": torch.zeros(1)}
    register(lambda: _map(signature=("only.for.this.test",)))
    try:
        assert detect(keys).name == "test:map"
        MAPS.register("test:other")(lambda: KeyMap(name="test:other", doc="", signature=("only.for.this.test",)))
        with pytest.raises(CheckpointError, match=r"several formats \(.*test:map.*test:other.*\); pick one with"):
            detect(keys)
    finally:
        for name in ("test:map", "test:other"):
            if name in MAPS:
                MAPS.unregister(name)


def test_get_map_of_an_unsupported_source_gives_the_reason() -> None:
    name = "test:unsupported"
    MAPS.register(name)(lambda: KeyMap(name=name, doc="", unsupported="its head has no segcli equivalent"))
    try:
        with pytest.raises(CheckpointError, match=r"test:unsupported: no segcli model matches it: its head has no"):
            get_map(name)
    finally:
        MAPS.unregister(name)
    with pytest.raises(UserError, match=r"unknown key map 'nope'"):
        get_map("nope")


def test_fold_bn_is_exact_in_inference() -> None:
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4)
    bn = _randomise_norms(torch.nn.Sequential(conv, bn))[1]
    sd = {"c.weight": conv.weight.detach().clone(), **{f"n.{k}": v.clone() for k, v in bn.state_dict().items()}}
    folded = fold_bn("n", "c")(sd)
    assert set(folded) == {"c.weight", "c.bias"}
    x = torch.randn(2, 3, 8, 8)
    fused = torch.nn.functional.conv2d(x, folded["c.weight"], folded["c.bias"])
    with torch.no_grad():
        torch.testing.assert_close(fused, bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_zero_bias_identity_conv_bn_and_chain() -> None:
    sd = {"head.weight": torch.ones(5, 2, 1, 1, dtype=torch.float64)}
    out = chain(zero_bias("head.weight"), identity_conv_bn("mid", 3))(sd)
    assert out["head.bias"].tolist() == [0.0] * 5 and out["head.bias"].dtype == torch.float64
    block = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1, bias=False), torch.nn.BatchNorm2d(3)).eval()
    block.load_state_dict({k.removeprefix("mid."): v for k, v in out.items() if k.startswith("mid.")})
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x, atol=1e-5, rtol=0)
