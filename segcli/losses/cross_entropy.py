"""Cross-entropy with ignore_index, class weights and label smoothing."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.config.schema import LossConfig
from segcli.losses import LOSSES


class CrossEntropy(nn.Module):
    """Mean over non-ignored pixels (weighted mean when class weights are given, as in PyTorch).

    Shape: logits (N, C, H, W) float, target (N, H, W) int64 with values in [0, C) or ignore_index.
    """

    def __init__(
        self, ignore_index: int = 255, weight: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != self.ignore_index).any():
            return logits.sum() * 0.0  # keeps the graph; every pixel ignored
        return F.cross_entropy(
            logits.float(),
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


@LOSSES.register("ce")
def build_ce(cfg: LossConfig, num_classes: int, ignore_index: int, weight: torch.Tensor | None) -> nn.Module:
    return CrossEntropy(ignore_index, weight, cfg.label_smoothing)
