"""The model zoo: every registered model builds, trains a step on CPU and honours the output contract."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from model_helpers import one_thread

from segcli.config.load import load_preset
from segcli.config.schema import ModelConfig
from segcli.core.factory import aux_weights, model_from_preset
from segcli.errors import PresetError, UserError
from segcli.losses import build_loss
from segcli.losses.outputs import output_loss
from segcli.models import MODELS, build_model, model_options

NUM_CLASSES = 3
BACKBONE = "test_resnet"  # timm's 0.4 M-parameter ResNet: strides 2..32, dilation support, fast on CPU
# Training outputs besides "out" and "aux" (their loss term is in segcli.losses.outputs).
EXTRA_OUTPUTS = {"pointrend": {"points"}}


_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def _cfg(name: str, **kw) -> ModelConfig:
    return ModelConfig(name=name, backbone=BACKBONE, decoder_channels=16, **kw)


def _image(h: int, w: int, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(h * w)) * 255


def test_every_expected_model_is_registered() -> None:
    expected = {"fcn", "unet", "fpn", "deeplabv3", "deeplabv3plus", "pspnet", "upernet", "lraspp", "segformer"}
    expected |= {"bisenetv1", "bisenetv2", "ddrnet23_slim", "enet"}
    assert expected <= set(MODELS.names())


@pytest.mark.parametrize("name", MODELS.names())
def test_train_step_and_eval_at_two_sizes(name: str) -> None:
    torch.manual_seed(0)
    model = model_from_preset(_cfg(name), NUM_CLASSES)
    for h, w in [(64, 64), (72, 88)]:
        model.train()
        x = _image(h, w)
        out = model(x)
        n_aux = MODELS.info(name).builtin_aux  # as registered; the model must return exactly that many
        extra = EXTRA_OUTPUTS.get(name, set())
        if n_aux or extra:
            assert isinstance(out, dict) and set(out) == {"out", "aux", *extra}
            logits, aux = out["out"], out["aux"]
            assert len(aux) == n_aux == MODELS.info(name).aux_outputs(True, ())
            assert all(a.shape == (2, NUM_CLASSES, h, w) for a in aux)
        else:
            assert isinstance(out, torch.Tensor) and MODELS.info(name).aux_outputs(True, ()) == 0
            logits, aux = out, []
        assert logits.shape == (2, NUM_CLASSES, h, w)
        target = torch.randint(0, NUM_CLASSES, (2, h, w))
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss = loss + sum(0.4 * torch.nn.functional.cross_entropy(a, target) for a in aux)
        if extra:  # the model's own training outputs, weighed as the trainer does
            loss = output_loss(build_loss(["ce"], NUM_CLASSES), out, target, [0.4] * n_aux)[0]
        model.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
        model.eval()
        with torch.no_grad():
            y = model(_image(h, w, n=1))
        assert isinstance(y, torch.Tensor) and y.shape == (1, NUM_CLASSES, h, w)


@pytest.mark.parametrize("name", ["fcn", "unet", "fpn", "deeplabv3plus", "upernet", "segformer", "bisenetv2"])
def test_sizes_not_divisible_by_32_give_input_sized_logits(name: str) -> None:
    model = model_from_preset(_cfg(name), NUM_CLASSES).eval()
    with torch.no_grad():
        assert model(_image(50, 70, n=1)).shape == (1, NUM_CLASSES, 50, 70)


def test_aux_stages_add_fcn_heads_in_training_only() -> None:
    model = model_from_preset(_cfg("unet", aux_stages=(2, -1)), NUM_CLASSES).train()
    out = model(_image(72, 88))
    assert len(out["aux"]) == 2 and all(a.shape == (2, NUM_CLASSES, 72, 88) for a in out["aux"])
    model.eval()
    with torch.no_grad():
        assert isinstance(model(_image(72, 88, n=1)), torch.Tensor)
    # bisenetv1: built-in heads first, then the encoder-stage heads.
    model = model_from_preset(_cfg("bisenetv1", aux_stages=(3,)), NUM_CLASSES).train()
    assert len(model(_image(64, 64))["aux"]) == 3


def test_bad_aux_stages_are_clear_errors() -> None:
    with pytest.raises(PresetError, match="aux_stages contains 9.*5 feature stages"):
        model_from_preset(_cfg("fpn", aux_stages=(9,)), NUM_CLASSES)
    with pytest.raises(PresetError, match="aux_stages.*own backbone"):  # at load time, before any network
        load_preset(None, ["model.name=enet", "model.aux_stages=[1]"])
    with pytest.raises(PresetError, match="separable = true.*'enet' does not support it"):
        load_preset(None, ["model.name=enet", "model.separable=true"])
    with pytest.raises(PresetError, match="output_stride = 16.*'bisenetv1' supports 32"):
        load_preset(None, ["model.name=bisenetv1", "model.output_stride=16"])


def test_aux_weights() -> None:
    assert aux_weights(_cfg("unet")) == []
    assert aux_weights(_cfg("unet", aux_stages=(2, -1))) == [0.4] * 2
    assert aux_weights(_cfg("bisenetv2")) == [0.4] * 4
    assert aux_weights(_cfg("bisenetv2", builtin_aux=False)) == []
    assert aux_weights(_cfg("bisenetv2", aux_weights=(1.0,))) == [1.0] * 4
    assert aux_weights(_cfg("bisenetv1", aux_weights=(1.0, 0.5))) == [1.0, 0.5]
    assert aux_weights(_cfg("bisenetv1", aux_stages=(3,), aux_weights=(1.0, 0.5, 0.2))) == [1.0, 0.5, 0.2]
    with pytest.raises(PresetError, match="3 values.*4 auxiliary outputs"):
        aux_weights(_cfg("bisenetv2", aux_weights=(1.0, 0.5, 0.2)))
    with pytest.raises(PresetError, match=">= 0"):
        aux_weights(_cfg("bisenetv1", aux_weights=(1.0, -0.5)))


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["model.name=bisenetv2", "model.aux_weights=[1, 0.5, 0.2]"], r"aux_weights has 3 values.*4 auxiliary"),
        (["model.name=bisenetv1", "model.aux_weights=[1, -0.5]"], r"aux_weights = \[1.0, -0.5\]: weights must be >= 0"),
        (["model.name=fpn", "model.aux_weights=[1, 1]"], r"aux_weights has 2 values.*'fpn' returns 0"),
    ],
)
def test_aux_weights_are_checked_at_load(overrides: list[str], pattern: str) -> None:
    with pytest.raises(PresetError, match=r"command line: model\." + pattern):
        load_preset(None, overrides)


@pytest.mark.parametrize(
    ("name", "stride", "expected"),
    [("deeplabv3", 0, 16), ("deeplabv3", 8, 8), ("deeplabv3plus", 16, 16), ("pspnet", 0, 8), ("fcn", 0, 32)],
)
def test_output_stride(name: str, stride: int, expected: int) -> None:
    model = model_from_preset(_cfg(name, output_stride=stride), NUM_CLASSES)
    assert model.net.encoder.reductions[-1] == expected
    feats = model.net.encoder(_image(64, 64, n=1))
    assert feats[-1].shape[-1] == 64 // expected


def test_unknown_backbone_is_a_preset_error() -> None:
    with pytest.raises(PresetError, match="resnet18x.*did you mean"):
        model_from_preset(replace(_cfg("unet"), backbone="resnet18x"), NUM_CLASSES)
    with pytest.raises(PresetError, match=r"command line: model.backbone = 'resnet18x' is not a timm model.*resnet18"):
        load_preset(None, ["model.backbone=resnet18x"])
    # models with their own backbone reject model.backbone outright (tests/config/test_load_recipes.py)
    with pytest.raises(PresetError, match=r"model.backbone = 'resnet18x': model 'ddrnet23_slim' has its own backbone"):
        load_preset(None, ["model.name=ddrnet23_slim", "model.backbone=resnet18x"])


def test_unknown_model_name_fails_at_load() -> None:
    with pytest.raises(
        PresetError, match=r"command line: model.name: unknown model 'unet2' \(did you mean \"unet\"\?\)"
    ):
        load_preset(None, ["model.name=unet2"])


def test_build_model_takes_keyword_options() -> None:
    model = build_model("fpn", NUM_CLASSES, backbone=BACKBONE, decoder_channels=8, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert model.net.encoder.name == BACKBONE and model.net.channels == 8
    assert torch.allclose(model.mean.flatten(), torch.full((3,), 127.5))
    assert model_options("enet") == {"attention", "dropout", "in_channels"}  # no backbone: the factory leaves it out
    with pytest.raises(UserError, match=r"unknown model 'fnp' \(did you mean \"fpn\"\?\)"):
        build_model("fnp", NUM_CLASSES)


@pytest.mark.slow
def test_seg_models_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    from segcli.cli.app import run

    assert run(["models", "--size", "64x96", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["size"] == [64, 96]
    assert [m["name"] for m in data["models"]] == MODELS.names()
    assert all(m["gflops"] > 0 and m["params_m"] > 0 for m in data["models"])


def test_seg_models_cli_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    from segcli.cli.app import run

    assert run(["models", "--size", "64by96"]) == 2
    assert "--size 64by96: give H,W as two whole numbers" in capsys.readouterr().err


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_takes_n_channel_input(name: str) -> None:
    """data.channels = 4 (RGB + near infrared) and 1 (grey): the stem takes that many channels, the Segmenter
    one mean/std value per channel, and the logits keep the output contract."""
    for channels in (4, 1):
        mean, std = (0.4,) * channels, (0.2,) * channels
        model = model_from_preset(replace(_cfg(name), mean=mean, std=std), NUM_CLASSES).eval()
        assert model.in_channels == channels
        x = torch.rand(1, channels, 64, 64, generator=torch.Generator().manual_seed(channels)) * 255
        with torch.no_grad():
            assert model(x).shape == (1, NUM_CLASSES, 64, 64)


def test_a_wrong_channel_count_is_one_line_naming_both_counts() -> None:
    model = model_from_preset(replace(_cfg("fcn"), mean=(0.5,) * 4, std=(0.25,) * 4), NUM_CLASSES).eval()
    with pytest.raises(UserError, match="takes 4-channel images, got 3 channels"):
        model(_image(64, 64, 1))
    with pytest.raises(PresetError, match=r"one value per input channel \(4\); got 3 and 3"):
        build_model("fcn", NUM_CLASSES, in_channels=4, backbone=BACKBONE)
