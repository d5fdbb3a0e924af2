"""DeepLabV3+ (Chen et al. 2018): ASPP plus a decoder that refines with the stride-4 feature."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder
from segcli.models.blocks import ASPP, ConvBNReLU, aspp_rates, resize
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


@MODELS.register(
    "deeplabv3plus",
    paper="Chen et al., Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation, ECCV 2018",
    reference=(
        "https://github.com/open-mmlab/mmsegmentation "
        "(mmseg/models/decode_heads/sep_aspp_head.py; configs/deeplabv3plus, deeplabv3plus_r50-d8)"
    ),
)
class DeepLabV3Plus(EncoderDecoder):
    """ASPP output upsampled to stride 4, concatenated with a 48-channel low-level projection, two 3x3 convs."""

    default_stride = 16

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        c = self.channels
        red = encoder.reductions
        self.low = next((i for i, r in enumerate(red) if r >= 4), 0)
        self.aspp = ASPP(encoder.channels[-1], c, aspp_rates(red[-1]), self.opts)
        self.project = ConvBNReLU(encoder.channels[self.low], 48, 1)
        self.fuse = nn.Sequential(self.opts.conv(c + 48, c), self.opts.conv(c, c))
        self.head = ClassifierHead(c, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        low = self.project(feats[self.low])
        x = resize(self.aspp(feats[-1]), low.shape[-2:])
        return self.head(self.fuse(torch.cat([x, low], dim=1))), []
