"""BiSeNet V1 (Yu et al. 2018): a spatial path and a context path on the timm backbone, fused by an FFM."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.errors import PresetError
from segcli.models.base import EncoderDecoder, ModelOutput
from segcli.models.blocks import ChannelGate, ConvBNReLU, resize
from segcli.models.heads import FCNHead
from segcli.models.registry import MODELS


class AttentionRefinement(nn.Module):
    """ARM: 3x3 conv, then reweight channels by a global-pool → 1x1 → sigmoid attention."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3)
        self.att = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, cout, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.att(x)


class FeatureFusion(nn.Module):
    """FFM: concatenate spatial and context features, 1x1 conv, then x + x * channel attention."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 1)
        self.att = ChannelGate(cout, max(cout // 4, 8))

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.cat([spatial, context], dim=1))
        return x + x * self.att(x)


@MODELS.register(
    "bisenetv1",
    strides=(32,),
    builtin_aux=2,
    paper="Yu et al., BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation, ECCV 2018",
    reference="https://github.com/CoinCheung/BiSeNet (lib/models/bisenetv1.py)",
)
class BiSeNetV1(EncoderDecoder):
    """Spatial path (three stride-2 convs, stride 8) + context path (ARMs on the stride-16/32 features).

    Its head (``optim.head_lr_mult``) is CoinCheung/BiSeNet's ``lr_mul`` set: the feature fusion module and the
    output heads (main and auxiliary); the spatial and context paths train at the base lr.
    """

    head_modules = ("ffm", "head", "aux16", "aux32", "aux_heads")

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        red, chs = encoder.reductions, encoder.channels
        if 16 not in red or red[-1] != 32:
            raise PresetError(f"bisenetv1 needs backbone features at strides 16 and 32; {encoder.name!r} has {red}")
        self.i16 = max(i for i, r in enumerate(red) if r == 16)
        c = self.channels
        self.spatial = nn.Sequential(
            ConvBNReLU(self.in_channels, 64, 7, 2), ConvBNReLU(64, 64, 3, 2), ConvBNReLU(64, c, 3, 2)
        )
        self.global_ctx = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(chs[-1], c, 1), nn.ReLU(inplace=True))
        self.arm32 = AttentionRefinement(chs[-1], c)
        self.arm16 = AttentionRefinement(chs[self.i16], c)
        self.refine32 = ConvBNReLU(c, c, 3)
        self.refine16 = ConvBNReLU(c, c, 3)
        self.ffm = FeatureFusion(2 * c, 2 * c)
        self.head = nn.Sequential(
            self.opts.conv(2 * c, c), self.opts.attend(c), self.opts.drop(), nn.Conv2d(c, num_classes, 1)
        )
        if self.builtin_aux:
            self.aux16 = FCNHead(c, num_classes, mid=max(c // 2, 8), dropout=self.opts.dropout)
            self.aux32 = FCNHead(c, num_classes, mid=max(c // 2, 8), dropout=self.opts.dropout)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feats = self.encoder(x)
        logits, aux = self.fuse_paths(self.spatial(x), feats)
        return self.finish(logits, aux, feats, x)

    def fuse_paths(self, spatial: torch.Tensor, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Context path (ARMs + global context) fused with the spatial path; aux logits from the context path."""
        f16, f32 = feats[self.i16], feats[-1]
        c32 = self.arm32(f32) + self.global_ctx(f32)
        c32 = self.refine32(resize(c32, f16.shape[-2:]))
        c16 = self.arm16(f16) + c32
        c16 = self.refine16(resize(c16, spatial.shape[-2:]))
        logits = self.head(self.ffm(spatial, c16))
        aux = [self.aux16(c16), self.aux32(c32)] if self.training and self.builtin_aux else []
        return logits, aux
