"""The model registry: registration info, the options a builder takes, short paper names."""

from __future__ import annotations

import pytest
import torch
from model_helpers import image as _image

from segcli.config.load import load_preset
from segcli.core.factory import aux_weights, model_from_preset
from segcli.models import MODELS, build_model
from segcli.models.registry import ModelInfo, model_options, short_paper, supported_options


class _Tiny(torch.nn.Module):
    def __init__(self, num_classes: int, *, width: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.Conv2d(width, num_classes, 1))
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.fixture
def tiny_model():
    """A model registered by a test: one class (or function) and one register call."""
    MODELS.register("tiny_test_model", timm_encoder=False)(_Tiny)
    yield "tiny_test_model"
    MODELS.unregister("tiny_test_model")


def test_a_model_registered_elsewhere_builds_and_loads_from_a_preset(tiny_model: str) -> None:
    model = build_model(tiny_model, 5, width=6)
    assert model(_image(16, 16, n=1)).shape == (1, 5, 16, 16)
    assert model.net.body[0].out_channels == 6
    preset = load_preset(None, [f"model.name={tiny_model}", "model.dropout=0.3"]).preset
    built = model_from_preset(preset.model, 2)  # backbone, decoder_channels, ... are not its options
    assert built.net.dropout == 0.3 and built(_image(8, 8, n=1)).shape == (1, 2, 8, 8)
    assert aux_weights(preset.model) == []


def test_model_info_counts_aux_outputs() -> None:
    info = ModelInfo(builtin_aux=2)
    assert info.aux_outputs(True, ()) == 2 and info.aux_outputs(False, (1, 2)) == 2
    assert info.aux_outputs(True, (3,)) == 3
    own = ModelInfo(timm_encoder=False, builtin_aux=1)
    assert own.aux_outputs(True, (1, 2)) == 1  # encoder-stage heads need a timm encoder


def test_every_registered_model_has_info_and_a_paper() -> None:
    for name in MODELS.names():
        info = MODELS.info(name)
        assert isinstance(info, ModelInfo) and info.paper, name
        assert set(info.strides) <= {8, 16, 32}, name


def test_model_options_reads_the_builder() -> None:
    assert {"backbone", "decoder_channels", "aux_stages", "output_stride"} <= model_options("fpn")
    assert {"neck", "neck_repeats"} <= model_options("fpn")  # the decoder's own extra_options
    assert "neck" not in model_options("unet")
    assert "backbone" not in model_options("bisenetv2")

    def anything(num_classes: int, **kwargs: object) -> torch.nn.Module:
        return torch.nn.Conv2d(3, num_classes, 1)

    def fixed(num_classes: int, *, width: int = 4) -> torch.nn.Module:
        return torch.nn.Conv2d(3, num_classes, 1)

    MODELS.register("tmp_anything", timm_encoder=False)(anything)
    MODELS.register("tmp_fixed", timm_encoder=False)(fixed)
    try:
        assert model_options("tmp_anything") is None
        assert model_options("tmp_fixed") == {"width"}
        assert supported_options("tmp_anything", {"a": 1, "width": 2}) == {"a": 1, "width": 2}
        assert supported_options("tmp_fixed", {"a": 1, "width": 2}) == {"width": 2}
    finally:
        MODELS.unregister("tmp_anything")
        MODELS.unregister("tmp_fixed")
    assert "tmp_fixed" not in MODELS.names()


def test_short_paper_keeps_authors_and_venue() -> None:
    assert short_paper("Zhao et al., Pyramid Scene Parsing Network, CVPR 2017") == "Zhao et al., CVPR 2017"
    assert short_paper("Roy, Navab, Wachinger, Concurrent SE, MICCAI 2018") == "Roy et al., MICCAI 2018"
    assert short_paper("no venue") == "no venue"
