"""FPN decoder (Kirillov et al., Panoptic FPN semantic branch) on any timm encoder."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.config.schema import ModelConfig
from segcli.models import MODELS
from segcli.models.blocks import ConvBNReLU
from segcli.models.encoder import TimmEncoder


class FPN(nn.Module):
    """Top-down pyramid over the stride >= 4 features, merged at stride 4, upsampled to the input."""

    def __init__(self, encoder: TimmEncoder, num_classes: int, channels: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.use = [i for i, r in enumerate(encoder.reductions) if r >= 4][-4:]
        if not self.use:
            raise ValueError("FPN needs encoder features with stride >= 4")
        in_chs = [encoder.channels[i] for i in self.use]
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_chs)
        self.smooth = nn.ModuleList(ConvBNReLU(channels, channels // 2) for _ in in_chs)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels // 2, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        feats = [feats[i] for i in self.use]
        p = self.laterals[-1](feats[-1])
        pyramid = [p]
        for lat, f in zip(reversed(self.laterals[:-1]), reversed(feats[:-1])):
            p = lat(f) + F.interpolate(p, size=f.shape[-2:], mode="nearest")
            pyramid.insert(0, p)
        size = pyramid[0].shape[-2:]
        merged = sum(
            F.interpolate(s(q), size=size, mode="bilinear", align_corners=False) if i else s(q)
            for i, (s, q) in enumerate(zip(self.smooth, pyramid))
        )
        logits = self.classifier(self.dropout(merged))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@MODELS.register("fpn")
def build_fpn(cfg: ModelConfig, num_classes: int) -> nn.Module:
    enc = TimmEncoder(cfg.backbone, cfg.pretrained, cfg.pretrained_file)
    return FPN(enc, num_classes, cfg.decoder_channels)
