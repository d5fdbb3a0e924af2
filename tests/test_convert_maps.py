"""Key maps: torchvision and smp models with random weights convert into segcli models that compute the same
logits (max abs difference) and argmax, on random inputs and on a real image; sources that no segcli model
matches are refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segcli.cli.app import run
from segcli.convert import ConvertOptions, TargetOptions, convert
from segcli.core.checkpoint import build_from_weights
from segcli.errors import CheckpointError, PresetError, UserError

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _randomise_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm/GroupNorm statistics and affines, so a wrongly mapped norm cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
            m.bias.data = torch.rand(m.bias.shape, generator=g) - 0.5
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean = torch.rand(m.running_mean.shape, generator=g) - 0.5
            m.running_var = torch.rand(m.running_var.shape, generator=g) + 0.5
    return model.eval()


def _compare(theirs: torch.nn.Module, ours: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max abs logit difference, argmax agreement) of ``theirs(x)`` and segcli's on the same pixels."""
    with torch.no_grad():
        a = theirs(x)
        a = a["out"] if isinstance(a, dict) else a
        b = ours.net(x)
    return float((a - b).abs().max()), float((a.argmax(1) == b.argmax(1)).float().mean())


def _real_image(fixtures_dir: Path, multiple: int) -> torch.Tensor:
    """The mmseg colour fixture as a normalised (1, 3, H, W) tensor, cropped to a multiple of ``multiple``."""
    from segcli.data.io import read_image

    img = read_image(fixtures_dir / "mmseg" / "color.jpg")
    h, w = (img.shape[0] // multiple) * multiple, (img.shape[1] // multiple) * multiple
    x = torch.from_numpy(np.ascontiguousarray(img[:h, :w])).permute(2, 0, 1)[None].float() / 255.0
    return (x - MEAN) / STD


def _check(theirs: torch.nn.Module, ours: torch.nn.Module, sizes: list[tuple[int, int]]) -> None:
    g = torch.Generator().manual_seed(1)
    for h, w in sizes:
        diff, agree = _compare(theirs, ours, torch.randn(2, 3, h, w, generator=g))
        print(f"{h}x{w}: max abs logit diff {diff:.2e}, argmax agreement {agree:.5f}")
        assert agree >= 0.999 and diff < 1e-4


def test_torchvision_lraspp_mobilenet_v3_large(
    tmp_path: Path, shapes_root: Path, capsys: pytest.CaptureFixture
) -> None:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    tv = _randomise_norms(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=6))
    src = tmp_path / "lraspp.pth"
    torch.save(tv.state_dict(), src)
    out = tmp_path / "lraspp.safetensors"
    args = ["convert-ckpt", str(src), str(out), "--from", "torchvision:lraspp_mobilenet_v3_large", "--json"]
    assert run(args) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["filled"] == ["mean", "std"] and not report["dropped"]
    ours, meta = build_from_weights(out)
    assert meta.num_classes == 6 and meta.preset.model.backbone == "torchvision:mobilenet_v3_large"
    _check(tv, ours, [(128, 160), (97, 131)])
    # seg infer reads the converted file as it is
    images = shapes_root / "images" / "val"
    assert run(["infer", str(out), str(images), "--out", str(tmp_path / "pred")]) == 0, capsys.readouterr().err
    assert len(list((tmp_path / "pred").rglob("*.png"))) >= len(list(images.iterdir()))
    # the whole segcli model (uint8-range input, normalisation inside) against torchvision on normalised input
    x = torch.randint(0, 256, (1, 3, 120, 200)).float()
    with torch.no_grad():
        assert torch.allclose(ours(x), tv((x / 255 - MEAN) / STD)["out"], atol=1e-4)


def test_smp_fpn_timm_encoder(tmp_path: Path) -> None:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    theirs = _randomise_norms(smp.FPN("tu-resnet18", encoder_weights=None, classes=5))
    src = tmp_path / "fpn.pth"
    torch.save({"state_dict": theirs.state_dict(), "epoch": 7}, src)
    out = tmp_path / "fpn.safetensors"
    with pytest.raises(UserError, match="`backbone`"):
        convert(src, out, ConvertOptions(strip=True))
    r = convert(src, out, ConvertOptions(strip=True), TargetOptions(backbone="resnet18"))  # auto-detected
    assert r.key_map == "smp:fpn" and r.unwrapped == ["state_dict"] and r.ok
    ours, meta = build_from_weights(out)
    assert meta.preset.model.name == "fpn_smp" and meta.preset.model.decoder_channels == 256
    _check(theirs, ours, [(128, 160), (64, 96)])


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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_torchvision_resnet_models(tmp_path: Path, name: str) -> None:
    import torchvision.models.segmentation as tvs

    theirs = _randomise_norms(getattr(tvs, name)(weights=None, weights_backbone=None, num_classes=3, aux_loss=True))
    src = tmp_path / "m.pth"
    torch.save(theirs.state_dict(), src)
    r = convert(src, tmp_path / "m.safetensors")
    assert r.key_map == f"torchvision:{name}" and all(k.startswith("aux_classifier.") for k in r.dropped)
    ours, _ = build_from_weights(tmp_path / "m.safetensors")
    _check(theirs, ours, [(72, 88)])


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


def test_torchvision_backbone_in_presets() -> None:
    from segcli.config.load import load_preset

    p = load_preset("quickstart", ["model.name=lraspp", "model.backbone=torchvision:mobilenet_v3_large"]).preset
    assert p.model.backbone == "torchvision:mobilenet_v3_large"
    with pytest.raises(PresetError, match="torchvision:mobilenet_v3_large"):
        load_preset("quickstart", ["model.backbone=torchvision:resnet9"])
