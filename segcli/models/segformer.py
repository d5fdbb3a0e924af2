"""SegFormer's all-MLP decoder (Xie et al. 2021); on backbone ``pvt_v2_b0`` with 256 channels it is SegFormer-B0."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder
from segcli.models.blocks import ConvBNReLU, resize
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


@MODELS.register(
    "segformer",
    paper=(
        "Xie et al., SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers, NeurIPS 2021"
    ),
    reference=(
        "https://github.com/open-mmlab/mmsegmentation "
        "(mmseg/models/decode_heads/segformer_head.py; configs/segformer, segformer_mit-b0)"
    ),
)
class SegFormerHead(EncoderDecoder):
    """Each of the last four stages → linear (1x1) to ``decoder_channels`` → upsample to stride 4 → concat → fuse."""

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        c = self.channels
        self.use = [i for i, r in enumerate(encoder.reductions) if r >= 4][-4:]
        self.linears = nn.ModuleList(nn.Conv2d(encoder.channels[i], c, 1) for i in self.use)
        self.fuse = ConvBNReLU(c * len(self.use), c, 1)
        self.head = ClassifierHead(c, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        size = feats[self.use[0]].shape[-2:]
        xs = [resize(lin(feats[i]), size) for lin, i in zip(self.linears, self.use)]
        return self.head(self.fuse(torch.cat(xs, dim=1))), []
