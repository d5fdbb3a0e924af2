"""smp key maps: an smp FPN with a timm encoder converts into segcli's fpn_smp computing the same logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from convert_helpers import _check, _randomise_norms

from segcli.convert import ConvertOptions, TargetOptions, convert
from segcli.core.checkpoint import build_from_weights
from segcli.errors import UserError


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
