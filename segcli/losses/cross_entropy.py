"""Cross-entropy with ignore_index, class weights and label smoothing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segcli.losses.common import LabelLoss, valid_mask
from segcli.losses.registry import LOSSES
from segcli.options import opt


def pixel_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    weight: torch.Tensor | None,
    label_smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel cross-entropy and the weight each pixel adds to the denominator of the mean.

    Both are (N, H, W) and zero at ignored pixels. ``losses.sum() / denom.sum()`` is PyTorch's
    ``reduction="mean"`` (weighted by ``weight[target]`` when class weights are given), and the same holds
    for any subset of pixels, which is what OHEM and top-k select from.
    """
    losses = F.cross_entropy(
        logits.float(),
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction="none",
        label_smoothing=label_smoothing,
    )
    valid, safe = valid_mask(target, ignore_index)
    denom = valid.to(losses.dtype) if weight is None else torch.where(valid, weight[safe], 0.0)
    return losses, denom


def weighted_mean(losses: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """``losses.sum() / denom.sum()``, and 0 (keeping the graph) when nothing counts; no host sync."""
    return losses.sum() / denom.sum().clamp_min(torch.finfo(denom.dtype).tiny)


@dataclass(frozen=True)
class CEOptions:
    """Cross-entropy (ce)."""

    label_smoothing: float = opt(
        0.0, "label smoothing: the target is (1 - s) * one_hot + s / C", minimum=0.0, maximum=1.0
    )


@LOSSES.register("ce", options=CEOptions)
class CrossEntropy(LabelLoss):
    """Mean over non-ignored pixels (weighted mean when class weights are given), as ``F.cross_entropy``.

    An all-ignored batch gives 0 (PyTorch gives NaN). Label smoothing follows PyTorch: the target is
    ``(1 - s) * one_hot + s / C``.

    """

    def __init__(
        self, ignore_index: int = 255, weight: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(ignore_index, weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, denom = pixel_cross_entropy(logits, target, self.ignore_index, self.weight, self.label_smoothing)
        return weighted_mean(losses, denom)
