"""UPerNet (Xiao et al. 2018): PPM on the deepest feature, an FPN over the rest, fused at stride 4."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder
from segcli.models.blocks import PPM, ConvBNReLU, resize
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


@MODELS.register(
    "upernet",
    paper="Xiao et al., Unified Perceptual Parsing for Scene Understanding, ECCV 2018",
    reference="https://github.com/open-mmlab/mmsegmentation (mmseg/models/decode_heads/uper_head.py)",
)
class UPerNet(EncoderDecoder):
    """PPM head + top-down FPN on the stride >= 4 features; all levels concatenated → 3x3 conv → classifier."""

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        c = self.channels
        self.use = [i for i, r in enumerate(encoder.reductions) if r >= 4][-4:]
        chs = [encoder.channels[i] for i in self.use]
        self.ppm = PPM(chs[-1], c)
        self.ppm_conv = self.opts.conv(self.ppm.out_channels, c)
        self.laterals = nn.ModuleList(ConvBNReLU(ch, c, 1) for ch in chs[:-1])
        self.fpn_convs = nn.ModuleList(self.opts.conv(c, c) for _ in chs[:-1])
        self.fuse = self.opts.conv(c * len(chs), c)
        self.head = ClassifierHead(c, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = [feats[i] for i in self.use]
        top = self.ppm_conv(self.ppm(feats[-1]))
        lats = [lat(f) for lat, f in zip(self.laterals, feats[:-1])]
        p = top
        for k in range(len(lats) - 1, -1, -1):
            p = lats[k] = lats[k] + resize(p, lats[k].shape[-2:])
        outs = [conv(q) for conv, q in zip(self.fpn_convs, lats)] + [top]
        size = outs[0].shape[-2:]
        return self.head(self.fuse(torch.cat([resize(o, size) for o in outs], dim=1))), []
