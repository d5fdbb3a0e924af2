"""Small building blocks shared by the decoders: conv units, SCSE attention, resizing, U-Net's up block and the
full-resolution level (``model.full_res``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBNReLU(nn.Sequential):
    """k x k convolution (no bias) → BatchNorm → ReLU."""

    def __init__(
        self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise k x k → pointwise 1x1 → BN → ReLU (about k*k times fewer weights).

    No norm between the two convolutions (as in Xception/DeepLabV3+): one BN pass less per unit.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, k, stride, padding=dilation * (k // 2), dilation=dilation, groups=cin, bias=False),
            ConvBNReLU(cin, cout, 1),
        )


class ChannelGate(nn.Sequential):
    """Squeeze-and-excitation channel weights in (0, 1): global pool → 1x1 → ReLU → 1x1 → sigmoid."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, mid, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1),
            nn.Sigmoid(),
        )


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze-and-excitation (Roy et al. 2018): x*cSE + x*sSE."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.cse = ChannelGate(channels, max(channels // reduction, 4))
        self.sse = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cse(x) + x * self.sse(x)


@dataclass(frozen=True)
class DecoderOpts:
    """The decoder options every model honours: separable convs, SCSE attention, dropout."""

    separable: bool = False
    attention: str = "none"
    dropout: float = 0.1

    def conv(self, cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Module:
        """A k x k conv unit; depthwise-separable when asked (1x1 convs stay plain)."""
        if self.separable and k > 1:
            return SeparableConvBNReLU(cin, cout, k, dilation=dilation)
        return ConvBNReLU(cin, cout, k, dilation=dilation)

    def attend(self, channels: int) -> nn.Module:
        """SCSE when ``attention = "scse"``, else identity."""
        return SCSE(channels) if self.attention == "scse" else nn.Identity()

    def drop(self) -> nn.Module:
        return nn.Dropout2d(self.dropout) if self.dropout > 0 else nn.Identity()


def resize(x: torch.Tensor, size: torch.Size | tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a map to ``size`` (no-op when it already has it)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


class UpBlock(nn.Module):
    """U-Net's up block: upsample to the skip's size (any input size works), concatenate, two 3x3 convs, optional
    SCSE."""

    def __init__(self, cin: int, skip: int, cout: int, opts: DecoderOpts) -> None:
        super().__init__()
        self.att_in = opts.attend(cin + skip)
        self.convs = nn.Sequential(opts.conv(cin + skip, cout), opts.conv(cout, cout))
        self.att_out = opts.attend(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([resize(x, skip.shape[-2:], mode="nearest"), skip], dim=1)
        return self.att_out(self.convs(self.att_in(x)))


class FullResLevel(nn.Module):
    """The original U-Net's first level as a decoder's last step (``model.full_res``): two 3x3 convs on the image
    (:data:`WIDTH` channels; the paper's are 64 wide) are the skip of one more up block, so the classifier after it
    runs at the input's resolution. For structures 1-5 px wide that a stride-2 or stride-4 classifier blurs."""

    WIDTH = 16

    def __init__(self, cin: int, in_channels: int, opts: DecoderOpts) -> None:
        super().__init__()
        self.out_channels = max(cin // 2, self.WIDTH)
        self.stem = nn.Sequential(opts.conv(in_channels, self.WIDTH), opts.conv(self.WIDTH, self.WIDTH))
        self.up = UpBlock(cin, self.WIDTH, self.out_channels, opts)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``x`` (any stride) → ``out_channels`` features at the size of ``image``."""
        return self.up(x, self.stem(image))


class PoolBranch(nn.Sequential):
    """Adaptive average pool to ``bins`` x ``bins`` → 1x1 conv → (BN) → ReLU.

    The 1x1 global branch skips BatchNorm: one value per channel cannot be normalised at batch 1.
    """

    def __init__(self, cin: int, cout: int, bins: int) -> None:
        conv: nn.Module
        if bins == 1:
            conv = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        else:
            conv = ConvBNReLU(cin, cout, 1)
        super().__init__(nn.AdaptiveAvgPool2d(bins), conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(super().forward(x), x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3): 1x1, three dilated 3x3 and an image-pool branch."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...], opts: DecoderOpts) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(cin, cout, 1), *(opts.conv(cin, cout, 3, dilation=r) for r in rates), PoolBranch(cin, cout, 1)]
        )
        self.project = nn.Sequential(ConvBNReLU(cout * len(self.branches), cout, 1), nn.Dropout2d(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


def aspp_rates(stride: int) -> tuple[int, int, int]:
    """Dilation rates (6, 12, 18) at output stride 16, scaled for other strides."""
    return tuple(max(1, r * 16 // stride) for r in (6, 12, 18))  # type: ignore[return-value]


class PPM(nn.Module):
    """Pyramid pooling module (PSPNet): pooled branches upsampled and concatenated with the input."""

    def __init__(self, cin: int, branch: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(PoolBranch(cin, branch, b) for b in bins)
        self.out_channels = cin + branch * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, *(b(x) for b in self.branches)], dim=1)
