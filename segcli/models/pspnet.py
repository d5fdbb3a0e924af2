"""PSPNet (Zhao et al. 2017): pyramid pooling on a dilated encoder (output stride 8 by default)."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.config.schema import ModelConfig
from segcli.models import MODELS
from segcli.models.base import EncoderDecoder, build_encoder
from segcli.models.blocks import PPM
from segcli.models.encoder import TimmEncoder
from segcli.models.heads import ClassifierHead


class PSPNet(EncoderDecoder):
    """Deepest feature → PPM (bins 1, 2, 3, 6; each cin/4 wide) → 3x3 conv → classifier."""

    def __init__(self, encoder: TimmEncoder, num_classes: int, cfg: ModelConfig) -> None:
        super().__init__(encoder, num_classes, cfg)
        cin = encoder.channels[-1]
        self.ppm = PPM(cin, max(cin // 4, 16))
        self.conv = self.opts.conv(self.ppm.out_channels, cfg.decoder_channels)
        self.head = ClassifierHead(cfg.decoder_channels, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.conv(self.ppm(feats[-1]))), []


@MODELS.register("pspnet")
def build_pspnet(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return PSPNet(build_encoder(cfg, default_stride=8), num_classes, cfg)
