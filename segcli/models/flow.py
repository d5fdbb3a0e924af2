"""Semantic-flow building blocks shared by SFNet and SFNet-Lite (:mod:`segcli.models.sfnet`).

Papers: Li et al., "Semantic Flow for Fast and Accurate Scene Parsing", ECCV 2020 (the flow alignment module,
FAM) and Li et al., "SFNet: Faster and Accurate Semantic Segmentation via Semantic Flow", IJCV 2023 (the gated
dual flow alignment module, GD-FAM). Reference implementation followed: https://github.com/lxtGH/SFSegNets,
``network/nn/operators.py`` (``AlignedModule``, ``AlignedModulev2PoolingAtten``, ``PSPModule``).

As in the reference, a flow field is predicted on the finer map's grid; the map to align is sampled there by
``grid_sample`` (bilinear, zero padding, ``align_corners=True``) at the identity grid in normalised coordinates
plus the flow divided by the grid's (width, height), and every bilinear upsampling uses ``align_corners=True``.

Departure: the pyramid pooling context (:class:`PyramidPoolingContext`) pools with :class:`AdaptiveAvgPool`,
which computes exactly what ``nn.AdaptiveAvgPool2d`` does (same bins, same averages) as two small averaging
matrices built from the input's size at run time. ``nn.AdaptiveAvgPool2d`` to more than one bin has no ONNX
form for a symbolic input size, so with it these models could only be exported at a fixed size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.models.blocks import ConvBNReLU


def align_up(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True`` (the reference's upsampling); no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def _coords(n: int, like: torch.Tensor) -> torch.Tensor:
    """``n`` evenly spaced normalised coordinates from -1 to 1 (the pixel centres under ``align_corners=True``;
    a single pixel sits at -1)."""
    steps = torch.arange(n, device=like.device, dtype=like.dtype)
    gaps = (like.new_ones(()) * (n - 1)).clamp(min=1)  # a traced size stays symbolic in an export
    return steps * 2.0 / gaps - 1.0


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` (any size) on the grid of ``flow`` (N, 2, H, W): at the identity grid in normalised
    coordinates displaced by ``flow / (W, H)`` (channel 0 moves along the width, channel 1 along the height).

    With a zero flow this is bilinear resizing of ``x`` to (H, W) with ``align_corners=True``.
    """
    flow = flow.float()  # sampling positions in fp32 also under autocast (half spacing is too coarse)
    n, _, h, w = flow.shape
    gy = _coords(h, flow).view(1, h, 1, 1).expand(n, h, w, 1)
    gx = _coords(w, flow).view(1, 1, w, 1).expand(n, h, w, 1)
    scale = torch.stack([flow.new_ones(()) * w, flow.new_ones(()) * h])
    grid = torch.cat([gx, gy], dim=-1) + flow.permute(0, 2, 3, 1) / scale
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


class AdaptiveAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d(bins)`` as two averaging matrices built from the input size at run time.

    Bin ``i`` of ``n`` rows spans rows ``floor(i * n / bins)`` to ``ceil((i + 1) * n / bins)`` (PyTorch's
    rule), so the result equals ``nn.AdaptiveAvgPool2d`` also where bins overlap or the map is smaller than
    the bins; written this way the ONNX graph keeps a symbolic height and width.
    """

    def __init__(self, bins: int) -> None:
        super().__init__()
        self.bins = bins

    def extra_repr(self) -> str:
        return f"bins={self.bins}"

    def _matrix(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """(bins, n): row i averages the positions of bin i."""
        i = torch.arange(self.bins, device=like.device)
        start = (i * n) // self.bins
        end = ((i + 1) * n + self.bins - 1) // self.bins
        pos = torch.arange(n, device=like.device)
        inside = (pos.unsqueeze(0) >= start.unsqueeze(1)) & (pos.unsqueeze(0) < end.unsqueeze(1))
        return inside.to(like.dtype) / (end - start).unsqueeze(1).to(like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bins == 1:
            return x.mean(dim=(2, 3), keepdim=True)
        h, w = x.shape[-2:]
        return torch.matmul(torch.matmul(self._matrix(h, x), x), self._matrix(w, x).transpose(0, 1))


class PyramidPoolingContext(nn.Module):
    """SFNet's context head on the deepest map (the reference's ``PSPModule``): per bin size, pool → 1x1 conv
    → BN (no ReLU, BN on the 1-bin branch too), upsampled and concatenated before the input map, then
    1x1 conv-BN-ReLU → dropout to ``cout`` channels."""

    def __init__(self, cin: int, cout: int, bins: tuple[int, ...] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(AdaptiveAvgPool(b), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)) for b in bins
        )
        self.bottleneck = nn.Sequential(
            ConvBNReLU(cin + len(bins) * cout, cout, 1), nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return self.bottleneck(torch.cat([*(align_up(s(x), size) for s in self.stages), x], dim=1))


class FlowAlign(nn.Module):
    """FAM: align a coarse map onto a finer one of the same width and add them.

    Both maps are projected to ``inner`` channels (1x1, no bias), the coarse projection is upsampled, the two
    are concatenated (coarse first) and a 3x3 conv predicts a 2-channel flow on the fine grid; the coarse map
    itself (not its projection) is warped by that flow and added to the fine map.
    """

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.down_fine = nn.Conv2d(channels, inner, 1, bias=False)
        self.down_coarse = nn.Conv2d(channels, inner, 1, bias=False)
        self.flow = nn.Conv2d(2 * inner, 2, 3, padding=1, bias=False)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = align_up(self.down_coarse(coarse), fine.shape[-2:])
        flow = self.flow(torch.cat([up, self.down_fine(fine)], dim=1))
        return fine + flow_warp(coarse, flow)


class GatedDualFlowAlign(nn.Module):
    """GD-FAM (SFNet-Lite; the reference's ``AlignedModulev2PoolingAtten``): two flows, one per input, and a
    gate that blends the two warped maps.

    The projections and the flow conv are FAM's, with 4 output channels (a flow for the coarse map, then one
    for the fine map), both warps landing on the fine grid. The gate is a 3x3 conv (no bias) + sigmoid over
    four 1-channel maps: the channel mean and max of the upsampled coarse projection and of the fine map
    itself (as in the reference, the fine map before projection). Output: ``gate * coarse' + (1 - gate) * fine'``.
    """

    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.down_fine = nn.Conv2d(channels, inner, 1, bias=False)
        self.down_coarse = nn.Conv2d(channels, inner, 1, bias=False)
        self.flow = nn.Conv2d(2 * inner, 4, 3, padding=1, bias=False)
        self.gate = nn.Sequential(nn.Conv2d(4, 1, 3, padding=1, bias=False), nn.Sigmoid())

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = align_up(self.down_coarse(coarse), fine.shape[-2:])
        flow = self.flow(torch.cat([up, self.down_fine(fine)], dim=1))
        coarse_w = flow_warp(coarse, flow[:, :2])
        fine_w = flow_warp(fine, flow[:, 2:])
        stats = [up.mean(1, keepdim=True), fine.mean(1, keepdim=True)]
        stats += [up.amax(1, keepdim=True), fine.amax(1, keepdim=True)]
        g = self.gate(torch.cat(stats, dim=1))
        return coarse_w * g + fine_w * (1 - g)
