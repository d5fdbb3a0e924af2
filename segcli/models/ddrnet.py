"""DDRNet-23-slim (Hong et al. 2021): dual-resolution branches with bilateral fusion and a DAPPM.

It uses its own backbone, not ``model.backbone``. The auxiliary head on the high-resolution branch
after the first fusion is on in training (``model.builtin_aux``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import ModelOutput, OwnBackbone, pack_output
from segcli.models.blocks import ConvBNReLU, resize
from segcli.models.heads import FCNHead
from segcli.models.registry import MODELS


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with a projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNReLU(cin, cout, 3, stride), ConvBNReLU(cout, cout, 3, act=False))
        self.short = nn.Identity() if stride == 1 and cin == cout else ConvBNReLU(cin, cout, 1, stride, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class Bottleneck(nn.Module):
    """1x1 → 3x3 → 1x1 block with expansion 2 (DDRNet's last stage)."""

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * 2
        self.body = nn.Sequential(
            ConvBNReLU(cin, planes, 1), ConvBNReLU(planes, planes, 3, stride), ConvBNReLU(planes, cout, 1, act=False)
        )
        self.short = nn.Identity() if stride == 1 and cin == cout else ConvBNReLU(cin, cout, 1, stride, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


def _stage(cin: int, cout: int, n: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), *(BasicBlock(cout, cout) for _ in range(n - 1)))


class DAPPM(nn.Module):
    """Deep aggregation pyramid pooling: pooled scales fused hierarchically, compressed, plus a shortcut."""

    def __init__(self, cin: int, branch: int, cout: int) -> None:
        super().__init__()
        pools: list[nn.Module] = [
            nn.AvgPool2d(5, 2, 2, count_include_pad=False),
            nn.AvgPool2d(9, 4, 4, count_include_pad=False),
            nn.AvgPool2d(17, 8, 8, count_include_pad=False),
        ]
        self.scale0 = ConvBNReLU(cin, branch, 1)
        self.scales = nn.ModuleList([*(nn.Sequential(p, ConvBNReLU(cin, branch, 1)) for p in pools)])
        self.global_scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, branch, 1), nn.ReLU(inplace=True))
        self.process = nn.ModuleList(ConvBNReLU(branch, branch, 3) for _ in range(4))
        self.compress = ConvBNReLU(5 * branch, cout, 1, act=False)
        self.short = ConvBNReLU(cin, cout, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [self.scale0(x)]
        for scale, proc in zip([*self.scales, self.global_scale], self.process):
            outs.append(proc(resize(scale(x), size) + outs[-1]))
        return self.compress(torch.cat(outs, dim=1)) + self.short(x)


@MODELS.register(
    "ddrnet23_slim",
    timm_encoder=False,
    builtin_aux=1,
    paper=(
        "Hong et al., Deep Dual-resolution Networks "
        "for Real-time and Accurate Semantic Segmentation of Road Scenes, arXiv 2021"
    ),
    reference="https://github.com/ydhongHIT/DDRNet (segmentation/DDRNet_23_slim.py)",
)
class DDRNet23Slim(OwnBackbone):
    """High branch at stride 8 (64 ch), low branch down to stride 64, two bilateral fusions, DAPPM, head."""

    planes = 32
    head_modules = ("head", "aux_head")  # optim.head_lr_mult: the segmentation heads
    input_multiple = 64  # the low branch reaches stride 64: the prediction core pads inputs to this

    def build_layers(self, num_classes: int) -> None:
        opts = self.opts
        p = self.planes
        self.stem = nn.Sequential(ConvBNReLU(self.in_channels, p, 3, 2), ConvBNReLU(p, p, 3, 2))
        self.layer1 = _stage(p, p, 2)
        self.layer2 = _stage(p, 2 * p, 2, 2)
        self.layer3 = _stage(2 * p, 4 * p, 2, 2)
        self.layer3_hi = _stage(2 * p, 2 * p, 2)
        self.compress3 = ConvBNReLU(4 * p, 2 * p, 1, act=False)
        self.down3 = ConvBNReLU(2 * p, 4 * p, 3, 2, act=False)
        self.layer4 = _stage(4 * p, 8 * p, 2, 2)
        self.layer4_hi = _stage(2 * p, 2 * p, 2)
        self.compress4 = ConvBNReLU(8 * p, 2 * p, 1, act=False)
        self.down4 = nn.Sequential(ConvBNReLU(2 * p, 4 * p, 3, 2), ConvBNReLU(4 * p, 8 * p, 3, 2, act=False))
        self.layer5_hi = Bottleneck(2 * p, 2 * p)
        self.layer5 = Bottleneck(8 * p, 8 * p, 2)
        self.spp = DAPPM(16 * p, 4 * p, 4 * p)
        self.act = nn.ReLU(inplace=False)
        head_mid = max(self.channels // 2, 8)
        self.head = nn.Sequential(
            opts.conv(4 * p, head_mid), opts.attend(head_mid), opts.drop(), nn.Conv2d(head_mid, num_classes, 1)
        )
        if self.builtin_aux:
            self.aux_head = FCNHead(2 * p, num_classes, mid=head_mid, dropout=opts.dropout)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        act = self.act
        x2 = self.layer2(self.layer1(self.stem(x)))
        hi = self.layer3_hi(x2)
        lo = self.layer3(x2)
        lo, hi = act(lo + resize(self.down3(hi), lo.shape[-2:])), act(hi + resize(self.compress3(lo), hi.shape[-2:]))
        mid_hi = hi
        hi = self.layer4_hi(hi)
        lo = self.layer4(lo)
        lo, hi = act(lo + resize(self.down4(hi), lo.shape[-2:])), act(hi + resize(self.compress4(lo), hi.shape[-2:]))
        hi = self.layer5_hi(hi)
        lo = resize(self.spp(self.layer5(lo)), hi.shape[-2:])
        logits = self.head(hi + lo)
        aux = [self.aux_head(mid_hi)] if self.training and self.builtin_aux else []
        return pack_output(self, logits, aux, x.shape[-2:])
