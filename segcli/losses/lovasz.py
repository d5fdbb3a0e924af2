"""Lovász-Softmax: a convex surrogate of the per-class Jaccard loss (Berman et al., CVPR 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segcli.losses.common import LabelLoss, one_hot_valid
from segcli.losses.registry import LOSSES
from segcli.options import opt


def lovasz_softmax_groups(
    probs: torch.Tensor, fg: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group: the sum of (weighted) Lovász losses of the classes present, and the sum of their weights.

    ``probs`` and ``fg`` are (G, P, C): softmax probabilities and one-hot targets (all 0 at ignored pixels)
    of G groups of P pixels; ``valid`` (G, P, 1) marks the pixels that count. Every class and group is
    handled at once: errors ``|fg - p|`` (0 at ignored pixels, so they sort after every real error and add
    nothing) are sorted along P, and their dot product with the gradient of the Lovász extension of the
    Jaccard loss is each class's loss.
    """
    errors = torch.where(valid, (fg - probs).abs(), 0.0)
    errors_sorted, perm = errors.sort(dim=1, descending=True)
    fg_sorted = fg.gather(1, perm)
    total = fg_sorted.sum(dim=1, keepdim=True)
    intersection = total - fg_sorted.cumsum(dim=1)
    union = total + (1.0 - fg_sorted).cumsum(dim=1)  # >= 1 from the first pixel on
    jaccard = 1.0 - intersection / union
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    per_class = (errors_sorted * grad).sum(dim=1)  # (G, C)
    present = (total.squeeze(1) > 0).to(probs.dtype)
    w = present if weight is None else present * weight
    return (per_class * w).sum(dim=1), w.sum(dim=1)


@dataclass(frozen=True)
class LovaszOptions:
    """Lovász-Softmax (lovasz)."""

    per_image: bool = opt(False, "average the loss over images instead of over the whole batch")


@LOSSES.register("lovasz", options=LovaszOptions)
class LovaszSoftmaxLoss(LabelLoss):
    """Lovász-Softmax loss averaged over the classes present in the (non-ignored) target.

    Over the whole batch by default, or per image and then averaged over images with ``per_image``
    (images whose pixels are all ignored are left out). Class weights give a weighted mean over the present
    classes. Equals segmentation_models_pytorch's ``LovaszLoss(mode="multiclass")`` (classes="present"),
    which has no class weights.

    """

    def __init__(self, ignore_index: int = 255, weight: torch.Tensor | None = None, per_image: bool = False) -> None:
        super().__init__(ignore_index, weight)
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n, c = logits.shape[:2]
        groups = n if self.per_image else 1
        probs = logits.float().softmax(dim=1).movedim(1, -1).reshape(groups, -1, c)
        fg = one_hot_valid(target, c, self.ignore_index).movedim(1, -1).reshape(groups, -1, c).to(probs.dtype)
        valid = (target != self.ignore_index).reshape(groups, -1, 1)
        total, norm = lovasz_softmax_groups(probs, fg, valid, self.weight)
        tiny = torch.finfo(probs.dtype).tiny
        per_group = total / norm.clamp_min(tiny)  # 0 for a group with no valid pixel
        counted = (valid.flatten(1).any(dim=1)).to(probs.dtype)
        return (per_group * counted).sum() / counted.sum().clamp_min(1.0)
