"""Building a run's model and loss from its preset (segcli/core/factory.py): the keys of [model] and [loss]
mapped onto the builders, mean/std "auto" resolved, class weights from a list or a file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segcli.config.load import load_preset
from segcli.config.schema import LossConfig, ModelConfig
from segcli.core.factory import (
    aux_weights,
    class_weights_from_preset,
    loss_from_preset,
    model_from_preset,
    resolve_class_weights,
)
from segcli.errors import PresetError
from segcli.models import MODELS, Segmenter

TINY = {"backbone": "test_resnet", "pretrained": False, "decoder_channels": 16}


def test_a_model_config_made_in_code_builds_with_the_backbones_statistics() -> None:
    model = model_from_preset(ModelConfig(name="fpn", **{**TINY, "backbone": "resnet18"}), 3)
    assert isinstance(model, Segmenter)
    mean = torch.tensor([0.485, 0.456, 0.406]) * 255  # "auto" on a ResNet: ImageNet's, on 0..255 pixels
    torch.testing.assert_close(model.mean.flatten(), mean)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 32, 32) * 255).shape == (1, 3, 32, 32)  # three classes out


def test_explicit_mean_and_std_reach_the_model() -> None:
    model = model_from_preset(ModelConfig(name="fpn", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), **TINY), 2)
    assert model.mean.flatten().tolist() == [127.5] * 3 and model.std.flatten().tolist() == [63.75] * 3


def test_a_prior_model_takes_the_mask_channel_and_gives_a_still_image_an_empty_prior() -> None:
    model = model_from_preset(ModelConfig(name="fpn", prior="mask", **TINY), 3).eval()
    assert model.in_channels == 4 and model.prior
    assert model.mean.flatten()[3].item() == 127.5 and model.std.flatten()[3].item() == 127.5  # code 0..255 → ±1
    image = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        still = model(image)
        empty = model(torch.cat([image, torch.zeros(1, 1, 32, 32)], 1))
        full = model(torch.cat([image, torch.full((1, 1, 32, 32), 255.0)], 1))
    torch.testing.assert_close(still, empty)  # no channel: no previous frame
    assert not torch.allclose(still, full)  # the channel reaches the network
    plain = model_from_preset(ModelConfig(name="fpn", **TINY), 3)
    assert plain.in_channels == 3 and not plain.prior


def test_keys_a_model_does_not_take_are_left_out() -> None:
    """A network with its own backbone is built from a config whose backbone keys are at their defaults (its
    builder would reject them)."""
    name = next(n for n in MODELS.names() if not MODELS.info(n).timm_encoder)
    model = model_from_preset(ModelConfig(name=name), 4)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 64, 64) * 255).shape == (1, 4, 64, 64)


def test_aux_weights_follow_the_models_auxiliary_outputs() -> None:
    assert aux_weights(ModelConfig(name="fpn", aux_stages=())) == []
    assert aux_weights(ModelConfig(name="fpn", aux_stages=(2,), aux_weights=(0.25,))) == [0.25]


def test_class_weights_from_a_list_or_nothing() -> None:
    assert resolve_class_weights((), 3) is None and resolve_class_weights("", 3) is None
    w = resolve_class_weights((1.0, 2.0, 0.5), 3)
    assert w.dtype == torch.float32 and w.tolist() == [1.0, 2.0, 0.5]
    assert class_weights_from_preset(LossConfig(class_weights=(1.0, 3.0)), 2).tolist() == [1.0, 3.0]
    assert class_weights_from_preset(LossConfig(), 2) is None


def test_class_weights_of_another_dataset_are_refused() -> None:
    with pytest.raises(PresetError, match=r"loss.class_weights"):
        resolve_class_weights((1.0, 2.0), 3)


def test_a_relative_class_weights_file_is_read_from_the_base(tmp_path: Path) -> None:
    (tmp_path / "w.toml").write_text("weights = [1.0, 4.0]\n")
    assert resolve_class_weights("w.toml", 2, base=tmp_path).tolist() == [1.0, 4.0]
    with pytest.raises(PresetError, match=r"w.toml"):
        resolve_class_weights("w.toml", 3, base=tmp_path)  # the file's two weights, three classes: names the file


def test_the_loss_is_the_weighted_sum_of_its_terms_with_their_tables() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    target[0, 0] = 255
    ce = load_preset(None, ["loss.ce.label_smoothing=0.1"]).preset.loss
    loss = loss_from_preset(ce, 3, 255, None)
    want = F.cross_entropy(logits, target, ignore_index=255, label_smoothing=0.1)
    torch.testing.assert_close(loss(logits, target), want)
    half = loss_from_preset(LossConfig(terms=("ce",), term_weights=(0.5,)), 3, 255, None)
    torch.testing.assert_close(half(logits, target), 0.5 * F.cross_entropy(logits, target, ignore_index=255))
    w = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(
        loss_from_preset(LossConfig(), 3, 255, w)(logits, target),
        F.cross_entropy(logits, target, weight=w, ignore_index=255),
    )


def test_build_network_is_a_checked_plain_module_with_the_classes_asked_for() -> None:
    """``segcli.build_model``: the preset's model keys by keyword, checked as a preset's; logits out."""
    from segcli.core.factory import build_network

    net = build_network("fpn", 3, backbone="test_resnet", decoder_channels=16)
    assert isinstance(net, torch.nn.Module)
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(PresetError, match="model.bogus"):
        build_network("fpn", 3, bogus=1)


def test_override_text_types_python_values_as_the_command_line_does(tmp_path: Path) -> None:
    from segcli.core.factory import override_text

    assert override_text("train.amp", "none") == "train.amp=none"
    assert override_text("train.compile", False) == "train.compile=false"
    assert override_text("augment.crop_size", (64, 96)) == "augment.crop_size=[64, 96]"
    assert override_text("loss.terms", ["ce", "dice"]) == 'loss.terms=["ce", "dice"]'
    assert override_text("data.root", tmp_path) == f"data.root={tmp_path}"
    loaded = load_preset("quickstart", [override_text("augment.crop_size", [64, 96]), override_text("optim.lr", 1e-5)])
    assert loaded.preset.augment.crop_size == (64, 96) and loaded.preset.optim.lr == 1e-5


def test_build_network_with_n_input_channels() -> None:
    from segcli.core.factory import build_network

    net = build_network("fpn", 2, backbone="resnet18", in_channels=4, decoder_channels=16).eval()
    assert isinstance(net, Segmenter) and net.in_channels == 4  # RGB's statistics, then the extra channel's guess
    assert (net.mean.flatten() / 255).tolist() == pytest.approx([0.485, 0.456, 0.406, 0.5])
    with torch.no_grad():
        assert net(torch.rand(1, 4, 64, 64) * 255).shape == (1, 2, 64, 64)
    mine = build_network("enet", 2, in_channels=2, mean=[0.3, 0.4], std=[0.1, 0.2])
    assert mine.in_channels == 2 and (mine.std.flatten() / 255).tolist() == pytest.approx([0.1, 0.2])
    with pytest.raises(PresetError, match="model.mean"):
        build_network("enet", 2, in_channels=2, mean=[0.3, 0.4, 0.5])
