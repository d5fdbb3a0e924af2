"""What every decoder shares: the encoder at an output stride, the train/eval contract, input checks, head params."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NUM_CLASSES, one_thread

from segcli.config.schema import ModelConfig
from segcli.core.factory import model_from_preset
from segcli.errors import PresetError, UserError
from segcli.models.base import (
    EncoderDecoder,
    OwnBackbone,
    build_encoder,
    check_input_shape,
    head_parameters,
    pack_output,
)
from segcli.models.tv_encoder import TorchvisionEncoder

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


class _Plain(EncoderDecoder):
    """The smallest decoder: a 1x1 classifier on the deepest feature."""

    def build_decoder(self, num_classes: int) -> None:
        self.cls = torch.nn.Conv2d(self.encoder.channels[-1], num_classes, 1)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.cls(feats[-1]), []


class _WithOption(_Plain):
    extra_options = {"depth": 2}


def test_build_encoder_strides() -> None:
    assert build_encoder("test_resnet").reductions[-1] == 32
    assert build_encoder("test_resnet", output_stride=8).reductions[-1] == 8
    assert build_encoder("test_resnet", default_stride=16).reductions[-1] == 16
    with pytest.raises(PresetError, match="output_stride"):
        build_encoder("test_resnet", output_stride=12)


def test_build_encoder_routes_torchvision_backbones() -> None:
    enc = build_encoder("torchvision:mobilenet_v3_large", default_stride=8)
    assert isinstance(enc, TorchvisionEncoder) and enc.reductions[-1] == 16  # clamped to 16..32


def test_backbone_without_output_stride_is_a_clear_error_or_falls_back_by_default() -> None:
    with pytest.raises(PresetError, match="output_stride = 8.*pvt_v2_b0"):
        model_from_preset(ModelConfig(name="deeplabv3plus", backbone="pvt_v2_b0", output_stride=8), NUM_CLASSES)
    # The model's own default (16) falls back to the backbone's native stride.
    model = model_from_preset(ModelConfig(name="deeplabv3plus", backbone="pvt_v2_b0", decoder_channels=32), NUM_CLASSES)
    assert model.net.encoder.reductions[-1] == 32


def test_pack_output_contract() -> None:
    m = torch.nn.Module()
    logits, aux = torch.randn(1, 2, 4, 4), [torch.randn(1, 2, 2, 2)]
    m.train()
    out = pack_output(m, logits, aux, torch.Size((8, 8)))
    assert set(out) == {"out", "aux"} and out["out"].shape[-2:] == (8, 8) and out["aux"][0].shape[-2:] == (8, 8)
    assert isinstance(pack_output(m, logits, [], torch.Size((8, 8))), torch.Tensor)
    m.eval()
    assert pack_output(m, logits, aux, torch.Size((4, 4))) is logits  # no resize needed, no aux in eval


def test_check_input_shape_names_the_padded_size() -> None:
    check_input_shape(torch.zeros(1, 3, 16, 24), 8, "m")
    with pytest.raises(UserError, match=r"model 'm' needs input height and width divisible by 8, got 17x24; .*24x24"):
        check_input_shape(torch.zeros(1, 3, 17, 24), 8, "m")


def test_encoder_decoder_aux_heads_and_unknown_options() -> None:
    net = _Plain(NUM_CLASSES, backbone="test_resnet", aux_stages=(-1, 2)).train()
    assert net.aux_heads is not None and net.aux_heads.stages == [4, 2]
    out = net(torch.randn(2, 3, 64, 64))
    assert len(out["aux"]) == 2 and out["out"].shape == (2, NUM_CLASSES, 64, 64)
    assert _Plain(NUM_CLASSES, backbone="test_resnet").aux_heads is None
    assert _WithOption(NUM_CLASSES, backbone="test_resnet").extra == {"depth": 2}
    assert _WithOption(NUM_CLASSES, backbone="test_resnet", depth=5).extra == {"depth": 5}
    with pytest.raises(TypeError, match="_Plain got unexpected keyword arguments depth"):
        _Plain(NUM_CLASSES, backbone="test_resnet", depth=5)


def test_head_parameters() -> None:
    net = _Plain(NUM_CLASSES, backbone="test_resnet", aux_stages=(3,))
    head = {id(p) for p in head_parameters(net)}
    assert head == {id(p) for m in (net.cls, net.aux_heads) for p in m.parameters()}
    wrapped = torch.nn.Module()
    wrapped.net = net
    assert {id(p) for p in head_parameters(wrapped)} == head
    assert head_parameters(torch.nn.Conv2d(3, 3, 1)) == []  # no encoder, no head_modules


def test_own_backbone_sets_options_before_building() -> None:
    seen = {}

    class Own(OwnBackbone):
        def build_layers(self, num_classes: int) -> None:
            seen.update(channels=self.channels, aux=self.builtin_aux, sep=self.opts.separable, n=num_classes)

    Own(4, decoder_channels=8, builtin_aux=False, separable=True)
    assert seen == {"channels": 8, "aux": False, "sep": True, "n": 4}
    with pytest.raises(NotImplementedError):
        OwnBackbone(4)
