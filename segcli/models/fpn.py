"""FPN decoder (Kirillov et al., Panoptic FPN semantic branch) on any timm encoder."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder
from segcli.models.blocks import resize
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


@MODELS.register("fpn")
class FPN(EncoderDecoder):
    """Top-down pyramid over the stride >= 4 features, merged at stride 4, upsampled to the input."""

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        channels = self.channels
        self.use = [i for i, r in enumerate(encoder.reductions) if r >= 4][-4:]
        in_chs = [encoder.channels[i] for i in self.use]
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_chs)
        half = max(channels // 2, 8)
        self.smooth = nn.ModuleList(self.opts.conv(channels, half) for _ in in_chs)
        self.head = ClassifierHead(half, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = [feats[i] for i in self.use]
        p = self.laterals[-1](feats[-1])
        pyramid = [p]
        for lat, f in zip(reversed(self.laterals[:-1]), reversed(feats[:-1])):
            p = lat(f) + resize(p, f.shape[-2:], mode="nearest")
            pyramid.insert(0, p)
        size = pyramid[0].shape[-2:]
        merged = sum(resize(s(q), size) for s, q in zip(self.smooth, pyramid))
        return self.head(merged), []
