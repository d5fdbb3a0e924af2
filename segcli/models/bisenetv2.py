"""BiSeNet V2 (Yu et al. 2021): its own detail and semantic branches, bilateral guided aggregation.

It does not use ``model.backbone``. In training four booster heads on the semantic branch give
auxiliary logits (``model.builtin_aux``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import ModelOutput, OwnBackbone, pack_output
from segcli.models.blocks import ConvBNReLU, resize
from segcli.models.heads import FCNHead
from segcli.models.registry import MODELS


class StemBlock(nn.Module):
    """Stride-4 stem: a strided conv, then a conv branch and a max-pool branch concatenated."""

    def __init__(self, cout: int = 16, cin: int = 3) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3, 2)
        self.left = nn.Sequential(ConvBNReLU(cout, cout // 2, 1), ConvBNReLU(cout // 2, cout, 3, 2))
        self.right = nn.MaxPool2d(3, 2, 1)
        self.fuse = ConvBNReLU(2 * cout, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], dim=1))


class GatherExpand(nn.Module):
    """Gather-and-expansion layer: 3x3 conv, 6x depthwise expansion (strided when stride 2), 1x1 projection."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 6) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = [
            ConvBNReLU(cin, cin, 3),
            ConvBNReLU(cin, mid, 3, stride, groups=cin, act=stride == 1),
        ]
        if stride == 2:
            layers.append(ConvBNReLU(mid, mid, 3, groups=mid))
        layers.append(ConvBNReLU(mid, cout, 1, act=False))
        self.body = nn.Sequential(*layers)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(
                ConvBNReLU(cin, cin, 3, stride, groups=cin, act=False), ConvBNReLU(cin, cout, 1, act=False)
            )
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ContextEmbedding(nn.Module):
    """Global average context added back to every position, then a 3x3 conv."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(inplace=True))
        self.conv = ConvBNReLU(c, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x + self.proj(self.gap(x)))


class BilateralGuidedAggregation(nn.Module):
    """BGA: each branch gates the other at its own resolution; the two results are summed at stride 8."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.d_keep = nn.Sequential(ConvBNReLU(c, c, 3, groups=c, act=False), nn.Conv2d(c, c, 1))
        self.d_down = nn.Sequential(ConvBNReLU(c, c, 3, 2, act=False), nn.AvgPool2d(3, 2, 1))
        self.s_up = ConvBNReLU(c, c, 3, act=False)
        self.s_keep = nn.Sequential(ConvBNReLU(c, c, 3, groups=c, act=False), nn.Conv2d(c, c, 1))
        self.out = ConvBNReLU(c, c, 3)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        size = detail.shape[-2:]
        left = self.d_keep(detail) * torch.sigmoid(resize(self.s_up(semantic), size))
        down = self.d_down(detail)
        right = resize(down * torch.sigmoid(resize(self.s_keep(semantic), down.shape[-2:])), size)
        return self.out(left + right)


@MODELS.register(
    "bisenetv2",
    timm_encoder=False,
    builtin_aux=4,
    paper=(
        "Yu et al., BiSeNet V2: Bilateral Network with Guided Aggregation "
        "for Real-time Semantic Segmentation, IJCV 2021"
    ),
    reference="https://github.com/CoinCheung/BiSeNet (lib/models/bisenetv2.py)",
)
class BiSeNetV2(OwnBackbone):
    """Detail branch (64-64-128 channels, stride 8) + semantic branch (16-32-64-128, stride 32) → BGA → head.

    Its head (``optim.head_lr_mult``): the segmentation head and the boosters (CoinCheung's ``head``/``aux*``).
    """

    head_modules = ("head", "boosters")

    def build_layers(self, num_classes: int) -> None:
        opts = self.opts
        self.detail = nn.Sequential(
            ConvBNReLU(self.in_channels, 64, 3, 2),
            ConvBNReLU(64, 64, 3),
            ConvBNReLU(64, 64, 3, 2),
            ConvBNReLU(64, 64, 3),
            ConvBNReLU(64, 64, 3),
            ConvBNReLU(64, 128, 3, 2),
            ConvBNReLU(128, 128, 3),
            ConvBNReLU(128, 128, 3),
        )
        self.stem = StemBlock(16, self.in_channels)
        self.s3 = nn.Sequential(GatherExpand(16, 32, 2), GatherExpand(32, 32))
        self.s4 = nn.Sequential(GatherExpand(32, 64, 2), GatherExpand(64, 64))
        self.s5 = nn.Sequential(GatherExpand(64, 128, 2), *(GatherExpand(128, 128) for _ in range(3)))
        self.ce = ContextEmbedding(128)
        self.bga = BilateralGuidedAggregation(128)
        mid = 4 * self.channels
        self.head = nn.Sequential(opts.conv(128, mid), opts.attend(mid), opts.drop(), nn.Conv2d(mid, num_classes, 1))
        if self.builtin_aux:
            self.boosters = nn.ModuleList(
                FCNHead(c, num_classes, mid=self.channels, dropout=opts.dropout) for c in (16, 32, 64, 128)
            )

    def forward(self, x: torch.Tensor) -> ModelOutput:
        detail = self.detail(x)
        s2 = self.stem(x)
        s3 = self.s3(s2)
        s4 = self.s4(s3)
        s5 = self.s5(s4)
        logits = self.head(self.bga(detail, self.ce(s5)))
        aux = []
        if self.training and self.builtin_aux:
            aux = [h(f) for h, f in zip(self.boosters, (s2, s3, s4, s5))]
        return pack_output(self, logits, aux, x.shape[-2:])
