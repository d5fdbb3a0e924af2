"""The timm encoder: features_only maps, backbone and stride errors, weight files, input-size errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread
from model_helpers import image as _image

from segcli.config.schema import ModelConfig
from segcli.core.factory import model_from_preset
from segcli.errors import CheckpointError, PresetError, UserError
from segcli.models import encoder as encoder_mod
from segcli.models.encoder import TimmEncoder, _clean_keys, load_state_file

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_channels_and_reductions_come_from_feature_info() -> None:
    enc = TimmEncoder("test_resnet").eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == enc.channels
    assert [64 // f.shape[-2] for f in feats] == enc.reductions == [2, 4, 8, 16, 32]
    assert TimmEncoder("test_resnet", out_indices=(2, 4)).reductions == [8, 32]
    assert enc.name == "test_resnet" and not enc.nhwc and enc.load_report == ""


def test_unknown_backbone_and_unreachable_stride_are_preset_errors() -> None:
    with pytest.raises(PresetError, match="resnet18x.*did you mean"):
        TimmEncoder("resnet18x")
    with pytest.raises(PresetError, match=r"model.output_stride = 8: backbone 'pvt_v2_b0'"):
        TimmEncoder("pvt_v2_b0", output_stride=8)


def test_patch_backbone_names_the_padded_size() -> None:
    model = model_from_preset(ModelConfig(name="fcn", backbone="test_vit", decoder_channels=16), NUM_CLASSES).eval()
    with torch.no_grad(), pytest.raises(UserError, match="divisible by 16.*80x96"):
        model(_image(72, 88, n=1))


def test_clean_keys_strips_wrapper_prefixes() -> None:
    wanted = {"conv.weight", "bn.bias"}
    sd = {"module._orig_mod.conv.weight": 1, "module._orig_mod.bn.bias": 2}
    assert set(_clean_keys(sd, wanted)) == wanted
    assert _clean_keys({"conv.weight": 1, "bn.bias": 2}, wanted) == {"conv.weight": 1, "bn.bias": 2}


def test_load_state_file_formats_and_errors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    t = {"w": torch.ones(2)}
    torch.save({"state_dict": t, "epoch": 3}, tmp_path / "a.pth")
    assert torch.equal(load_state_file(tmp_path / "a.pth")["w"], t["w"])  # unwrapped from "state_dict"
    folder = tmp_path / "hub"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="hub: no model.safetensors or pytorch_model.bin in this folder"):
        load_state_file(folder)
    save_file(t, folder / "model.safetensors")
    assert set(load_state_file(folder)) == {"w"}
    with pytest.raises(CheckpointError, match=r"nope.pth: pretrained file not found \(model.pretrained_file\)"):
        load_state_file(tmp_path / "nope.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="bad.safetensors: cannot read weights"):
        load_state_file(tmp_path / "bad.safetensors")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth: does not hold a state dict"):
        load_state_file(tmp_path / "list.pth")


def test_shape_mismatch_names_the_key(tmp_path: Path) -> None:
    enc = TimmEncoder("test_resnet")
    sd = dict(enc.body.state_dict())
    key = next(iter(sd))
    sd[key] = torch.zeros(1)
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=f"shape mismatch for {key}: file \\(1,\\)"):
        enc.load_pretrained_file(tmp_path / "w.pth")


def test_hub_is_used_offline_when_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(encoder_mod, "_hub_reachable", lambda timeout=3.0: False)
    before = hub.HF_HUB_OFFLINE
    with encoder_mod._offline_if_unreachable(True):
        assert hub.HF_HUB_OFFLINE is True
    assert hub.HF_HUB_OFFLINE == before
    with encoder_mod._offline_if_unreachable(False):  # no pretrained download: untouched
        assert hub.HF_HUB_OFFLINE == before


def test_an_rgb_stem_in_a_weights_file_is_adapted_to_n_channels(tmp_path: Path) -> None:
    """A 3-channel file loads into a 4- or 1-channel encoder as timm adapts its own pretrained stems: the RGB
    kernels repeated and scaled by 3/N (4 channels) or summed (1 channel); every other tensor as in the file."""
    rgb = TimmEncoder("test_resnet")
    torch.save(rgb.body.state_dict(), tmp_path / "rgb.pth")
    stem = next(k for k, v in rgb.body.state_dict().items() if v.ndim == 4)
    w = rgb.body.state_dict()[stem]
    four = TimmEncoder("test_resnet", pretrained_file=str(tmp_path / "rgb.pth"), in_chans=4)
    got = four.body.state_dict()[stem]
    assert got.shape[1] == 4
    torch.testing.assert_close(got[:, :3], w * 0.75)
    torch.testing.assert_close(got[:, 3], w[:, 0] * 0.75)
    one = TimmEncoder("test_resnet", pretrained_file=str(tmp_path / "rgb.pth"), in_chans=1)
    torch.testing.assert_close(one.body.state_dict()[stem], w.sum(dim=1, keepdim=True))
    assert len(four(torch.rand(1, 4, 64, 64))) == len(rgb.channels)
