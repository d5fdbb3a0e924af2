"""Small building blocks shared by the decoders."""

from __future__ import annotations

import torch.nn as nn


class ConvBNReLU(nn.Sequential):
    """k x k convolution (no bias) → BatchNorm → ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )
