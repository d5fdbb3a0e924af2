"""ENet (Paszke et al. 2016): a tiny encoder-decoder with bottlenecks, max-unpooling and PReLU.

It uses its own backbone, not ``model.backbone``; input height and width must be multiples of 8
(three pool/unpool levels).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.errors import PresetError
from segcli.models.base import check_input_shape, pack_output
from segcli.models.blocks import SCSE
from segcli.models.registry import MODELS


def _cbp(cin: int, cout: int, k: int | tuple[int, int] = 1, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """conv → BN → PReLU."""
    ks = (k, k) if isinstance(k, int) else k
    pad = (dilation * (ks[0] - 1) // 2, dilation * (ks[1] - 1) // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, ks, stride, pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout)
    )


class InitialBlock(nn.Module):
    """(16 - cin)-channel strided 3x3 conv concatenated with a 2x2 max-pool of the cin-channel image → 16
    channels at stride 2 (13 + 3 for RGB, as in the paper)."""

    def __init__(self, cin: int = 3) -> None:
        super().__init__()
        if not 1 <= cin < 16:
            raise PresetError(f"data.channels = {cin}: model 'enet' takes 1 to 15 input channels")
        self.conv = nn.Conv2d(cin, 16 - cin, 3, 2, 1, bias=False)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(16)
        self.act = nn.PReLU(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class Bottleneck(nn.Module):
    """Residual bottleneck: 1x1 reduce (c/4) → regular, dilated or asymmetric (5x1 + 1x5) conv → 1x1 expand."""

    def __init__(self, c: int, kind: str = "regular", dilation: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        m = c // 4
        if kind == "asymmetric":
            middle = nn.Sequential(nn.Conv2d(m, m, (5, 1), padding=(2, 0), bias=False), _cbp(m, m, (1, 5)))
        else:
            middle = _cbp(m, m, 3, dilation=dilation)
        self.ext = nn.Sequential(
            _cbp(c, m, 1),
            middle,
            nn.Conv2d(m, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.ext(x))


class DownBottleneck(nn.Module):
    """Stride-2 bottleneck; the main branch max-pools (keeping indices for unpooling) and zero-pads channels."""

    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        m = cin // 4
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.ext = nn.Sequential(
            _cbp(cin, m, 2, stride=2),
            _cbp(m, m, 3),
            nn.Conv2d(m, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.Dropout2d(dropout),
        )
        self.extra = cout - cin
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, idx = self.pool(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.extra))
        return self.act(main + self.ext(x)), idx


class UpBottleneck(nn.Module):
    """Upsampling bottleneck: max-unpool of a 1x1-projected main branch plus a transposed-conv branch."""

    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        m = cin // 4
        self.main = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.ext = nn.Sequential(
            _cbp(cin, m, 1),
            nn.ConvTranspose2d(m, m, 3, 2, 1, output_padding=1, bias=False),
            nn.BatchNorm2d(m),
            nn.PReLU(m),
            nn.Conv2d(m, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.Dropout2d(dropout),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        main = F.max_unpool2d(self.main(x), idx, 2, 2)
        return self.act(main + self.ext(x))


def _stage23(dropout: float) -> nn.Sequential:
    return nn.Sequential(
        Bottleneck(128, dropout=dropout),
        Bottleneck(128, "dilated", 2, dropout),
        Bottleneck(128, "asymmetric", dropout=dropout),
        Bottleneck(128, "dilated", 4, dropout),
        Bottleneck(128, dropout=dropout),
        Bottleneck(128, "dilated", 8, dropout),
        Bottleneck(128, "asymmetric", dropout=dropout),
        Bottleneck(128, "dilated", 16, dropout),
    )


@MODELS.register(
    "enet",
    timm_encoder=False,
    rejects=("separable",),
    paper="Paszke et al., ENet: A Deep Neural Network Architecture for Real-Time Semantic Segmentation, arXiv 2016",
    reference="https://github.com/davidtvs/PyTorch-ENet (models/enet.py)",
)
class ENet(nn.Module):
    """Initial block, 5 stages (16 → 64 → 128 → 128 → 64 → 16 channels), a transposed-conv classifier."""

    multiple = 8
    head_modules = ("classifier",)  # optim.head_lr_mult: the transposed-conv classifier

    def __init__(
        self, num_classes: int, *, attention: str = "none", dropout: float = 0.1, in_channels: int = 3
    ) -> None:
        super().__init__()
        p = dropout
        self.initial = InitialBlock(in_channels)
        self.down1 = DownBottleneck(16, 64, p / 10)
        self.stage1 = nn.Sequential(*(Bottleneck(64, dropout=p / 10) for _ in range(4)))
        self.down2 = DownBottleneck(64, 128, p)
        self.stage2 = _stage23(p)
        self.stage3 = _stage23(p)
        self.up4 = UpBottleneck(128, 64, p)
        self.stage4 = nn.Sequential(Bottleneck(64, dropout=p), Bottleneck(64, dropout=p))
        self.up5 = UpBottleneck(64, 16, p)
        self.stage5 = Bottleneck(16, dropout=p)
        self.att = SCSE(16) if attention == "scse" else nn.Identity()
        self.classifier = nn.ConvTranspose2d(16, num_classes, 3, 2, 1, output_padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_shape(x, self.multiple, "enet")
        y = self.initial(x)
        y, i1 = self.down1(y)
        y, i2 = self.down2(self.stage1(y))
        y = self.stage3(self.stage2(y))
        y = self.stage4(self.up4(y, i2))
        y = self.stage5(self.up5(y, i1))
        return pack_output(self, self.classifier(self.att(y)), [], x.shape[-2:])
