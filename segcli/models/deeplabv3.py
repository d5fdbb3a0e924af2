"""DeepLabV3 (Chen et al. 2017): ASPP on a dilated encoder (output stride 16 by default, or 8)."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.config.schema import ModelConfig
from segcli.models import MODELS
from segcli.models.base import EncoderDecoder, build_encoder
from segcli.models.blocks import ASPP, aspp_rates
from segcli.models.encoder import TimmEncoder
from segcli.models.heads import ClassifierHead


class DeepLabV3(EncoderDecoder):
    """Deepest feature → ASPP (rates scaled to the stride) → 3x3 conv → classifier."""

    def __init__(self, encoder: TimmEncoder, num_classes: int, cfg: ModelConfig) -> None:
        super().__init__(encoder, num_classes, cfg)
        c = cfg.decoder_channels
        self.aspp = ASPP(encoder.channels[-1], c, aspp_rates(encoder.reductions[-1]), self.opts)
        self.conv = self.opts.conv(c, c)
        self.head = ClassifierHead(c, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.conv(self.aspp(feats[-1]))), []


@MODELS.register("deeplabv3")
def build_deeplabv3(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return DeepLabV3(build_encoder(cfg, default_stride=16), num_classes, cfg)
