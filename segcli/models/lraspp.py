"""LR-ASPP (Howard et al., MobileNetV3): a gated 1x1 branch on the deepest feature plus a stride-8 skip."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder
from segcli.models.blocks import ConvBNReLU, resize
from segcli.models.registry import MODELS


@MODELS.register(
    "lraspp",
    paper="Howard et al., Searching for MobileNetV3, ICCV 2019",
    reference=(
        "https://github.com/pytorch/vision "
        "(torchvision/models/segmentation/lraspp.py, lraspp_mobilenet_v3_large: its weights convert)"
    ),
)
class LRASPP(EncoderDecoder):
    """high → 1x1 conv x sigmoid(global-pool gate) → upsample to stride 8 → classifier + low-level classifier."""

    default_stride = 16

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        c = self.channels
        red = encoder.reductions
        self.low = max((i for i, r in enumerate(red) if r <= 8), default=0)
        high = encoder.channels[-1]
        self.branch = ConvBNReLU(high, c, 1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high, c, 1), nn.Sigmoid())
        self.att = self.opts.attend(c)
        self.drop = self.opts.drop()
        self.cls_high = nn.Conv2d(c, num_classes, 1)
        self.cls_low = nn.Conv2d(encoder.channels[self.low], num_classes, 1)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        high, low = feats[-1], feats[self.low]
        x = self.att(self.branch(high) * self.gate(high))
        x = resize(x, low.shape[-2:])
        return self.cls_high(self.drop(x)) + self.cls_low(low), []
