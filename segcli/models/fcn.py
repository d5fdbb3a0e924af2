"""FCN (Long et al.): two convolutions and a classifier on the deepest encoder feature."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.config.schema import ModelConfig
from segcli.models import MODELS
from segcli.models.base import EncoderDecoder, build_encoder
from segcli.models.encoder import TimmEncoder
from segcli.models.heads import ClassifierHead


class FCN(EncoderDecoder):
    """Deepest feature → 3x3 conv x2 → classifier, bilinearly upsampled (dilate with output_stride 8)."""

    def __init__(self, encoder: TimmEncoder, num_classes: int, cfg: ModelConfig) -> None:
        super().__init__(encoder, num_classes, cfg)
        c = cfg.decoder_channels
        self.convs = nn.Sequential(self.opts.conv(encoder.channels[-1], c), self.opts.conv(c, c))
        self.head = ClassifierHead(c, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.convs(feats[-1])), []


@MODELS.register("fcn")
def build_fcn(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return FCN(build_encoder(cfg), num_classes, cfg)
