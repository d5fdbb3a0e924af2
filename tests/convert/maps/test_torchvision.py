"""torchvision key maps: torchvision models with random weights convert into segcli models that compute the
same logits (max abs difference) and argmax; the torchvision backbone in presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from convert_helpers import MEAN, STD, _check, _randomise_norms

from segcli.cli.app import run
from segcli.convert import convert
from segcli.core.checkpoint import build_from_weights
from segcli.errors import PresetError


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


def test_torchvision_backbone_in_presets() -> None:
    from segcli.config.load import load_preset

    p = load_preset("quickstart", ["model.name=lraspp", "model.backbone=torchvision:mobilenet_v3_large"]).preset
    assert p.model.backbone == "torchvision:mobilenet_v3_large"
    with pytest.raises(PresetError, match="torchvision:mobilenet_v3_large"):
        load_preset("quickstart", ["model.backbone=torchvision:resnet9"])
